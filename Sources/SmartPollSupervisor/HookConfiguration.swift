/// One event hook of the configuration's `hooks` object, triggered by
/// `smartpollctl emit NAME [DATA]` (SPEC section 4).
public enum HookConfiguration: Sendable, Hashable {
    /// Schedules each task after its delay (`"0s"`: ready now), in file order.
    case schedule([ScheduleEntry])
    /// Runs a command inside the loop (the loop waits for it), with DATA on stdin and directives
    /// on descriptor 3.
    case command(CommandHook)

    public struct ScheduleEntry: Sendable, Hashable {
        public var task: String
        public var delay: Duration

        public init(task: String, delay: Duration) {
            self.task = task
            self.delay = delay
        }
    }

    public struct CommandHook: Sendable, Hashable {
        public var command: [String]
        public var workingDirectory: String?
        public var environment: [EnvironmentVariable] = []
        /// Bounds how long the loop waits for the hook; nil: no bound.
        public var timeout: Duration?
        /// How long the hook's processes have after SIGTERM (a timeout, `stop`, `shutdown`)
        /// before SIGKILL; 5 s unless `kill_grace` says otherwise, as for a task.
        public var killGrace: Duration = .seconds(5)
        /// The rate limit on its stderr lines in the log, as a task's (`log_rate`, `log_burst`),
        /// for each run on its own.
        public var logRate = TaskConfiguration.defaultLogRate
        public var logBurst = TaskConfiguration.defaultLogBurst

        public init(command: [String]) {
            self.command = command
        }
    }
}
