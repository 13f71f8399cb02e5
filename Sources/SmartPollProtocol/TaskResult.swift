/// A task's last successful result, as in the `result` and `results` replies:
/// `{"task":"w1","run":N,"time":T,"output":"...","truncated":false}`.
///
/// Output that is valid UTF-8 is written as `"output"`; other output as
/// `"output_base64"` (standard padded Base64) in the same position.
public struct TaskResult: Sendable, Hashable {
    public var task: String
    /// The run that produced it.
    public var run: Int
    /// When the run ended.
    public var time: Timestamp
    /// The captured stdout.
    public var output: [UInt8]
    /// Whether stdout exceeded `capture` and was cut.
    public var truncated: Bool

    public init(task: String, run: Int, time: Timestamp, output: [UInt8], truncated: Bool) {
        self.task = task
        self.run = run
        self.time = time
        self.output = output
        self.truncated = truncated
    }

    /// The output as text, when it is valid UTF-8.
    public var outputText: String? { String(validating: output, as: UTF8.self) }

    func writeMembers(to writer: inout JSONWriter) {
        writeMembersBeforeOutput(to: &writer)
        writer.bytes(output, textKey: "output", base64Key: "output_base64")
        writer.key("truncated")
        writer.bool(truncated)
    }

    /// Writes `task`, `run` and `time`: the members before the output (``SlicedReply`` writes
    /// the rest itself).
    func writeMembersBeforeOutput(to writer: inout JSONWriter) {
        writer.key("task")
        writer.string(task)
        writer.key("run")
        writer.int(run)
        writer.key("time")
        writer.timestamp(time)
    }

    /// Writes the members of a `result` reply for a task without a result yet:
    /// `"task":"w1","run":null,"time":null,"output":null,"truncated":false`.
    static func writeMissingMembers(task: String, to writer: inout JSONWriter) {
        writer.key("task")
        writer.string(task)
        for key: StaticString in ["run", "time", "output"] {
            writer.key(key)
            writer.null()
        }
        writer.key("truncated")
        writer.bool(false)
    }

    static func decode(_ reader: ObjectReader) throws(ProtocolError) -> TaskResult {
        let output: [UInt8]
        if let text = try reader.optionalString("output") {
            output = Array(text.utf8)
        } else if let encoded = try reader.optionalString("output_base64") {
            guard let bytes = Base64.decode(encoded) else {
                throw ProtocolError.badRequest("invalid Base64").inField(reader.fieldName("output_base64"))
            }
            output = bytes
        } else {
            throw reader.missing("output")
        }
        return TaskResult(
            task: try reader.string("task"),
            run: try reader.int("run"),
            time: try reader.timestamp("time"),
            output: output,
            truncated: try reader.bool("truncated"))
    }
}
