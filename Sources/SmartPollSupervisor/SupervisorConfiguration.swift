import Glibc
import SmartPollProtocol

/// How the processes of runs are contained (SPEC section 3, the `containment` key).
public enum ContainmentMode: String, Sendable, Hashable {
    /// A cgroup per run when the supervisor can make its subtree, a subreaper otherwise.
    case auto
    /// A cgroup per run, or the supervisor refuses to start.
    case cgroup
    /// A child subreaper that ends a finished run's orphans.
    case subreaper
}

/// The supervisor's configuration file (SPEC section 4): JSON with comments (and, as json-c
/// reads it, trailing commas), parsed with json-c. Unknown keys, wrong types, bad durations and names of tasks that do not exist are
/// all rejected, each reported as `FILE: KEY.PATH: reason`.
public struct SupervisorConfiguration: Sendable, Hashable {
    /// The file it was read from, as given (for messages).
    public var file: String
    public var socket: String?
    /// Permission bits of the control socket.
    public var socketMode: UInt32 = 0o600
    /// A group whose members may use the socket, besides the supervisor's own user and root.
    public var socketGroup: String?
    public var stateDirectory: String?
    /// At most this many task processes at once; 0: no limit.
    public var maximumRunning = 0
    /// Longest request line a client may send (SPEC section 8).
    public var maximumLineBytes = 1 << 20
    /// Most client connections at once; more are answered `busy`.
    public var maximumConnections = 256
    /// Most directives one run may write on descriptor 3.
    public var maximumDirectives = 1_000
    /// How long a client's replies or events may wait without the client reading any of them.
    public var sendTimeout: Duration = .seconds(30)
    /// How runs are contained (`containment`): cgroups, a subreaper, or cgroups when possible.
    public var containment: ContainmentMode = .auto
    /// Where the supervisor's cgroup subtree goes (`cgroup_root`, a directory of the cgroup v2
    /// file system); nil: under the supervisor's own cgroup.
    public var cgroupRoot: String?
    public var tasks: [String: TaskConfiguration]
    public var hooks: [String: HookConfiguration] = [:]
    /// Top-level `restart`: how a failed loop starts again; nil: it waits for `start`.
    public var restart: Restart?
    /// Where the metrics endpoint serves `GET /metrics` over HTTP (`metrics_listen`); nil: no
    /// endpoint (the `metrics` command answers all the same).
    public var metricsListen: MetricsListenAddress?
    /// Top-level `cluster`: this supervisor is one member of an active/standby cluster on etcd.
    public var cluster: Cluster?

    /// `"restart": {"after": "10s", "max": "5m"}`.
    public struct Restart: Sendable, Hashable {
        /// The delay after the first failure (and after one that follows a long good run).
        public var after: Duration
        /// The longest delay; also how long a run must go without failing to reset the delay.
        public var maximum: Duration
    }

    public init(file: String, tasks: [String: TaskConfiguration]) {
        self.file = file
        self.tasks = tasks
    }

    /// Task names in sorted order: the order of `status` tables.
    public var taskNames: [String] { tasks.keys.sorted() }

    static let topLevelKeys = [
        "socket", "socket_mode", "socket_group", "state_dir", "max_running", "max_line_bytes",
        "max_connections", "max_directives", "send_timeout", "containment", "cgroup_root", "restart", "tasks", "hooks",
        "metrics_listen", "cluster",
    ]
    static let restartKeys = ["after", "max"]
    static let taskKeys = [
        "command", "cwd", "env", "start", "every", "every_from", "jitter", "timeout", "kill_signal", "kill_grace",
        "on_failure", "backoff", "max_retries", "on_change", "on_success", "capture", "user", "group",
        "log_rate", "log_burst", "log_lines", "nice", "rlimits",
        "history",
    ]
    static let backoffKeys = ["initial", "max", "factor"]
    /// The names of `rlimits`, in the order of ``SpawnRequest/ResourceLimits``.
    static let resourceLimitKeys = ["nofile", "as", "cpu", "core"]
    /// Task keys that no hook takes (a command hook runs with the supervisor's limits, and keeps
    /// no `logs` buffer).
    static let taskOnlyKeys = ["nice", "rlimits", "log_lines", "history"]
    static let hookKeys = ["schedule", "command", "cwd", "env", "timeout", "kill_grace", "log_rate", "log_burst"]
    /// `log_rate` and `log_burst`: lines; 0 turns the limit off.
    static let logLimitRange: ClosedRange<Int64> = 0...1_000_000_000
    /// `log_lines`: lines kept for `logs`, each up to 4 KiB (a million is up to 4 GiB).
    static let logLinesRange: ClosedRange<Int64> = 0...1_000_000
    /// `history`: runs kept for `history`, each 136 bytes twice (the loop's and the state
    /// writer's) plus up to about 370 bytes of shared text (100,000 is at most about 64 MB).
    static let historyRange: ClosedRange<Int64> = 0...100_000

