/// How a task's last finished run went: the `last` object of a `status` reply.
///
/// `{"run":N,"started":T,"ended":T,"duration_ms":F,"exit_code":0,"signal":null,
/// "timed_out":false,"succeeded":true,"error":null,"stderr_tail":"...","cpu_ms":F}`
public struct LastRun: Sendable, Hashable {
    /// The run id.
    public var run: Int
    public var started: Timestamp
    public var ended: Timestamp
    /// Wall-clock duration in milliseconds, fractional (`"duration_ms"`).
    public var durationMilliseconds: Double
    /// The exit status, or `nil` when the process died by a signal.
    public var exitCode: Int?
    /// The number of the signal that killed the process, or `nil`.
    public var signal: Int?
    /// Whether the run was stopped because it exceeded its timeout.
    public var timedOut: Bool
    public var succeeded: Bool
    /// Why the run failed beyond its exit status (an invalid directive, a spawn
    /// failure), or `nil`.
    public var error: String?
    /// The last 4 KiB of the run's stderr (invalid UTF-8 replaced).
    public var stderrTail: String
    /// User plus system CPU time of every process of the run, in milliseconds, fractional
    /// (`"cpu_ms"`); `nil` when unknown (a command that never started, or no accounting).
    public var cpuMilliseconds: Double?

    public init(
        run: Int, started: Timestamp, ended: Timestamp, durationMilliseconds: Double,
        exitCode: Int?, signal: Int?, timedOut: Bool, succeeded: Bool, error: String?, stderrTail: String,
        cpuMilliseconds: Double? = nil
    ) {
        self.cpuMilliseconds = cpuMilliseconds
        self.run = run
        self.started = started
        self.ended = ended
        self.durationMilliseconds = durationMilliseconds
        self.exitCode = exitCode
        self.signal = signal
        self.timedOut = timedOut
        self.succeeded = succeeded
        self.error = error
        self.stderrTail = stderrTail
    }

    func write(to writer: inout JSONWriter) {
        writer.beginObject()
        writeMembers(to: &writer, stderrTail: true)
        writer.endObject()
    }

    /// The members of the `last` object; without `stderr_tail` for a `history` entry, which
    /// shares the rest with `last` (so that the two cannot diverge).
    func writeMembers(to writer: inout JSONWriter, stderrTail includesTail: Bool) {
        writer.key("run")
        writer.int(run)
        writer.key("started")
        writer.timestamp(started)
        writer.key("ended")
        writer.timestamp(ended)
        writer.key("duration_ms")
        writer.double(durationMilliseconds)
        writer.outcomeMembers(exitCode: exitCode, signal: signal, timedOut: timedOut, succeeded: succeeded)
        writer.key("error")
        writer.string(error)
        if includesTail {
            writer.key("stderr_tail")
            writer.string(stderrTail)
        }
        writer.key("cpu_ms")
        if let cpuMilliseconds { writer.double(cpuMilliseconds) } else { writer.null() }
    }

    /// `stderrTail: false`: a `history` entry's, which has no `stderr_tail` (empty here).
    static func decode(_ reader: ObjectReader, stderrTail includesTail: Bool = true) throws(ProtocolError) -> LastRun {
        LastRun(
            run: try reader.int("run"),
            started: try reader.timestamp("started"),
            ended: try reader.timestamp("ended"),
            durationMilliseconds: try reader.double("duration_ms"),
            exitCode: try reader.optionalInt("exit_code"),
            signal: try reader.optionalInt("signal"),
            timedOut: try reader.bool("timed_out"),
            succeeded: try reader.bool("succeeded"),
            error: try reader.optionalString("error"),
            stderrTail: includesTail ? try reader.string("stderr_tail") : "",
            cpuMilliseconds: try reader.optionalDouble("cpu_ms"))
    }
}
