/// A reply of the control protocol: `{"id":..,"ok":true,...}` or
/// `{"id":..,"ok":false,"error":{"code":"...","message":"..."}}`.
///
/// Keys are written in SPEC order with `id` first; absent values are written as
/// `null`, never left out. Times are RFC 3339 UTC with milliseconds.
///
/// Which success shape answers which command:
///
/// | command | body |
/// | --- | --- |
/// | `ping` | ``Body/ping(_:)`` |
/// | `status` | ``Body/status(_:)`` |
/// | `schedule` | ``Body/schedule(_:)`` |
/// | `stop_timer` | ``Body/stopTimer(_:)`` |
/// | `pause`, `resume` | ``Body/pause(_:)`` |
/// | `logs` | ``Body/logs(_:)`` (with `follow`, `task_log` events follow it) |
/// | `result` | ``Body/result(_:)``, or ``Body/noResult(task:)`` before the first success |
/// | `results` | ``Body/results(_:)`` |
/// | `run` with `wait` | ``Body/runFinished(_:)`` |
/// | `reload` | ``Body/reloaded(_:)`` |
/// | `metrics` | ``Body/metrics(_:)`` |
/// | every other command, and `run` without `wait` | ``Body/ok`` |
///
/// Decoding (the client's side) ignores keys it does not know, because the
/// SPEC allows replies to gain keys.
public struct Reply: Sendable, Hashable {
    /// The request's id, echoed; `null` when the request had none or it could not be read.
    public var id: JSONValue
    public var body: Body

    /// What the reply says.
    public enum Body: Sendable, Hashable {
        /// `{"id":..,"ok":true}`.
        case ok
        /// `{"id":..,"ok":false,"error":{"code":..,"message":..}}`.
        case failure(ProtocolError)
        case ping(PingReply)
        case status(StatusReply)
        case schedule(ScheduleReply)
        case stopTimer(StopTimerReply)
        /// The reply to `pause` and `resume`.
        case pause(PauseReply)
        /// The reply to `logs`: the task's kept stderr lines.
        case logs(LogsReply)
        /// The reply to `history`: the task's kept runs, newest first.
        case history(HistoryReply)
        case result(TaskResult)
        /// A `result` reply for a task with no successful result yet:
        /// `"task":"w1","run":null,"time":null,"output":null,"truncated":false`.
        case noResult(task: String)
        /// `{"results":{"w1":{...as result, without ok...}}}`, in this order.
        case results([TaskResult])
        /// The reply to `run` with `wait`.
        case runFinished(RunOutcome)
        /// The reply to `reload`: what changed.
        case reloaded(ReloadReply)
        /// The reply to `metrics`: the Prometheus text.
        case metrics(MetricsReply)
    }

    public init(id: JSONValue = .null, body: Body) {
        self.id = id
        self.body = body
    }

    /// A reply to `request`, echoing its id.
    public init(to request: Request, body: Body) {
        self.init(id: request.id ?? .null, body: body)
    }

    /// Whether this is an `"ok":true` reply.
    public var isSuccess: Bool {
        if case .failure = body { return false }
        return true
    }

    /// About how many bytes the encoded reply takes, so that the writer seldom grows.
    var encodedSizeEstimate: Int {
        switch body {
        case .status(let status): return 400 + status.encodedTasksSizeEstimate
        case .result(let result): return 160 + result.output.count + result.output.count / 8
        case .metrics(let metrics): return 64 + metrics.text.utf8.count + metrics.text.utf8.count / 8
        case .results(let results): return 64 + results.reduce(0) { $0 + 160 + $1.output.count + $1.output.count / 8 }
        default: return 160
        }
    }

    /// The reply as one line of compact JSON, without the newline.
    public func encoded() -> String {
        var writer = JSONWriter(capacity: encodedSizeEstimate)
        write(to: &writer)
        return writer.text
    }

    /// The reply as one line of compact JSON, with its newline.
    public func encodedLine() -> [UInt8] {
        var writer = JSONWriter(capacity: encodedSizeEstimate)
        write(to: &writer)
        return writer.line()
    }

    /// Appends the reply and its newline to `output`.
    public func encodeLine(into output: inout [UInt8]) {
        // A status of kept rows: the rows' text goes straight into `output`, not through a
        // writer's buffer first (a copy of every byte, and a call a row).
        if case .status(let status) = body, status.encodeLine(id: id, into: &output) { return }
        var writer = JSONWriter(capacity: encodedSizeEstimate)
        write(to: &writer)
        writer.appendLine(to: &output)
    }

