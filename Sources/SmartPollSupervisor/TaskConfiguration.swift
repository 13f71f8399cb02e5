import Glibc

/// One task of the configuration's `tasks` object: a command run as a child process, and the
/// built-in task hook's rules for what happens after each run (SPEC sections 3 and 4).
public struct TaskConfiguration: Sendable, Hashable {
    /// What a failed run does to the loop.
    public enum FailurePolicy: String, Sendable, Hashable, CaseIterable {
        /// The loop's run stops with the error (the library's semantics).
        case fatal
        /// Record it, keep the previous result, trigger nothing, reschedule by `every`.
        case `continue`
        /// Schedule again after an exponential backoff; `fatal` after `maxRetries`, if set.
        case retry
    }

    /// Exponential backoff for `on_failure: retry`: `initial`, multiplied by `factor` after each
    /// consecutive failure, never more than `maximum`.
    public struct Backoff: Sendable, Hashable {
        public var initial: Duration = .seconds(1)
        public var maximum: Duration = .seconds(300)
        public var factor: Double = 2

        public init(initial: Duration = .seconds(1), maximum: Duration = .seconds(300), factor: Double = 2) {
            self.initial = initial
            self.maximum = maximum
            self.factor = factor
        }
    }

    /// The argv; `command[0]` is looked up in `PATH` when it has no `/`. No shell is involved
    /// unless the argv says so (`["sh", "-c", "..."]`).
    public var command: [String]
    public var workingDirectory: String?
    /// Added to the supervisor's environment, in file order.
    public var environment: [EnvironmentVariable] = []
    /// The run hook: scheduled after this delay every time the loop starts; nil: not at start.
    public var start: Duration?
    public var every: Duration?
    /// What `every` counts from: the end of a run (the default) or the time it fell due.
    public var everyFrom: EveryFrom = .end
    public var jitter: Duration = .zero
    public var timeout: Duration?
    public var killSignal: Int32 = SIGTERM
    public var killGrace: Duration = .seconds(5)
    public var onFailure: FailurePolicy = .fatal
    public var backoff = Backoff()
    public var maximumRetries: Int?
    /// Tasks scheduled now when a successful result differs from the previous one.
    public var onChange: [String] = []
    /// Tasks scheduled now after every successful run.
    public var onSuccess: [String] = []
    /// Bytes of stdout kept as the result; the rest is drained and the result marked truncated.
    public var capture: Int = 1 << 20
    /// Stderr lines a second that reach the log (`log_rate`), beyond a burst of `logBurst`
    /// lines; the others are counted and reported. 0 (either): no limit.
    public var logRate = TaskConfiguration.defaultLogRate
    public var logBurst = TaskConfiguration.defaultLogBurst
    public static let defaultLogRate = 1_000
    /// Stderr lines kept for `logs` (`log_lines`), the last ones of its runs; 0 keeps none.
    public var logLines = TaskConfiguration.defaultLogLines
    public static let defaultLogLines = 1_000
    /// Finished runs kept for `history` and in `state_dir` (`history`), the last ones; 0 keeps none.
    public var history = TaskConfiguration.defaultHistory
    public static let defaultHistory = 100
    public static let defaultLogBurst = 10_000
    /// The user and group its processes run as (`user`, `group`: a supervisor running as root
    /// only), without supplementary groups; nil: the supervisor's.
    public var credentials: SpawnRequest.Credentials?
    /// `nice`: the nice value its processes start with (-20 to 19); nil: the supervisor's. A
    /// value below the supervisor's needs CAP_SYS_NICE, or each run fails to start.
    public var nice: Int32?
    /// `rlimits`: the resource limits its processes start with (each as soft and hard limit);
    /// those not given are the supervisor's.
    public var resourceLimits = SpawnRequest.ResourceLimits()

    public init(command: [String]) {
        self.command = command
    }
}
