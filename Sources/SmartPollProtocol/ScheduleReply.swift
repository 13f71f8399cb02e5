/// The reply to `schedule`: `{"id":..,"ok":true,"task":"w1","scheduled":true,"next":T}`.
public struct ScheduleReply: Sendable, Hashable {
    public var task: String
    /// Whether a deadline is pending after the request.
    public var scheduled: Bool
    /// The advisory next time the task will be ready, or `nil`.
    public var next: Timestamp?

    public init(task: String, scheduled: Bool, next: Timestamp?) {
        self.task = task
        self.scheduled = scheduled
        self.next = next
    }

    func writeMembers(to writer: inout JSONWriter) {
        writer.key("task")
        writer.string(task)
        writer.key("scheduled")
        writer.bool(scheduled)
        writer.key("next")
        writer.timestamp(next)
    }

    static func decode(_ reader: ObjectReader) throws(ProtocolError) -> ScheduleReply {
        ScheduleReply(
            task: try reader.string("task"),
            scheduled: try reader.bool("scheduled"),
            next: try reader.optionalTimestamp("next"))
    }
}
