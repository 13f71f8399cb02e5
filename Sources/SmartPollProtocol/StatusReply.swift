/// The reply to `status`:
/// `{"id":..,"ok":true,"loop":{...},"tasks":[...],"state_file":{...},"containment":{...},"hooks":[...],"cluster":{...}}`.
public struct StatusReply: Sendable, Hashable {
    public var loop: LoopStatus
    /// The tasks asked for (all of them by default), in the supervisor's order.
    public var tasks: [TaskStatus]
    /// The state file's health; `nil` (written as `null`) without a `state_dir`.
    public var stateFile: StateFileStatus?
    /// How runs are contained; `nil` (the member left out) from a supervisor that does not say.
    public var containment: ContainmentStatus?
    /// The command hook running and those waiting their turn, in order.
    public var hooks: [HookRunStatus]
    /// This member's part in its cluster; `nil` (the member left out) without `cluster`.
    public var cluster: ClusterStatus?

    public init(
        loop: LoopStatus, tasks: [TaskStatus], stateFile: StateFileStatus? = nil,
        containment: ContainmentStatus? = nil, hooks: [HookRunStatus] = [], cluster: ClusterStatus? = nil
    ) {
        self.hooks = hooks
        self.cluster = cluster
        self.loop = loop
        self.tasks = tasks
        self.stateFile = stateFile
        self.containment = containment
    }

    func writeMembers(to writer: inout JSONWriter) {
        writeMembersBeforeTasks(to: &writer)
        for task in tasks { task.write(to: &writer) }
        writeMembersAfterTasks(to: &writer)
    }

    /// `"loop":{...},"tasks":[`: what comes before the rows (``SlicedStatusReply``).
    func writeMembersBeforeTasks(to writer: inout JSONWriter) {
        writer.key("loop")
        loop.write(to: &writer)
        writer.key("tasks")
        writer.beginArray()
    }

    /// `],"state_file":...}` but the reply's closing brace: what comes after the rows.
    func writeMembersAfterTasks(to writer: inout JSONWriter) {
        writer.endArray()
        writer.key("state_file")
        if let stateFile { stateFile.write(to: &writer) } else { writer.null() }
        if let containment {
            writer.key("containment")
            containment.write(to: &writer)
        }
        writer.key("hooks")
        writer.beginArray()
        for hook in hooks { hook.write(to: &writer) }
        writer.endArray()
        if let cluster {
            writer.key("cluster")
            cluster.write(to: &writer)
        }
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
                throw ProtocolError.badRequest("expected an object, got \(element.shortDescription)").inField(
                    "tasks[\(index)]")
            }
            tasks.append(try TaskStatus.decode(ObjectReader(object, path: "tasks[\(index)].")))
        }
        // Optional: a supervisor older than the state file does not send it.
        let stateFile = try reader.optionalObject("state_file").map { (reader) throws(ProtocolError) in
            try StateFileStatus.decode(reader)
        }
        let containment = try reader.optionalObject("containment").map { (reader) throws(ProtocolError) in
            try ContainmentStatus.decode(reader)
        }
        var hooks: [HookRunStatus] = []
        // Optional: absent from supervisors before it.
        if let hooksValue = reader.object["hooks"] {
            guard case .array(let elements) = hooksValue else {
                throw ProtocolError.badRequest("expected an array, got \(hooksValue.shortDescription)").inField("hooks")
            }
            for (index, element) in elements.enumerated() {
                guard case .object(let object) = element else {
                    throw ProtocolError.badRequest("expected an object, got \(element.shortDescription)").inField(
                        "hooks[\(index)]")
                }
                hooks.append(try HookRunStatus.decode(ObjectReader(object, path: "hooks[\(index)].")))
            }
        }
        let cluster = try reader.optionalObject("cluster").map { (reader) throws(ProtocolError) in
            try ClusterStatus.decode(reader)
        }
        return StatusReply(
            loop: loop, tasks: tasks, stateFile: stateFile, containment: containment, hooks: hooks, cluster: cluster)
    }
}
