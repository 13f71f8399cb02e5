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

    public init(
        task: String, run: Int, exitCode: Int?, signal: Int?, timedOut: Bool, succeeded: Bool,
        cancelled: Bool = false, error: String? = nil, stderrTail: String = ""
    ) {
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
            stderrTail: try reader.optionalString("stderr_tail") ?? "")
    }
}
