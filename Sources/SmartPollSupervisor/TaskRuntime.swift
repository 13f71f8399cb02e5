import SmartPollProtocol

/// What the supervisor remembers of one task across runs, beside the policy's schedule and
/// retry state.
struct TaskRuntime {
    let name: String
    /// Tells this task from one of the same name that a reload removed and another added:
    /// unique within the supervisor's life.
    let incarnation: Int
    /// The command and environment as C strings, built at the first run after a change of
    /// configuration.
    var prepared: PreparedCommand?
    // Every field the status row takes from here bumps ``statusChanges`` as it is set (by any
    // path: an observer is part of the setter).
    var runs = 0 { didSet { statusChanges &+= 1 } }
    var failures = 0 { didSet { statusChanges &+= 1 } }
    /// Runs cancelled or stopped before they could finish (``TaskStatus/cancelled``).
    var cancelled = 0 { didSet { statusChanges &+= 1 } }
    var last: LastRun? {
        // Any change, in place or whole, even to an equal value: the status row's key.
        didSet {
            lastChanges &+= 1
            statusChanges &+= 1
        }
    }
    /// Counts the sets of the fields a `status` row shows from here (``runs``, ``failures``,
    /// ``cancelled``, ``last``, ``current``: a run's pid and id are constants of its
    /// ``TaskRun``): while it equals ``statusKeyChanges``, the part of ``statusKey`` taken from
    /// this runtime is still the state's, and only the scheduler's part need be read again.
    private(set) var statusChanges = 0
    /// Counts the changes to ``last``, so that a `status` row can tell it unchanged without
    /// comparing it field by field.
    private(set) var lastChanges = 0
    /// The last successful result.
    var result: TaskResult?
    var current: TaskRun? { didSet { statusChanges &+= 1 } }
    /// The rate limit on its stderr lines, shared by its runs; made again when `log_rate` or
    /// `log_burst` change.
    var stderrLimiter: StderrRateLimiter?
    /// Its last stderr lines for `logs` (`log_lines`), shared by its runs; made at the first run
    /// or `logs -f`, made again (keeping the last lines) when `log_lines` changes.
    var logBuffer: TaskLogBuffer?
    /// Its last finished runs for `history` (task key `history`), restored from `state_dir`.
    var history = RunHistory(capacity: 0)
    /// Its runs' counts and histograms for `metrics`, since the supervisor started (in place: a
    /// run's start and end add to them without an allocation).
    var metrics = TaskMetrics()
    /// Its last `status` row with that row's text: reused while the key it was made from
    /// (``statusKey``) stays the same; made at the first `status`. Kept here, with the name it
    /// shows: a task renamed by a reload is another ``TaskRuntime``.
    var statusRecord: TaskStatusRecord?
    /// What ``statusRecord`` was made from (meaningless while there is none). Two fields rather
    /// than an optional pair: reading that copied it through its type's metadata (callgrind:
    /// about 200 instructions a row).
    var statusKey = TaskStatusKey()
    /// ``statusChanges`` when ``statusKey`` was read.
    var statusKeyChanges = 0
    /// `run --wait` requests for the next run of this task that has not started yet.
    var waitingForNextRun: [(Reply.Body) -> Void] = []

    init(name: String, incarnation: Int) {
        self.name = name
        self.incarnation = incarnation
    }
}
