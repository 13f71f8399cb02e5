/// The reply to `reload`:
/// `{"id":..,"ok":true,"file":"...","added":[..],"changed":[..],"removed":[..],"restart_needed":[..]}`.
///
/// The task names are sorted; `restart_needed` lists the top-level keys that changed in the
/// file but take effect only when the supervisor restarts (`socket`, `socket_mode`,
/// `socket_group`, `state_dir`, `containment`, `cgroup_root`, `metrics_listen`).
public struct ReloadReply: Sendable, Hashable {
    /// The configuration file that was read.
    public var file: String
    public var added: [String]
    public var changed: [String]
    public var removed: [String]
    public var restartNeeded: [String]

    public init(file: String, added: [String], changed: [String], removed: [String], restartNeeded: [String]) {
        self.file = file
        self.added = added
        self.changed = changed
        self.removed = removed
        self.restartNeeded = restartNeeded
    }

    func writeMembers(to writer: inout JSONWriter) {
        writer.key("file")
        writer.string(file)
        let lists: [(StaticString, [String])] = [
            ("added", added), ("changed", changed), ("removed", removed), ("restart_needed", restartNeeded),
        ]
        for (key, names) in lists {
            writer.key(key)
            writer.beginArray()
            for name in names { writer.string(name) }
            writer.endArray()
        }
    }

    /// Lenient: a supervisor that answered a bare `{"ok":true}` gives empty lists.
    static func decode(_ reader: ObjectReader) throws(ProtocolError) -> ReloadReply {
        ReloadReply(
            file: try reader.optionalString("file") ?? "",
            added: try reader.optionalStringArray("added") ?? [],
            changed: try reader.optionalStringArray("changed") ?? [],
            removed: try reader.optionalStringArray("removed") ?? [],
            restartNeeded: try reader.optionalStringArray("restart_needed") ?? [])
    }
}
