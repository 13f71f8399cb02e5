/// One task of a `status` reply:
/// `{"name":"w1","scheduled":true,"ready":false,"next":T,"running":false,
/// "pid":null,"run":null,"runs":N,"failures":N,"cancelled":N,"paused":false,"last":{...}}`.
public struct TaskStatus: Sendable, Hashable {
    public var name: String
    /// Whether a deadline is pending.
    public var scheduled: Bool
    /// Whether the task is due and waiting to start (possibly for its current run to end).
    public var ready: Bool
    /// The advisory next time it will be ready, or `nil`.
    public var next: Timestamp?
    public var running: Bool
    /// The process id of the current run, or `nil`.
    public var pid: Int?
    /// The id of the current run, or `nil`.
    public var run: Int?
    /// Finished runs.
    public var runs: Int
    /// Failed runs among ``runs`` (not counting cancelled ones).
    public var failures: Int
    /// Runs among ``runs`` that `cancel`, `stop` (the loop's end) or a reload ended before
    /// they could finish (and that did not exit 0 anyway): an operator's doing, not a failure.
    public var cancelled: Int
    /// Whether `pause` keeps the task from starting.
    public var paused: Bool
    /// The last finished run; `nil` before the first run ends.
    public var last: LastRun?

    public init(
        name: String, scheduled: Bool, ready: Bool, next: Timestamp?, running: Bool,
        pid: Int?, run: Int?, runs: Int, failures: Int, cancelled: Int = 0, paused: Bool = false,
        last: LastRun?
    ) {
        self.cancelled = cancelled
        self.paused = paused
        self.name = name
        self.scheduled = scheduled
        self.ready = ready
        self.next = next
        self.running = running
        self.pid = pid
        self.run = run
        self.runs = runs
        self.failures = failures
        self.last = last
    }

    func write(to writer: inout JSONWriter) {
        writer.beginObject()
        writer.key("name")
        writer.string(name)
        writer.key("scheduled")
        writer.bool(scheduled)
        writer.key("ready")
        writer.bool(ready)
        writer.key("next")
        writer.timestamp(next)
        writer.key("running")
        writer.bool(running)
        writer.key("pid")
        writer.int(pid)
        writer.key("run")
        writer.int(run)
        writer.key("runs")
        writer.int(runs)
        writer.key("failures")
        writer.int(failures)
        writer.key("cancelled")
        writer.int(cancelled)
        writer.key("paused")
        writer.bool(paused)
        writer.key("last")
        if let last { last.write(to: &writer) } else { writer.null() }
        writer.endObject()
    }

    static func decode(_ reader: ObjectReader) throws(ProtocolError) -> TaskStatus {
        TaskStatus(
            name: try reader.string("name"),
            scheduled: try reader.bool("scheduled"),
            ready: try reader.bool("ready"),
            next: try reader.optionalTimestamp("next"),
            running: try reader.bool("running"),
            pid: try reader.optionalInt("pid"),
            run: try reader.optionalInt("run"),
            runs: try reader.int("runs"),
            failures: try reader.int("failures"),
            // Absent from supervisors before the counter.
            cancelled: try reader.optionalInt("cancelled") ?? 0,
            // Absent from supervisors before pause.
            paused: try reader.bool("paused", default: false),
            last: try reader.optionalObject("last").map { (last) throws(ProtocolError) in try LastRun.decode(last) })
    }
}