    func write(to writer: inout JSONWriter) {
        writer.beginObject()
        writer.key("id")
        writer.value(id)
        writer.key("ok")
        writer.bool(isSuccess)
        switch body {
        case .ok:
            break
        case .failure(let error):
            writer.key("error")
            writer.beginObject()
            writer.key("code")
            writer.string(error.code.rawValue)
            writer.key("message")
            writer.string(error.message)
            if let leader = error.leader {
                writer.key("leader")
                writer.string(leader)
            }
            writer.endObject()
        case .ping(let ping):
            ping.writeMembers(to: &writer)
        case .status(let status):
            status.writeMembers(to: &writer)
        case .schedule(let schedule):
            schedule.writeMembers(to: &writer)
        case .stopTimer(let stopTimer):
            stopTimer.writeMembers(to: &writer)
        case .pause(let pause):
            pause.writeMembers(to: &writer)
        case .logs(let logs):
            logs.writeMembers(to: &writer)
        case .history(let history):
            history.writeMembers(to: &writer)
        case .result(let result):
            result.writeMembers(to: &writer)
        case .noResult(let task):
            TaskResult.writeMissingMembers(task: task, to: &writer)
        case .results(let results):
            writer.key("results")
            writer.beginObject()
            for result in results {
                writer.key(name: result.task)
                writer.beginObject()
                result.writeMembers(to: &writer)
                writer.endObject()
            }
            writer.endObject()
        case .runFinished(let outcome):
            outcome.writeMembers(to: &writer)
        case .reloaded(let reload):
            reload.writeMembers(to: &writer)
        case .metrics(let metrics):
            metrics.writeMembers(to: &writer)
        }
        writer.endObject()
    }

    /// Decodes a reply line to `command` (the shape depends on the command: see the table).
    ///
    /// - Throws: ``ErrorCode/badRequest`` when the line is not a reply of that shape.
    ///   An error reply is not thrown: it decodes to ``Body/failure(_:)``.
    @inlinable
    public static func decode(_ line: some Collection<UInt8>, for command: Command) throws(ProtocolError) -> Reply {
        try decode(try JSONParser.parse(line, mode: .strict), for: command)
    }

    /// Decodes a reply line given as text.
    public static func decode(_ line: String, for command: Command) throws(ProtocolError) -> Reply {
        try decode(line.utf8, for: command)
    }

    /// Decodes a reply to `command` from a parsed JSON value.
    public static func decode(_ value: JSONValue, for command: Command) throws(ProtocolError) -> Reply {
        guard case .object(let object) = value else {
            throw .badRequest("a reply must be a JSON object, got \(value.shortDescription)")
        }
        let reader = ObjectReader(object)
        let id = object["id"] ?? .null
        guard try reader.bool("ok") else {
            let error = try reader.object("error")
            let codeText = try error.string("code")
            let message = try error.string("message")
            guard let code = ErrorCode(rawValue: codeText) else {
                return Reply(
                    id: id,
                    body: .failure(
                        ProtocolError(
                            .internal, "(error code \(JSONValue.string(codeText).shortDescription)) \(message)")))
            }
            var failure = ProtocolError(code, message)
            failure.leader = try error.optionalString("leader")
            return Reply(id: id, body: .failure(failure))
        }
        let body: Body
        switch command {
        case .ping:
            body = .ping(try PingReply.decode(reader))
        case .status:
            body = .status(try StatusReply.decode(reader))
        case .schedule:
            body = .schedule(try ScheduleReply.decode(reader))
        case .stopTimer:
            body = .stopTimer(try StopTimerReply.decode(reader))
        case .pause, .resume:
            body = .pause(try PauseReply.decode(reader))
        case .logs:
            body = .logs(try LogsReply.decode(reader))
        case .history:
            body = .history(try HistoryReply.decode(reader))
        case .result:
            if let run = object["run"], run.isNull {
                body = .noResult(task: try reader.string("task"))
            } else {
                body = .result(try TaskResult.decode(reader))
            }
        case .results:
            let results = try reader.object("results")
            var decoded: [TaskResult] = []
            decoded.reserveCapacity(results.object.count)
            for pair in results.object.pairs {
                guard case .object(let member) = pair.value else {
                    throw ProtocolError.badRequest("expected an object, got \(pair.value.shortDescription)")
                        .inField(results.fieldName(pair.key))
                }
                let result = try TaskResult.decode(ObjectReader(member, path: results.fieldName(pair.key) + "."))
                // The key names the task; a member that says another would encode as a second
                // entry under that other name.
                guard result.task == pair.key else {
                    throw ProtocolError.badRequest(
                        "the result of task \(JSONValue.string(result.task).shortDescription) is filed under another name"
                    )
                    .inField(results.fieldName(pair.key) + ".task")
                }
                decoded.append(result)
            }
            body = .results(decoded)
        case .run(_, let wait, _) where wait:
            body = .runFinished(try RunOutcome.decode(reader))
        case .reload:
            body = .reloaded(try ReloadReply.decode(reader))
        case .metrics:
            body = .metrics(try MetricsReply.decode(reader))
        case .run, .unschedule, .cancel, .emit, .stop, .start, .restart, .watch, .shutdown:
            body = .ok
        }
        return Reply(id: id, body: body)
    }
}
