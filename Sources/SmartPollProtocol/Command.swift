/// A command of the control protocol (SPEC section 5) with its arguments.
///
/// Each case is one `cmd`; ``Name`` has the wire names. Decoding is strict:
/// a request may contain only `id`, `cmd` and the arguments of its command.
public enum Command: Sendable, Hashable {
    /// Version, protocol version, pid, uptime.
    case ping
    /// Loop state and per-task state; `tasks` limits the reply to these tasks
    /// (`nil`: all tasks).
    case status(tasks: [String]?)
    /// The library's schedule calls: `schedule(task, after:/at:)`, or with
    /// `sooner` `scheduleSooner(task, ...)`.
    ///
    /// - Important: Decoding guarantees that with `sooner` the time is a positive
    ///   `after` or a non-nil `at` (the library requires it).
    case schedule(task: String, when: ScheduleTime, sooner: Bool)
    /// Clear the task's schedule.
    case unschedule(task: String)
    /// The library's `stopTimer(task)`; the reply says whether the task is ready.
    case stopTimer(task: String)
    /// Schedule the task now; with `wait`, reply when the run this caused ends; with `output`
    /// too, the reply carries that run's stdout (failed run or not).
    case run(task: String, wait: Bool, output: Bool = false)
    /// Stop the task's running process (TERM, grace, KILL).
    case cancel(task: String)
    /// Keep the task from starting (its schedule still changes; a run in flight finishes).
    case pause(task: String)
    /// Let a paused task start again; one that fell due meanwhile starts at once.
    case resume(task: String)
    /// The task's last `lines` stderr lines kept (`nil`: all it keeps), oldest first; with
    /// `follow`, the connection then streams the task's new lines as `task_log` events.
    ///
    /// - Important: Decoding guarantees that `lines` is positive when given.
    case logs(task: String, lines: Int?, follow: Bool)
    /// The task's last `limit` finished runs kept (`nil`: all it keeps), newest first.
    ///
    /// - Important: Decoding guarantees that `limit` is not negative when given.
    case history(task: String, limit: Int?)
    /// The task's last successful result.
    case result(task: String)
    /// The last successful result of every task.
    case results
    /// Trigger the event hook `hook` with optional data (its stdin), exact bytes: on the wire
    /// `"data"` when they are UTF-8, `"data_base64"` otherwise (as results carry
    /// `"output_base64"`).
    case emit(hook: String, data: [UInt8]?)
    /// End the loop's run.
    case stop(wait: Bool)
    /// Start a new run of the loop.
    case start(wait: Bool)
    /// Stop, then start.
    case restart(wait: Bool)
    /// Re-read the configuration.
    case reload
    /// Turn the connection into a stream of events (of these tasks only, when given).
    case watch(tasks: [String]?)
    /// Stop everything and exit.
    case shutdown
    /// The supervisor's counters and histograms in the Prometheus text format.
    case metrics

    /// The `cmd` values of the protocol.
    public enum Name: String, Sendable, Hashable, CaseIterable {
        case ping, status, schedule, unschedule
        case stopTimer = "stop_timer"
        case run, cancel, result, results, emit, stop, start, restart, reload, watch, shutdown
        case pause, resume, logs
        case history
        case metrics

        /// The argument keys the command accepts, in wire order.
        public var argumentKeys: [String] {
            switch self {
            case .ping, .results, .reload, .shutdown, .metrics: return []
            case .status, .watch: return ["tasks"]
            case .schedule: return ["task", "after", "at", "sooner"]
            case .unschedule, .stopTimer, .cancel, .result, .pause, .resume: return ["task"]
            case .run: return ["task", "wait", "output"]
            case .logs: return ["task", "lines", "follow"]
            case .history: return ["task", "limit"]
            case .emit: return ["hook", "data", "data_base64"]
            case .stop, .start, .restart: return ["wait"]
            }
        }
    }

