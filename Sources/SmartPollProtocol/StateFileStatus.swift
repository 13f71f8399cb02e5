/// How the supervisor's state file fares: the `state_file` member of a `status` reply, `null`
/// when no `state_dir` is configured.
///
/// `{"path":"/var/lib/smartpoll/state.json","saved":T,"error":null,"failing_since":null}`:
/// `saved` is when the state was last written successfully; while writes fail, `error` says
/// why (the step and the system's reason) and `failing_since` when the first of them failed.
public struct StateFileStatus: Sendable, Hashable {
    public var path: String
    public var saved: Timestamp?
    public var error: String?
    public var failingSince: Timestamp?

    public init(path: String, saved: Timestamp?, error: String?, failingSince: Timestamp?) {
        self.path = path
        self.saved = saved
        self.error = error
        self.failingSince = failingSince
    }

    func write(to writer: inout JSONWriter) {
        writer.beginObject()
        writer.key("path")
        writer.string(path)
        writer.key("saved")
        writer.timestamp(saved)
        writer.key("error")
        writer.string(error)
        writer.key("failing_since")
        writer.timestamp(failingSince)
        writer.endObject()
    }

    static func decode(_ reader: ObjectReader) throws(ProtocolError) -> StateFileStatus {
        StateFileStatus(
            path: try reader.string("path"),
            saved: try reader.optionalTimestamp("saved"),
            error: try reader.optionalString("error"),
            failingSince: try reader.optionalTimestamp("failing_since"))
    }
}
