/// The reply to `schedule`: `{"id":..,"ok":true,"task":"w1","scheduled":true,"next":T}`.
public struct ScheduleReply: Sendable, Hashable {
    public var task: String
    /// Whether a deadline is pending after the request.
    public var scheduled: Bool
    /// The advisory next time the task will be ready, or `nil`.
    public var next: Timestamp?
    /// Whether the task is due and waits to start: for its current run to end, or for a free
    /// slot under `max_running`.
    public var ready: Bool
    /// Whether a run of the task is in flight after the request (one it started, when the task
    /// was idle and the request made it due now).
    public var running: Bool

    public init(task: String, scheduled: Bool, next: Timestamp?, ready: Bool = false, running: Bool = false) {
        self.task = task
        self.scheduled = scheduled
        self.next = next
        self.ready = ready
        self.running = running
    }

    func writeMembers(to writer: inout JSONWriter) {
        writer.key("task")
        writer.string(task)
        writer.key("scheduled")
        writer.bool(scheduled)
        writer.key("next")
        writer.timestamp(next)
        writer.key("ready")
        writer.bool(ready)
        writer.key("running")
        writer.bool(running)
    }

    static func decode(_ reader: ObjectReader) throws(ProtocolError) -> ScheduleReply {
        ScheduleReply(
            task: try reader.string("task"),
            scheduled: try reader.bool("scheduled"),
            next: try reader.optionalTimestamp("next"),
            // Absent from supervisors before these keys.
            ready: try reader.bool("ready", default: false),
            running: try reader.bool("running", default: false))
    }
}
