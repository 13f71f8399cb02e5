/// The reply to `logs`: `{"id":..,"ok":true,"task":"w1","lines":[{"time":T,"run":N,"line":"..."}]}`,
/// the task's kept stderr lines, oldest first.
public struct LogsReply: Sendable, Hashable {
    public var task: String
    public var lines: [Line]

    /// One stderr line: when the supervisor read it, the run that wrote it, and its text
    /// (without the newline; at most 4 KiB, a longer line comes in pieces).
    public struct Line: Sendable, Hashable {
        public var time: Timestamp
        public var run: Int
        public var line: String

        public init(time: Timestamp, run: Int, line: String) {
            self.time = time
            self.run = run
            self.line = line
        }
    }

    public init(task: String, lines: [Line]) {
        self.task = task
        self.lines = lines
    }

    func writeMembers(to writer: inout JSONWriter) {
        writeMembersBeforeLines(to: &writer)
        for index in lines.indices { writeLine(index, to: &writer) }
        writer.endArray()
    }

    /// `"task":T,"lines":[`: what comes before the lines (``SlicedStatusReply`` slices them too).
    func writeMembersBeforeLines(to writer: inout JSONWriter) {
        writer.key("task")
        writer.string(task)
        writer.key("lines")
        writer.beginArray()
    }

    func writeLine(_ index: Int, to writer: inout JSONWriter) {
        let line = lines[index]
        writer.beginObject()
        writer.key("time")
        writer.timestamp(line.time)
        writer.key("run")
        writer.int(line.run)
        writer.key("line")
        writer.string(line.line)
        writer.endObject()
    }

    static func decode(_ reader: ObjectReader) throws(ProtocolError) -> LogsReply {
        let value = try reader.value("lines")
        guard case .array(let elements) = value else {
            throw ProtocolError.badRequest("expected an array, got \(value.shortDescription)")
                .inField(reader.fieldName("lines"))
        }
        var lines: [Line] = []
        lines.reserveCapacity(elements.count)
        for (index, element) in elements.enumerated() {
            guard case .object(let object) = element else {
                throw ProtocolError.badRequest("expected an object, got \(element.shortDescription)")
                    .inField("\(reader.fieldName("lines"))[\(index)]")
            }
            let entry = ObjectReader(object, path: "\(reader.fieldName("lines"))[\(index)].")
            lines.append(
                Line(time: try entry.timestamp("time"), run: try entry.int("run"), line: try entry.string("line")))
        }
        return LogsReply(task: try reader.string("task"), lines: lines)
    }
}
