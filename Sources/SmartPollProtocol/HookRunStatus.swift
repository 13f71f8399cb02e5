/// A command hook in a `status` reply, running or waiting its turn (command hooks run one at a
/// time): `{"name":"refresh","running":true,"run":N,"pid":N,"started":T}`; a waiting one has
/// `"running":false` and nulls.
public struct HookRunStatus: Sendable, Hashable {
    public var name: String
    public var running: Bool
    /// The run's id, process id and start while it runs; `nil` while it waits.
    public var run: Int?
    public var pid: Int?
    public var started: Timestamp?

    public init(name: String, running: Bool, run: Int? = nil, pid: Int? = nil, started: Timestamp? = nil) {
        self.name = name
        self.running = running
        self.run = run
        self.pid = pid
        self.started = started
    }

    func write(to writer: inout JSONWriter) {
        writer.beginObject()
        writer.key("name")
        writer.string(name)
        writer.key("running")
        writer.bool(running)
        writer.key("run")
        writer.int(run)
        writer.key("pid")
        writer.int(pid)
        writer.key("started")
        writer.timestamp(started)
        writer.endObject()
    }

    static func decode(_ reader: ObjectReader) throws(ProtocolError) -> HookRunStatus {
        HookRunStatus(
            name: try reader.string("name"),
            running: try reader.bool("running"),
            run: try reader.optionalInt("run"),
            pid: try reader.optionalInt("pid"),
            started: try reader.optionalTimestamp("started"))
    }
}