    /// Parses and validates a configuration.
    ///
    /// - Throws: ``SupervisorError/Code/invalidConfiguration`` listing every problem, one per
    ///   line.
    public static func parse(
        _ bytes: some Collection<UInt8>, file: String
    ) throws(SupervisorError) -> SupervisorConfiguration {
        let root: JSONValue
        do {
            root = try JSONParser.parse(bytes, mode: .lenient)
        } catch {
            throw SupervisorError(code: .invalidConfiguration, message: "\(file): \(error.message)")
        }
        var reader = ConfigurationReader(file: file)
        let configuration = parse(root, reader: &reader)
        guard reader.problems.isEmpty, let configuration else {
            throw SupervisorError(code: .invalidConfiguration, message: reader.problems.joined(separator: "\n"))
        }
        return configuration
    }

    private static func parse(_ root: JSONValue, reader: inout ConfigurationReader) -> SupervisorConfiguration? {
        let top = ConfigurationPath.root
        guard let object = reader.object(root, at: top) else { return nil }
        reader.rejectUnknownKeys(object, at: top, known: topLevelKeys)

        var tasks: [String: TaskConfiguration] = [:]
        // Every task the file defines, usable or not: references to a task whose definition has
        // a problem are not reported again as references to no task, and a task's own
        // references are checked even when the rest of it has problems.
        var definedTasks: [String: TaskConfiguration] = [:]
        if let value = object["tasks"] {
            let path = top.key("tasks")
            if let taskObjects = reader.object(value, at: path) {
                if taskObjects.isEmpty { reader.problem(path, "at least one task is needed") }
                for (name, value) in taskObjects.pairs {
                    let taskPath = path.key(name)
                    // A bad name does not hide the problems of the task's keys.
                    let validName = reader.name(name, at: taskPath)
                    guard let (task, usable) = parseTask(value, at: taskPath, reader: &reader) else { continue }
                    definedTasks[name] = task
                    if validName && usable { tasks[name] = task }
                }
            }
        } else {
            reader.problem(top.key("tasks"), "missing; at least one task is needed")
        }

        var configuration = SupervisorConfiguration(file: reader.file, tasks: tasks)
        let path = top
        if let value = object["socket"] {
            configuration.socket = reader.string(value, at: path.key("socket"), nonEmpty: true)
        }
        if let value = object["socket_mode"] {
            configuration.socketMode = parseMode(value, at: path.key("socket_mode"), reader: &reader) ?? 0o600
        }
        if let value = object["socket_group"] {
            configuration.socketGroup = reader.string(value, at: path.key("socket_group"), nonEmpty: true)
        }
        if let value = object["state_dir"] {
            configuration.stateDirectory = reader.string(value, at: path.key("state_dir"), nonEmpty: true)
        }
        if let value = object["max_running"] {
            configuration.maximumRunning = reader.integer(value, at: path.key("max_running"), in: 0...1_000_000) ?? 0
        }
        if let value = object["max_line_bytes"] {
            configuration.maximumLineBytes =
                reader.integer(value, at: path.key("max_line_bytes"), in: 1_024...(1 << 30)) ?? (1 << 20)
        }
        if let value = object["max_connections"] {
            configuration.maximumConnections =
                reader.integer(value, at: path.key("max_connections"), in: 1...65_536) ?? 256
        }
        if let value = object["max_directives"] {
            configuration.maximumDirectives =
                reader.integer(value, at: path.key("max_directives"), in: 0...1_000_000) ?? 1_000
        }
        if let value = object["send_timeout"] {
            configuration.sendTimeout =
                reader.duration(value, at: path.key("send_timeout"), .positive) ?? configuration.sendTimeout
        }
        if let value = object["containment"], let name = reader.string(value, at: path.key("containment")) {
            if let mode = ContainmentMode(rawValue: name) {
                configuration.containment = mode
            } else {
                reader.problem(path.key("containment"), "must be \"auto\", \"cgroup\" or \"subreaper\"")
            }
        }
        if let value = object["cgroup_root"],
            let root = reader.string(value, at: path.key("cgroup_root"), nonEmpty: true)
        {
            if root.hasPrefix("/") {
                configuration.cgroupRoot = root
            } else {
                reader.problem(path.key("cgroup_root"), "must be an absolute path")
            }
        }
        if let value = object["restart"], let restart = reader.object(value, at: path.key("restart")) {
            let restartPath = path.key("restart")
            reader.rejectUnknownKeys(restart, at: restartPath, known: restartKeys)
            var after: Duration?
            if let value = restart["after"] {
                after = reader.duration(value, at: restartPath.key("after"), .positive)
            } else {
                reader.problem(restartPath.key("after"), "missing; the delay before the first restart")
            }
            var maximum: Duration?
            if let value = restart["max"] { maximum = reader.duration(value, at: restartPath.key("max"), .positive) }
            if let after {
                // Without max: five minutes, or `after` when that is longer.
                let maximum = maximum ?? Swift.max(.seconds(300), after)
                if maximum < after {
                    reader.problem(restartPath.key("max"), "must be at least after (\(DurationFormat.format(after)))")
                } else {
                    configuration.restart = Restart(after: after, maximum: maximum)
                }
            }
        }
        if let value = object["metrics_listen"],
            let text = reader.string(value, at: path.key("metrics_listen"), nonEmpty: true)
        {
            switch MetricsListenAddress.parse(text) {
            case .success(let address): configuration.metricsListen = address
            case .failure(let error): reader.problem(path.key("metrics_listen"), error.reason)
            }
        }
        if let value = object["cluster"] {
            configuration.cluster = parseCluster(value, at: path.key("cluster"), reader: &reader)
            if configuration.stateDirectory != nil {
                reader.problem(
                    path.key("cluster"),
                    "cannot go with state_dir: a cluster keeps its state in etcd (one source of truth)")
            }
        }
        if let value = object["hooks"], let hookObjects = reader.object(value, at: path.key("hooks")) {
            for (name, value) in hookObjects.pairs {
                let hookPath = path.key("hooks").key(name)
                let validName = reader.name(name, at: hookPath)
                if let hook = parseHook(value, at: hookPath, tasks: definedTasks, reader: &reader), validName {
                    configuration.hooks[name] = hook
                }
            }
        }
        // References are checked once every task is known, so order in the file does not matter.
        for (name, task) in definedTasks.sorted(by: { $0.key < $1.key }) {
            let taskPath = path.key("tasks").key(name)
            for (key, targets) in [("on_change", task.onChange), ("on_success", task.onSuccess)] {
                for (position, target) in targets.enumerated() where definedTasks[target] == nil {
                    reader.problem(
                        taskPath.key(key).index(position), noTask(target, among: definedTasks.keys))
                }
            }
        }
        return configuration
    }

