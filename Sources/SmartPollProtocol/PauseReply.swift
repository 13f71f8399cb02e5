/// The reply to `pause` and `resume`: `{"id":..,"ok":true,"task":"w1","paused":true}`, the task's
/// pause state after the request.
public struct PauseReply: Sendable, Hashable {
    public var task: String
    /// Whether the task is paused now.
    public var paused: Bool

    public init(task: String, paused: Bool) {
        self.task = task
        self.paused = paused
    }

    func writeMembers(to writer: inout JSONWriter) {
        writer.key("task")
        writer.string(task)
        writer.key("paused")
        writer.bool(paused)
    }

    static func decode(_ reader: ObjectReader) throws(ProtocolError) -> PauseReply {
        PauseReply(task: try reader.string("task"), paused: try reader.bool("paused"))
    }
}
