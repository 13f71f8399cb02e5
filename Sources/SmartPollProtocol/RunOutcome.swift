/// The reply to `run` with `wait`, sent when the run that the request caused ends:
/// `{"id":..,"ok":true,"task":"w1","run":N,"exit_code":0,"signal":null,"timed_out":false,"succeeded":true,
/// "cancelled":false,"error":null,"stderr_tail":"..."}`.
public struct RunOutcome: Sendable, Hashable {
    public var task: String
    public var run: Int
    /// The exit status, or `nil` when the process died by a signal.
    public var exitCode: Int?
    /// The number of the signal that killed the process, or `nil`.
    public var signal: Int?
    public var timedOut: Bool
    public var succeeded: Bool
    /// Whether `cancel` (or a reload that removed the task) ended the run.
    public var cancelled: Bool
    /// Why the run failed, as `status` says it (`last.error`); `nil` after a success.
    public var error: String?
    /// The last 4 KiB of the run's stderr, as `status` keeps them.
    public var stderrTail: String
    /// With `"output": true` in the request: the run's own stdout (`"output"`, or
    /// `"output_base64"` when it is not UTF-8), whether the run succeeded or not; nil otherwise.
    public var output: [UInt8]?
    /// Whether ``output`` was cut at the task's `capture`.
    public var truncated = false

    public init(
        task: String, run: Int, exitCode: Int?, signal: Int?, timedOut: Bool, succeeded: Bool,
        cancelled: Bool = false, error: String? = nil, stderrTail: String = "", output: [UInt8]? = nil,
        truncated: Bool = false
    ) {
        self.output = output
        self.truncated = truncated
        self.task = task
        self.run = run
        self.exitCode = exitCode
        self.signal = signal
        self.timedOut = timedOut
        self.succeeded = succeeded
        self.cancelled = cancelled
        self.error = error
        self.stderrTail = stderrTail
    }

    /// The last line of ``stderrTail`` that is not blank, or nil.
    public var lastStderrLine: String? {
        stderrTail.split(whereSeparator: { $0 == "\n" || $0 == "\r" })
            .last(where: { !$0.allSatisfy { $0 == " " || $0 == "\t" } })
            .map(String.init)
    }

    /// The exit status `smartpollctl run --wait` returns: the task's own status,
    /// 124 for a timeout, 128 + N for signal N, and 1 for a failure that has neither
    /// or exited 0 (an invalid directive, a cancel), so that a failed run never
    /// reads as success.
    public var shellExitStatus: Int32 {
        if timedOut { return 124 }
        if let signal { return 128 + Int32(truncatingIfNeeded: signal) }
        if let exitCode, exitCode != 0 || succeeded { return Int32(truncatingIfNeeded: exitCode) }
        return succeeded ? 0 : 1
    }

    func writeMembers(to writer: inout JSONWriter) {
        writer.key("task")
        writer.string(task)
        writer.key("run")
        writer.int(run)
        writer.outcomeMembers(exitCode: exitCode, signal: signal, timedOut: timedOut, succeeded: succeeded)
        writer.key("cancelled")
        writer.bool(cancelled)
        writer.key("error")
        writer.string(error)
        writer.key("stderr_tail")
        writer.string(stderrTail)
        guard let output else { return }
        writer.bytes(output, textKey: "output", base64Key: "output_base64")
        writer.key("truncated")
        writer.bool(truncated)
    }

    /// The members before the output, for ``SlicedReply``, which writes the output itself.
    func writeMembersBeforeOutput(to writer: inout JSONWriter) {
        var head = self
        head.output = nil
        head.writeMembers(to: &writer)
    }

    static func decode(_ reader: ObjectReader) throws(ProtocolError) -> RunOutcome {
        RunOutcome(
            task: try reader.string("task"),
            run: try reader.int("run"),
            exitCode: try reader.optionalInt("exit_code"),
            signal: try reader.optionalInt("signal"),
            timedOut: try reader.bool("timed_out"),
            succeeded: try reader.bool("succeeded"),
            // Absent from supervisors before these keys.
            cancelled: try reader.bool("cancelled", default: false),
            error: try reader.optionalString("error"),
            stderrTail: try reader.optionalString("stderr_tail") ?? "",
            output: try Self.decodeOutput(reader),
            truncated: try reader.bool("truncated", default: false))
    }

    private static func decodeOutput(_ reader: ObjectReader) throws(ProtocolError) -> [UInt8]? {
        if let text = try reader.optionalString("output") { return Array(text.utf8) }
        guard let encoded = try reader.optionalString("output_base64") else { return nil }
        guard let bytes = Base64.decode(encoded) else {
            throw ProtocolError.badRequest("invalid Base64").inField(reader.fieldName("output_base64"))
        }
        return bytes
    }
}