    /// `no task is named "pubilsh" (did you mean "publish"?)`.
    static func noTask(_ name: String, among names: some Sequence<String>) -> String {
        let suggestion = Suggestion.closest(to: name, among: names.sorted()).map { " (did you mean \"\($0)\"?)" }
        return "no task is named \(JSONValue.string(name).serialized())" + (suggestion ?? "")
    }

    /// The task as far as it could be read, and whether it is usable (it has a command); nil
    /// when it is not even an object.
    private static func parseTask(
        _ value: JSONValue, at path: ConfigurationPath, reader: inout ConfigurationReader
    ) -> (TaskConfiguration, usable: Bool)? {
        guard let object = reader.object(value, at: path) else { return nil }
        reader.rejectUnknownKeys(object, at: path, known: taskKeys)
        // Every other key is still checked when the command is bad, so one pass reports all.
        var command: [String]?
        if let commandValue = object["command"] {
            command = reader.stringArray(commandValue, at: path.key("command"), nonEmpty: true)
            if command?[0].isEmpty == true {
                reader.problem(path.key("command").index(0), "must not be empty")
            }
        } else {
            reader.problem(path.key("command"), "missing; a task needs a command (an array of strings)")
        }
        var task = TaskConfiguration(command: command ?? [])
        if let value = object["cwd"] {
            task.workingDirectory = reader.string(value, at: path.key("cwd"), nonEmpty: true)
        }
        if let value = object["env"] { task.environment = reader.environment(value, at: path.key("env")) ?? [] }
        if let value = object["every"] { task.every = reader.duration(value, at: path.key("every"), .positive) }
        switch object["start"] {
        case nil:
            // A task with `every` and no `start` starts when the loop starts (SPEC 4): with
            // `every` alone it would never run.
            if task.every != nil { task.start = .zero }
        case .null?:
            // Opted out: only something else (a hook, a directive, `run`) schedules it.
            task.start = nil
        case let value?:
            task.start = reader.duration(value, at: path.key("start"), .nonNegative)
        }
        if let value = object["every_from"], let text = reader.string(value, at: path.key("every_from")) {
            if let everyFrom = TaskConfiguration.EveryFrom(rawValue: text) {
                task.everyFrom = everyFrom
            } else {
                reader.problem(path.key("every_from"), "expected \"end\" or \"due\", got \(value.shortDescription)")
            }
        }
        if let value = object["jitter"] {
            task.jitter = reader.duration(value, at: path.key("jitter"), .nonNegative) ?? .zero
        }
        if let value = object["timeout"] { task.timeout = reader.duration(value, at: path.key("timeout"), .positive) }
        if let value = object["kill_grace"] {
            task.killGrace = reader.duration(value, at: path.key("kill_grace"), .nonNegative) ?? task.killGrace
        }
        if let value = object["kill_signal"] {
            task.killSignal = parseSignal(value, at: path.key("kill_signal"), reader: &reader) ?? task.killSignal
        }
        if let value = object["on_failure"] {
            let failurePath = path.key("on_failure")
            if let text = reader.string(value, at: failurePath) {
                if let policy = TaskConfiguration.FailurePolicy(rawValue: text) {
                    task.onFailure = policy
                } else {
                    reader.problem(
                        failurePath, "expected \"fatal\", \"continue\" or \"retry\", got \(value.shortDescription)")
                }
            }
        }
        if let value = object["backoff"] {
            task.backoff = parseBackoff(value, at: path.key("backoff"), reader: &reader) ?? task.backoff
        }
        if let value = object["max_retries"] {
            task.maximumRetries = reader.integer(value, at: path.key("max_retries"), in: 0...Int64(Int32.max))
        }
        if let value = object["on_change"] {
            task.onChange = reader.stringArray(value, at: path.key("on_change"), nonEmpty: false) ?? []
        }
        if let value = object["on_success"] {
            task.onSuccess = reader.stringArray(value, at: path.key("on_success"), nonEmpty: false) ?? []
        }
        if let value = object["capture"] {
            task.capture = reader.integer(value, at: path.key("capture"), in: 0...(1 << 30)) ?? task.capture
        }
        if let value = object["log_rate"] {
            task.logRate = reader.integer(value, at: path.key("log_rate"), in: logLimitRange) ?? task.logRate
        }
        if let value = object["log_burst"] {
            task.logBurst = reader.integer(value, at: path.key("log_burst"), in: logLimitRange) ?? task.logBurst
        }
        if let value = object["log_lines"] {
            task.logLines = reader.integer(value, at: path.key("log_lines"), in: logLinesRange) ?? task.logLines
        }
        if let value = object["history"] {
            task.history = reader.integer(value, at: path.key("history"), in: historyRange) ?? task.history
        }
        if object["user"] != nil || object["group"] != nil {
            task.credentials = parseCredentials(user: object["user"], group: object["group"], at: path, reader: &reader)
        }
        if let value = object["nice"] {
            task.nice = reader.integer(value, at: path.key("nice"), in: -20...19).map(Int32.init)
        }
        if let value = object["rlimits"] {
            task.resourceLimits = parseResourceLimits(value, at: path.key("rlimits"), reader: &reader)
        }
        return (task, command != nil)
    }

