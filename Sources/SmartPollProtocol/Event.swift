/// An event of a `watch` stream: `{"event":"<name>","time":T,...}`, one per line.
///
/// Shapes (keys in this order; absent values are `null`):
///
/// | event | members after `event` and `time` |
/// | --- | --- |
/// | `loop_started` | — |
/// | `loop_stopped` | — |
/// | `loop_failed` | `error` (string) |
/// | `task_scheduled` | `task`, `next` (time or null) |
/// | `task_unscheduled` | `task` |
/// | `task_started` | `task`, `run`, `pid`, `due` (time or null: when it was due), `late_ms` (number or null: how long after `due` the process started) |
/// | `task_finished` | `task`, `run`, `exit_code`, `signal`, `timed_out`, `succeeded`, `duration_ms`, `changed` |
/// | `hook_ran` | `hook` |
/// | `task_paused` | `task` |
/// | `task_resumed` | `task` |
/// | `task_log` | `task`, `run`, `line` (one stderr line of the run, without its newline; only to `logs` with `follow`) |
/// | `config_reloaded` | `added`, `changed`, `removed` (arrays of task names) |
/// | `leader_changed` | `leader` (the leading member's node, or null), `role` (`"leader"` or `"standby"`: this member's) |
///
/// Decoding ignores keys it does not know (events may gain keys).
public struct Event: Sendable, Hashable {
    /// When it happened.
    public var time: Timestamp
    public var kind: Kind

    /// What happened.
    public enum Kind: Sendable, Hashable {
        case loopStarted
        case loopStopped
        case loopFailed(error: String)
        case taskScheduled(task: String, next: Timestamp?)
        case taskUnscheduled(task: String)
        case taskStarted(task: String, run: Int, pid: Int, due: Timestamp?, lateMilliseconds: Double?)
        /// `exitCode` is `nil` after a signal; `durationMilliseconds` is wall-clock;
        /// `cpuMilliseconds` is the user plus system CPU time of every process of the run, or
        /// `nil` when unknown; `changed` says whether the result differs from the previous
        /// successful one.
        case taskFinished(
            task: String, run: Int, exitCode: Int?, signal: Int?, timedOut: Bool, succeeded: Bool,
            durationMilliseconds: Double, cpuMilliseconds: Double?, changed: Bool)
        case hookRan(hook: String)
        /// `pause` paused the task.
        case taskPaused(task: String)
        /// `resume` resumed the task.
        case taskResumed(task: String)
        /// A stderr line of a task's run, as the log got it (at most 4 KiB): streamed to `logs`
        /// with `follow` only, never to `watch`.
        case taskLog(task: String, run: Int, line: String)
        /// The tasks the new configuration added, changed and removed, each sorted.
        case configReloaded(added: [String], changed: [String], removed: [String])
        /// A member of a cluster learnt of a new leader (nil: none known), or its own role changed.
        case leaderChanged(leader: String?, role: ClusterStatus.Role)
    }

    /// The `event` values.
    public enum Name: String, Sendable, Hashable, CaseIterable {
        case loopStarted = "loop_started"
        case loopStopped = "loop_stopped"
        case loopFailed = "loop_failed"
        case taskScheduled = "task_scheduled"
        case taskUnscheduled = "task_unscheduled"
        case taskStarted = "task_started"
        case taskFinished = "task_finished"
        case hookRan = "hook_ran"
        case configReloaded = "config_reloaded"
        case taskPaused = "task_paused"
        case taskResumed = "task_resumed"
        case taskLog = "task_log"
        case leaderChanged = "leader_changed"
    }

    public init(time: Timestamp, kind: Kind) {
        self.time = time
        self.kind = kind
    }

    /// The wire name of this event.
    public var name: Name {
        switch kind {
        case .loopStarted: return .loopStarted
        case .loopStopped: return .loopStopped
        case .loopFailed: return .loopFailed
        case .taskScheduled: return .taskScheduled
        case .taskUnscheduled: return .taskUnscheduled
        case .taskStarted: return .taskStarted
        case .taskFinished: return .taskFinished
        case .hookRan: return .hookRan
        case .configReloaded: return .configReloaded
        case .taskPaused: return .taskPaused
        case .taskResumed: return .taskResumed
        case .taskLog: return .taskLog
        case .leaderChanged: return .leaderChanged
        }
    }

    /// The task the event is about, if any (for `watch` filters).
    public var task: String? {
        switch kind {
        case .taskScheduled(let task, _), .taskUnscheduled(let task), .taskStarted(let task, _, _, _, _),
            .taskFinished(let task, _, _, _, _, _, _, _, _), .taskPaused(let task), .taskResumed(let task),
            .taskLog(let task, _, _):
            return task
        case .loopStarted, .loopStopped, .loopFailed, .hookRan, .configReloaded, .leaderChanged:
            return nil
        }
    }

    /// The event as one line of compact JSON, without the newline.
    public func encoded() -> String {
        var writer = JSONWriter(capacity: 160)
        write(to: &writer)
        return writer.text
    }

    /// The event as one line of compact JSON, with its newline.
    public func encodedLine() -> [UInt8] {
        var writer = JSONWriter(capacity: 160)
        write(to: &writer)
        return writer.line()
    }

    /// Appends the event and its newline to `output`.
    public func encodeLine(into output: inout [UInt8]) {
        var writer = JSONWriter(capacity: 160)
        write(to: &writer)
        writer.appendLine(to: &output)
    }

