/// The reply to `status`:
/// `{"id":..,"ok":true,"loop":{...},"tasks":[...],"state_file":{...},"containment":{...},"hooks":[...],"cluster":{...}}`.
public struct StatusReply: Sendable, Hashable {
    public var loop: LoopStatus
    /// The tasks asked for (all of them by default), in the supervisor's order.
    ///
    /// - Complexity: O(1) to read, but for a reply made of records (the supervisor's), whose
    ///   rows are gathered from them: O(tasks) each time.
    public var tasks: [TaskStatus] {
        get { rows.tasks }
        // Setting the rows drops the records' text: it showed the rows before.
        set { rows = Rows(tasks: newValue) }
    }
    /// The rows, as values or as records that carry their text.
    private var rows: Rows
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
        rows = Rows(tasks: tasks)
        self.stateFile = stateFile
        self.containment = containment
    }

    /// A reply whose rows are `records`' rows, written as the records' text (copied, not
    /// formatted again).
    public init(
        loop: LoopStatus, records: [TaskStatusRecord], stateFile: StateFileStatus? = nil,
        containment: ContainmentStatus? = nil, hooks: [HookRunStatus] = [], cluster: ClusterStatus? = nil
    ) {
        self.init(
            loop: loop, tasks: [], stateFile: stateFile, containment: containment, hooks: hooks, cluster: cluster)
        rows = Rows(records: records)
    }

    /// A reply whose rows are `list`'s records, written as its joined text (copied in one piece).
    public init(
        loop: LoopStatus, list: TaskStatusRecordList, stateFile: StateFileStatus? = nil,
        containment: ContainmentStatus? = nil, hooks: [HookRunStatus] = [], cluster: ClusterStatus? = nil
    ) {
        self.init(
            loop: loop, tasks: [], stateFile: stateFile, containment: containment, hooks: hooks, cluster: cluster)
        rows = Rows(records: list.records, joined: list.joined)
    }

    /// A status's rows: plain values (a decoded reply, a test's), or records with their text. Two
    /// are equal when their rows are, whichever way they are held.
    private struct Rows: Sendable, Hashable {
        private var values: [TaskStatus]
        private(set) var records: [TaskStatusRecord]?
        /// The text of `records` (all with text), joined by commas, when the reply was made
        /// from a ``TaskStatusRecordList``.
        private(set) var joined: [UInt8]?

        init(tasks: [TaskStatus]) {
            values = tasks
            records = nil
            joined = nil
        }

        init(records: [TaskStatusRecord], joined: [UInt8]? = nil) {
            values = []
            self.records = records
            self.joined = joined
        }

        var tasks: [TaskStatus] { records.map { $0.map { $0.status } } ?? values }
        var count: Int { records?.count ?? values.count }

        /// About how many bytes the rows take encoded: exact for records with text.
        var encodedSizeEstimate: Int {
            guard let records else { return values.count * 320 }
            if let joined { return records.isEmpty ? 0 : joined.count + 1 }
            return records.reduce(records.count) { $0 + ($1.encoded?.count ?? 320) }
        }

        func sizeEstimate(upTo limit: Int) -> Int {
            var estimate = 0
            if let joined, let records {
                // As the loop below counts: each row's bytes and one.
                return records.isEmpty ? 0 : joined.count + 1
            } else if let records {
                for record in records where estimate < limit {
                    estimate +=
                        record.encoded.map { $0.count + 1 } ?? 300 + (record.status.last?.stderrTail.utf8.count ?? 0)
                }
            } else {
                for task in values where estimate < limit {
                    estimate += 300 + (task.last?.stderrTail.utf8.count ?? 0)
                }
            }
            return estimate
        }

        /// Row `index` (its text, when kept), with a comma before it if the writer needs one.
        func write(_ index: Int, to writer: inout JSONWriter) {
            if let records {
                records[index].write(to: &writer)
            } else {
                values[index].write(to: &writer)
            }
        }

        func writeAll(to writer: inout JSONWriter) {
            if let records {
                for record in records { record.write(to: &writer) }
            } else {
                for task in values { task.write(to: &writer) }
            }
        }

        static func == (lhs: Rows, rhs: Rows) -> Bool {
            if lhs.records == nil && rhs.records == nil { return lhs.values == rhs.values }
            return lhs.tasks == rhs.tasks
        }

        func hash(into hasher: inout Hasher) {
            hasher.combine(tasks)
        }
    }

    /// How many rows the reply has (O(1), unlike `tasks.count` for a reply of records).
    var taskCount: Int { rows.count }

    /// About how many bytes the rows take encoded.
    var encodedTasksSizeEstimate: Int { rows.encodedSizeEstimate }

    /// Row `index`, with the comma before it but the first (``SlicedStatusReply``).
    func writeTask(_ index: Int, to writer: inout JSONWriter) {
        rows.write(index, to: &writer)
    }

    /// About how many bytes the rows take encoded, counted until `limit` is reached
    /// (``SlicedStatusReply``): exact for records with text, 300 a row plus its stderr tail otherwise.
    func rowsSizeEstimate(upTo limit: Int) -> Int {
        rows.sizeEstimate(upTo: limit)
    }

    /// Appends the reply with id `id` and its newline to `output`, exactly as ``Reply`` writes
    /// it, when its rows are records (their text copied straight into `output`); returns false,
    /// appending nothing, otherwise.
    func encodeLine(id: JSONValue, into output: inout [UInt8]) -> Bool {
        guard let records = rows.records else { return false }
        var head = JSONWriter(capacity: 512)
        head.beginObject()
        head.key("id")
        head.value(id)
        head.key("ok")
        head.bool(true)
        writeMembersBeforeTasks(to: &head)
        output.reserveCapacity(output.count + head.bytes.count + rows.encodedSizeEstimate + 512)
        head.append(to: &output)
        if let joined = rows.joined {
            output.append(contentsOf: joined)
        } else {
            appendRows(records, to: &output)
        }
        var tail = JSONWriter(capacity: 512)
        writeMembersAfterTasks(to: &tail)
        tail.endObject()
        tail.appendLine(to: &output)
        return true
    }

    private func appendRows(_ records: [TaskStatusRecord], to output: inout [UInt8]) {
        for (index, record) in records.enumerated() {
            if index > 0 { output.append(UInt8(ascii: ",")) }
            if let encoded = record.encoded {
                output.append(contentsOf: encoded)
            } else {
                var writer = JSONWriter(capacity: 320 + (record.status.last?.stderrTail.utf8.count ?? 0))
                record.status.write(to: &writer)
                writer.append(to: &output)
            }
        }
    }

    func writeMembers(to writer: inout JSONWriter) {
        writeMembersBeforeTasks(to: &writer)
        rows.writeAll(to: &writer)
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