    private static func parseBackoff(
        _ value: JSONValue, at path: ConfigurationPath, reader: inout ConfigurationReader
    ) -> TaskConfiguration.Backoff? {
        guard let object = reader.object(value, at: path) else { return nil }
        reader.rejectUnknownKeys(object, at: path, known: backoffKeys)
        var backoff = TaskConfiguration.Backoff()
        if let value = object["initial"] {
            backoff.initial = reader.duration(value, at: path.key("initial"), .positive) ?? backoff.initial
        }
        if let value = object["max"] {
            backoff.maximum = reader.duration(value, at: path.key("max"), .positive) ?? backoff.maximum
        }
        if let value = object["factor"] {
            backoff.factor = reader.number(value, at: path.key("factor"), atLeast: 1) ?? backoff.factor
        }
        if backoff.maximum < backoff.initial {
            reader.problem(path.key("max"), "must be at least initial (\(DurationFormat.format(backoff.initial)))")
        }
        return backoff
    }

    /// `{"nofile": 64, "core": 0, "cpu": "infinity"}`: non-negative whole numbers, or
    /// `"infinity"` for no limit. Names not in ``resourceLimitKeys`` are rejected.
    private static func parseResourceLimits(
        _ value: JSONValue, at path: ConfigurationPath, reader: inout ConfigurationReader
    ) -> SpawnRequest.ResourceLimits {
        var limits = SpawnRequest.ResourceLimits()
        guard let object = reader.object(value, at: path) else { return limits }
        reader.rejectUnknownKeys(object, at: path, known: resourceLimitKeys)
        func limit(_ name: String) -> UInt64? {
            guard let value = object[name] else { return nil }
            if case .string("infinity") = value { return SpawnRequest.ResourceLimits.infinity }
            guard case .int = value else {
                reader.problem(
                    path.key(name), "expected a whole number or \"infinity\", got \(value.shortDescription)")
                return nil
            }
            return reader.integer(value, at: path.key(name), in: 0...Int64.max).map(UInt64.init)
        }
        limits.openFiles = limit("nofile")
        limits.addressSpace = limit("as")
        limits.cpuSeconds = limit("cpu")
        limits.coreBytes = limit("core")
        return limits
    }