    func write(to writer: inout JSONWriter) {
        writer.beginObject()
        writer.key("event")
        writer.string(name.rawValue)
        writer.key("time")
        writer.timestamp(time)
        switch kind {
        case .loopStarted, .loopStopped:
            break
        case .configReloaded(let added, let changed, let removed):
            let lists: [(StaticString, [String])] = [("added", added), ("changed", changed), ("removed", removed)]
            for (key, names) in lists {
                writer.key(key)
                writer.beginArray()
                for name in names { writer.string(name) }
                writer.endArray()
            }
        case .loopFailed(let error):
            writer.key("error")
            writer.string(error)
        case .taskScheduled(let task, let next):
            writer.key("task")
            writer.string(task)
            writer.key("next")
            writer.timestamp(next)
        case .taskUnscheduled(let task):
            writer.key("task")
            writer.string(task)
        case .taskStarted(let task, let run, let pid, let due, let late):
            writer.key("task")
            writer.string(task)
            writer.key("run")
            writer.int(run)
            writer.key("pid")
            writer.int(pid)
            writer.key("due")
            writer.timestamp(due)
            writer.key("late_ms")
            if let late { writer.double(late) } else { writer.null() }
        case .taskFinished(
            let task, let run, let exitCode, let signal, let timedOut, let succeeded, let duration, let cpu,
            let changed):
            writer.key("task")
            writer.string(task)
            writer.key("run")
            writer.int(run)
            writer.outcomeMembers(exitCode: exitCode, signal: signal, timedOut: timedOut, succeeded: succeeded)
            writer.key("duration_ms")
            writer.double(duration)
            writer.key("cpu_ms")
            if let cpu { writer.double(cpu) } else { writer.null() }
            writer.key("changed")
            writer.bool(changed)
        case .hookRan(let hook):
            writer.key("hook")
            writer.string(hook)
        case .taskPaused(let task), .taskResumed(let task):
            writer.key("task")
            writer.string(task)
        case .taskLog(let task, let run, let line):
            writer.key("task")
            writer.string(task)
            writer.key("run")
            writer.int(run)
            writer.key("line")
            writer.string(line)
        case .leaderChanged(let leader, let role):
            writer.key("leader")
            writer.string(leader)
            writer.key("role")
            writer.string(role.rawValue)
        }
        writer.endObject()
    }

    /// Decodes an event line.
    ///
    /// - Throws: ``ErrorCode/badRequest`` when the line is not an event of a known shape.
    @inlinable
    public static func decode(_ line: some Collection<UInt8>) throws(ProtocolError) -> Event {
        try decode(try JSONParser.parse(line, mode: .strict))
    }

    /// Decodes an event line given as text.
    public static func decode(_ line: String) throws(ProtocolError) -> Event {
        try decode(line.utf8)
    }

    /// Decodes an event from a parsed JSON value.
    public static func decode(_ value: JSONValue) throws(ProtocolError) -> Event {
        guard case .object(let object) = value else {
            throw .badRequest("an event must be a JSON object, got \(value.shortDescription)")
        }
        let reader = ObjectReader(object)
        let nameText = try reader.string("event")
        guard let name = Name(rawValue: nameText) else {
            throw .badRequest("unknown event \(JSONValue.string(nameText).shortDescription)")
        }
        let time = try reader.timestamp("time")
        let kind: Kind
        switch name {
        case .loopStarted: kind = .loopStarted
        case .loopStopped: kind = .loopStopped
        case .loopFailed: kind = .loopFailed(error: try reader.string("error"))
        case .taskScheduled:
            kind = .taskScheduled(task: try reader.string("task"), next: try reader.optionalTimestamp("next"))
        case .taskUnscheduled: kind = .taskUnscheduled(task: try reader.string("task"))
        case .taskStarted:
            kind = .taskStarted(
                task: try reader.string("task"), run: try reader.int("run"), pid: try reader.int("pid"),
                due: try reader.optionalTimestamp("due"), lateMilliseconds: try reader.optionalDouble("late_ms"))
        case .taskFinished:
            kind = .taskFinished(
                task: try reader.string("task"), run: try reader.int("run"),
                exitCode: try reader.optionalInt("exit_code"), signal: try reader.optionalInt("signal"),
                timedOut: try reader.bool("timed_out"), succeeded: try reader.bool("succeeded"),
                durationMilliseconds: try reader.double("duration_ms"),
                cpuMilliseconds: try reader.optionalDouble("cpu_ms"), changed: try reader.bool("changed"))
        case .hookRan: kind = .hookRan(hook: try reader.string("hook"))
        case .taskPaused: kind = .taskPaused(task: try reader.string("task"))
        case .taskResumed: kind = .taskResumed(task: try reader.string("task"))
        case .taskLog:
            kind = .taskLog(
                task: try reader.string("task"), run: try reader.int("run"), line: try reader.string("line"))
        case .leaderChanged:
            let roleText = try reader.string("role")
            guard let role = ClusterStatus.Role(rawValue: roleText) else {
                throw ProtocolError.badRequest("unknown role \(JSONValue.string(roleText).shortDescription)")
                    .inField(reader.fieldName("role"))
            }
            kind = .leaderChanged(leader: try reader.optionalString("leader"), role: role)
        case .configReloaded:
            kind = .configReloaded(
                added: try reader.optionalStringArray("added") ?? [],
                changed: try reader.optionalStringArray("changed") ?? [],
                removed: try reader.optionalStringArray("removed") ?? [])
        }
        return Event(time: time, kind: kind)
    }
}
