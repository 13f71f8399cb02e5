/// How the supervisor keeps a run's processes from outliving it: the `containment` object of a
/// `status` reply, `{"mode":"cgroup","root":"/sys/fs/cgroup/.../smartpoll-0123456789abcdef"}` or
/// `{"mode":"subreaper","root":null}`.
public struct ContainmentStatus: Sendable, Hashable {
    public enum Mode: String, Sendable, Hashable {
        /// Each run is a cgroup v2 of the supervisor's subtree.
        case cgroup
        /// The supervisor is a child subreaper and ends a finished run's orphans.
        case subreaper
    }

    public var mode: Mode
    /// The supervisor's cgroup subtree (a directory of the cgroup file system); `nil` in
    /// subreaper mode.
    public var root: String?

    public init(mode: Mode, root: String?) {
        self.mode = mode
        self.root = root
    }

    func write(to writer: inout JSONWriter) {
        writer.beginObject()
        writer.key("mode")
        writer.string(mode.rawValue)
        writer.key("root")
        writer.string(root)
        writer.endObject()
    }

    static func decode(_ reader: ObjectReader) throws(ProtocolError) -> ContainmentStatus {
        let name = try reader.string("mode")
        guard let mode = Mode(rawValue: name) else {
            throw ProtocolError.badRequest("unknown containment mode \(JSONValue.string(name).serialized())")
                .inField(reader.fieldName("mode"))
        }
        return ContainmentStatus(mode: mode, root: try reader.optionalString("root"))
    }
}
