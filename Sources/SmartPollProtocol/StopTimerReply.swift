/// The reply to `stop_timer`: `{"id":..,"ok":true,"task":"w1","ready":true}`.
public struct StopTimerReply: Sendable, Hashable {
    public var task: String
    /// The library's `stopTimer` result: whether the task is (still) ready.
    public var ready: Bool

    public init(task: String, ready: Bool) {
        self.task = task
        self.ready = ready
    }

    func writeMembers(to writer: inout JSONWriter) {
        writer.key("task")
        writer.string(task)
        writer.key("ready")
        writer.bool(ready)
    }

    static func decode(_ reader: ObjectReader) throws(ProtocolError) -> StopTimerReply {
        StopTimerReply(task: try reader.string("task"), ready: try reader.bool("ready"))
    }
}