    private static func parseHook(
        _ value: JSONValue, at path: ConfigurationPath, tasks: [String: TaskConfiguration],
        reader: inout ConfigurationReader
    ) -> HookConfiguration? {
        guard let object = reader.object(value, at: path) else { return nil }
        for key in taskOnlyKeys where object[key] != nil {
            reader.problem(path.key(key), "only a task takes \(key)")
        }
        // Reported once, above, rather than also as unknown keys.
        let others = JSONObject(object.pairs.filter { !taskOnlyKeys.contains($0.key) })
        reader.rejectUnknownKeys(others, at: path, known: hookKeys)
        switch (object["schedule"], object["command"]) {
        case (let schedule?, nil):
            for key in ["cwd", "env", "timeout", "kill_grace", "log_rate", "log_burst"] where object[key] != nil {
                reader.problem(path.key(key), "only a command hook takes \(key)")
            }
            let schedulePath = path.key("schedule")
            guard let entries = reader.object(schedule, at: schedulePath) else { return nil }
            var result: [HookConfiguration.ScheduleEntry] = []
            for (task, delay) in entries.pairs {
                let entryPath = schedulePath.key(task)
                guard tasks[task] != nil else {
                    reader.problem(entryPath, noTask(task, among: tasks.keys))
                    continue
                }
                if let delay = reader.duration(delay, at: entryPath, .any) {
                    result.append(.init(task: task, delay: delay))
                }
            }
            return .schedule(result)
        case (nil, let command?):
            guard let argv = reader.stringArray(command, at: path.key("command"), nonEmpty: true) else { return nil }
            var hook = HookConfiguration.CommandHook(command: argv)
            if let value = object["cwd"] {
                hook.workingDirectory = reader.string(value, at: path.key("cwd"), nonEmpty: true)
            }
            if let value = object["env"] { hook.environment = reader.environment(value, at: path.key("env")) ?? [] }
            if let value = object["timeout"] {
                hook.timeout = reader.duration(value, at: path.key("timeout"), .positive)
            }
            if let value = object["kill_grace"] {
                hook.killGrace = reader.duration(value, at: path.key("kill_grace"), .nonNegative) ?? hook.killGrace
            }
            if let value = object["log_rate"] {
                hook.logRate = reader.integer(value, at: path.key("log_rate"), in: logLimitRange) ?? hook.logRate
            }
            if let value = object["log_burst"] {
                hook.logBurst = reader.integer(value, at: path.key("log_burst"), in: logLimitRange) ?? hook.logBurst
            }
            return .command(hook)
        case (_?, _?):
            reader.problem(path, "a hook has either schedule or command, not both")
            return nil
        case (nil, nil):
            reader.problem(path, "a hook needs schedule (an object of task delays) or command (an array of strings)")
            return nil
        }
    }