    /// The wire name of this command.
    public var name: Name {
        switch self {
        case .ping: return .ping
        case .status: return .status
        case .schedule: return .schedule
        case .unschedule: return .unschedule
        case .stopTimer: return .stopTimer
        case .run: return .run
        case .cancel: return .cancel
        case .result: return .result
        case .results: return .results
        case .emit: return .emit
        case .stop: return .stop
        case .start: return .start
        case .restart: return .restart
        case .reload: return .reload
        case .watch: return .watch
        case .shutdown: return .shutdown
        case .pause: return .pause
        case .resume: return .resume
        case .logs: return .logs
        case .history: return .history
        case .metrics: return .metrics
        }
    }

    /// The task the command names, if it names one.
    public var task: String? {
        switch self {
        case .schedule(let task, _, _), .unschedule(let task), .stopTimer(let task),
            .run(let task, _, _), .cancel(let task), .result(let task), .pause(let task), .resume(let task),
            .logs(let task, _, _), .history(let task, _):
            return task
        case .ping, .status, .results, .emit, .stop, .start, .restart, .reload, .watch, .shutdown, .metrics:
            return nil
        }
    }

    /// Decodes `cmd` and the arguments from a request object.
    ///
    /// - Parameter defaultTask: The task to use when `task` is missing (task
    ///   directives on descriptor 3 may leave it out); `nil` makes `task` required.
    static func decode(_ request: ObjectReader, defaultTask: String?) throws(ProtocolError) -> Command {
        let cmdValue = try request.value("cmd")
        guard case .string(let cmd) = cmdValue else {
            throw ProtocolError.badRequest("expected a command name string, got \(cmdValue.shortDescription)").inField(
                "cmd")
        }
        guard let name = Name(rawValue: cmd) else {
            throw ProtocolError(.unknownCommand, "unknown command \(cmdValue.shortDescription)")
        }
        try request.rejectUnknownKeys(allowed: ["id", "cmd"] + name.argumentKeys, context: "for command \"\(cmd)\"")

        func task() throws(ProtocolError) -> String {
            if request.object["task"] == nil, let defaultTask { return defaultTask }
            return try request.string("task")
        }
        switch name {
        case .ping: return .ping
        case .status: return .status(tasks: try request.optionalStringArray("tasks"))
        case .schedule: return try decodeSchedule(request, task: try task())
        case .unschedule: return .unschedule(task: try task())
        case .stopTimer: return .stopTimer(task: try task())
        case .run:
            let wait = try request.bool("wait", default: false)
            let output = try request.bool("output", default: false)
            if output && !wait {
                throw ProtocolError(.invalidArgument, "output needs wait: true (the output of the run waited for)")
            }
            return .run(task: try task(), wait: wait, output: output)
        case .cancel: return .cancel(task: try task())
        case .result: return .result(task: try task())
        case .pause: return .pause(task: try task())
        case .resume: return .resume(task: try task())
        case .logs:
            let lines = try request.optionalInt("lines")
            if let lines, lines <= 0 {
                throw ProtocolError(.invalidArgument, "lines must be a positive number, got \(lines)").inField("lines")
            }
            return .logs(task: try task(), lines: lines, follow: try request.bool("follow", default: false))
        case .history:
            let limit = try request.optionalInt("limit")
            if let limit, limit < 0 {
                throw ProtocolError.badRequest("limit must not be negative, got \(limit)").inField("limit")
            }
            return .history(task: try task(), limit: limit)
        case .results: return .results
        case .emit: return .emit(hook: try request.string("hook"), data: try decodeEmitData(request))
        case .stop: return .stop(wait: try request.bool("wait", default: false))
        case .start: return .start(wait: try request.bool("wait", default: false))
        case .restart: return .restart(wait: try request.bool("wait", default: false))
        case .reload: return .reload
        case .watch: return .watch(tasks: try request.optionalStringArray("tasks"))
        case .shutdown: return .shutdown
        case .metrics: return .metrics
        }
    }

