/// The reply to `status`: `{"id":..,"ok":true,"loop":{...},"tasks":[...]}`.
public struct StatusReply: Sendable, Hashable {
    public var loop: LoopStatus
    /// The tasks asked for (all of them by default), in the supervisor's order.
    public var tasks: [TaskStatus]

    public init(loop: LoopStatus, tasks: [TaskStatus]) {
        self.loop = loop
        self.tasks = tasks
    }

    func writeMembers(to writer: inout JSONWriter) {
        writer.key("loop")
        loop.write(to: &writer)
        writer.key("tasks")
        writer.beginArray()
        for task in tasks { task.write(to: &writer) }
        writer.endArray()
    }

    static func decode(_ reader: ObjectReader) throws(ProtocolError) -> StatusReply {
        let loop = try LoopStatus.decode(try reader.object("loop"))
        let tasksValue = try reader.value("tasks")
        guard case .array(let elements) = tasksValue else {
            throw ProtocolError.badRequest("expected an array, got \(tasksValue.shortDescription)").inField("tasks")
        }
        var tasks: [TaskStatus] = []
        tasks.reserveCapacity(elements.count)
        for (index, element) in elements.enumerated() {
            guard case .object(let object) = element else {
                throw ProtocolError.badRequest("expected an object, got \(element.shortDescription)").inField("tasks[\(index)]")
            }
            tasks.append(try TaskStatus.decode(ObjectReader(object, path: "tasks[\(index)].")))
        }
        return StatusReply(loop: loop, tasks: tasks)
    }
}