    /// `user` and `group`: names from the user and group databases, or numeric ids. Without
    /// `group`, the user's primary group; without `user`, the supervisor's user (root). Only a
    /// supervisor running as root may change them.
    private static func parseCredentials(
        user: JSONValue?, group: JSONValue?, at path: ConfigurationPath, reader: inout ConfigurationReader
    ) -> SpawnRequest.Credentials? {
        let effectiveUser = geteuid()
        var userID: UInt32?
        var primaryGroup: UInt32?
        var groupID: UInt32?
        var valid = true
        if let user {
            let userPath = path.key("user")
            if let (id, primary) = AccountDatabase.user(user, at: userPath, reader: &reader) {
                userID = id
                primaryGroup = primary
            } else {
                valid = false
            }
        }
        if let group {
            if let id = AccountDatabase.group(group, at: path.key("group"), reader: &reader) {
                groupID = id
            } else {
                valid = false
            }
        }
        if effectiveUser != 0 {
            let key = user != nil ? "user" : "group"
            reader.problem(
                path.key(key),
                "only a supervisor running as root can run a task as another user or group (this one runs as uid \(effectiveUser))"
            )
            return nil
        }
        guard valid else { return nil }
        if groupID == nil, let userID {
            guard let primaryGroup else {
                reader.problem(
                    path.key("group"),
                    "missing; user \(userID) has no entry in the user database to give its primary group")
                return nil
            }
            groupID = primaryGroup
        }
        return SpawnRequest.Credentials(userID: userID ?? effectiveUser, groupID: groupID ?? getegid())
    }

    /// `"0600"` or `"600"`: octal permission bits, at most 0777.
    private static func parseMode(
        _ value: JSONValue, at path: ConfigurationPath, reader: inout ConfigurationReader
    ) -> UInt32? {
        guard case .string(let text) = value else {
            reader.problem(path, "expected an octal string such as \"0600\", got \(value.shortDescription)")
            return nil
        }
        guard !text.isEmpty, text.utf8.count <= 4, let mode = UInt32(text, radix: 8), mode <= 0o777 else {
            reader.problem(path, "expected octal permission bits such as \"0600\", got \(value.shortDescription)")
            return nil
        }
        return mode
    }

    /// `"TERM"`, `"SIGTERM"` (any case), or a signal number from 1 to 64.
    private static func parseSignal(
        _ value: JSONValue, at path: ConfigurationPath, reader: inout ConfigurationReader
    ) -> Int32? {
        switch value {
        case .string(let name):
            if let number = SignalName.number(name) { return number }
            reader.problem(path, "unknown signal \(value.shortDescription); use a name such as \"TERM\" or \"INT\"")
            return nil
        case .int:
            return reader.integer(value, at: path, in: 1...64).map(Int32.init)
        default:
            reader.problem(path, "expected a signal name such as \"TERM\" or a number, got \(value.shortDescription)")
            return nil
        }
    }
}