    /// `data` (text) or `data_base64` (any bytes), not both; neither: no data.
    private static func decodeEmitData(_ request: ObjectReader) throws(ProtocolError) -> [UInt8]? {
        let text = try request.optionalString("data")
        let encoded = try request.optionalString("data_base64")
        switch (text, encoded) {
        case (let text?, nil):
            return Array(text.utf8)
        case (nil, let encoded?):
            guard let bytes = Base64.decode(encoded) else {
                throw ProtocolError(.invalidArgument, "data_base64 is not valid Base64")
            }
            return bytes
        case (nil, nil):
            return nil
        case (_?, _?):
            throw ProtocolError(.invalidArgument, "give data or data_base64, not both")
        }
    }

    private static func decodeSchedule(_ request: ObjectReader, task: String) throws(ProtocolError) -> Command {
        let after = request.optionalValue("after")
        // "at": null is meaningful (clear), so presence is what counts.
        let at = request.object["at"]
        let sooner = try request.bool("sooner", default: false)
        let when: ScheduleTime
        switch (after, at) {
        case (.some, .some):
            throw .invalidArgument("give either \"after\" or \"at\", not both")
        case (.none, .none):
            throw .invalidArgument("missing \"after\" (a duration) or \"at\" (a time)")
        case (.some(let value), .none):
            when = .after(try DurationFormat.decode(value, field: request.fieldName("after")))
        case (.none, .some(let value)):
            switch value {
            case .null: when = .at(nil)
            case .string: when = .at(try request.timestamp("at"))
            default:
                throw ProtocolError.badRequest("expected a time string or null, got \(value.shortDescription)")
                    .inField(request.fieldName("at"))
            }
        }
        if sooner {
            switch when {
            case .after(let duration) where duration <= .zero:
                throw .invalidArgument("\"sooner\" needs a positive \"after\", got \(DurationFormat.format(duration))")
            case .at(nil):
                throw .invalidArgument("\"sooner\" needs a time in \"at\", got null")
            case .after, .at:
                break
            }
        }
        return .schedule(task: task, when: when, sooner: sooner)
    }

    /// Writes `"cmd":...` and the arguments (the caller has opened the object).
    /// Optional arguments that are `nil` are left out; Booleans are always written.
    func writeMembers(to writer: inout JSONWriter) {
        writer.key("cmd")
        writer.string(name.rawValue)
        switch self {
        case .ping, .results, .reload, .shutdown, .metrics:
            break
        case .status(let tasks), .watch(let tasks):
            if let tasks {
                writer.key("tasks")
                writer.beginArray()
                for task in tasks { writer.string(task) }
                writer.endArray()
            }
        case .schedule(let task, let when, let sooner):
            writer.key("task")
            writer.string(task)
            switch when {
            case .after(let duration):
                writer.key("after")
                writer.string(DurationFormat.format(duration))
            case .at(let time):
                writer.key("at")
                // To the nanosecond: the client's time, not a rounded one.
                writer.timestamp(time, exact: true)
            }
            writer.key("sooner")
            writer.bool(sooner)
        case .unschedule(let task), .stopTimer(let task), .cancel(let task), .result(let task), .pause(let task),
            .resume(let task):
            writer.key("task")
            writer.string(task)
        case .run(let task, let wait, let output):
            writer.key("task")
            writer.string(task)
            writer.key("wait")
            writer.bool(wait)
            if output {
                writer.key("output")
                writer.bool(true)
            }
        case .logs(let task, let lines, let follow):
            writer.key("task")
            writer.string(task)
            if let lines {
                writer.key("lines")
                writer.int(lines)
            }
            writer.key("follow")
            writer.bool(follow)
        case .history(let task, let limit):
            writer.key("task")
            writer.string(task)
            if let limit {
                writer.key("limit")
                writer.int(limit)
            }
        case .emit(let hook, let data):
            writer.key("hook")
            writer.string(hook)
            if let data { writer.bytes(data, textKey: "data", base64Key: "data_base64") }
        case .stop(let wait), .start(let wait), .restart(let wait):
            writer.key("wait")
            writer.bool(wait)
        }
    }
}
