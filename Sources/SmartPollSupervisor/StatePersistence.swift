import SmartPollProtocol

/// The supervisor's bookkeeping for its `state_dir`: which tasks changed since the last write,
/// when the next write is due, who waits for it, how the last one went, and the run ids
/// reserved ahead of use.
///
/// Writes are coalesced: a change arms one timer, at most one write per ``interval`` for
/// changes that runs make (a burst of runs costs one write), at once for a client's request.
/// One write is in flight at a time, on the ``StateWriter``'s thread; what changes meanwhile
/// goes into the next. A failed write is retried after a growing delay (1 s up to 30 s) and
/// leaves what the files held whole.
///
/// - Complexity: a change is O(1) (its task joins ``dirtyTasks``); a write costs the loop
///   O(changed tasks).
final class StatePersistence {
    /// The files of `state_dir`; nil for a member of a cluster, whose state is in etcd.
    let store: StateStore?
    /// Where the state is kept, for `status` and the log: the state file, or `etcd:PREFIX`.
    let location: String
    /// A cluster member's store in etcd (SPEC section 9); nil with `state_dir`.
    let etcd: EtcdStateStore?
    /// The member leads and has loaded the state from etcd: writes go to etcd, guarded by its
    /// leadership. False while it is standby (it writes nothing).
    var etcdActive = false
    /// The least time between two writes caused by runs.
    static let interval: Duration = .milliseconds(100)
    static let longestRetryDelay: Duration = .seconds(30)
    /// Run ids are reserved this many at a time, durably, before any of them is handed out;
    /// the next block is asked for when half of one is used.
    static let runIDBlock = 1_000

    /// Tasks whose saved state changed since the last write was handed to the writer.
    var dirtyTasks: Set<String> = []
    /// Every task changed (a reload, the loop starting or stopping): the next write holds every
    /// task and drops the ones the configuration no longer has.
    var allDirty = false
    /// `history` entries not handed to the writer yet, in the order of the runs' ends: each a
    /// journal record of its own (the task's name, its `history` then, the entry).
    var historyAppends: [StateStore.HistoryAppend] = []
    /// Those of the write in flight: put back first if it fails.
    var inFlightHistory: [StateStore.HistoryAppend] = []
    /// A run id mark to make durable with the next write.
    var pendingRunIDMark: Int?
    /// The highest run id mark that is durable, and the highest asked for (durable or not).
    var durableRunIDMark = 0
    var requestedRunIDMark = 0
    /// A run id above the durable mark was handed out (writes fail): said once in the log.
    var warnedAboveMark = false

    /// The writer thread; nil before the loop starts serving and after shutdown (writes are
    /// done on the loop's thread then).
    var writer: StateWriter?
    /// The write in flight: its number, and what it holds (put back as changed if it fails).
    var inFlight: (number: Int, tasks: [String], complete: Bool, runIDMark: Int?)?
    var lastNumber = 0

    var timer: EventLoop.TimerID?
    var timerDeadline: Int64?
    /// When the last write began (monotonic ns).
    var lastWriteStarted: Int64 = .min / 2
    /// Replies waiting until what they acknowledge is on disk: until the write numbered
    /// `number` is durable.
    /// The action gets nil once the change is durable (or while writes fail: it is not held
    /// back), or the error to answer with instead: a cluster member that lost its leadership
    /// before etcd held the change.
    var waiters: [(number: Int, action: (ProtocolError?) -> Void)] = []
    /// The last successful write.
    var saved: Timestamp?
    /// Why writes fail, while they do; and since when.
    var failure: SupervisorError?
    var failingSince: Timestamp?
    /// The failure's sentence, word for word as the log, `status`'s `state_file` and systemd's
    /// `STATUS=` show it; nil while writes succeed.
    var error: String? { failure?.message }
    var retryDelay: Duration = .seconds(1)
    var retryAt: Int64?
    /// Restored from the state file at start: when each task is next due, applied when the
    /// loop's first run begins.
    var restoredSchedules: [String: (next: Timestamp, interruptedRun: Int?)] = [:]
    /// The schedules as they were when shutdown began, before ending the loop's run cleared
    /// them: the final write keeps them.
    var frozenSchedules: [String: (next: Timestamp, interruptedRun: Int?)]?

    init(store: StateStore) {
        self.store = store
        location = store.statePath
        etcd = nil
    }

    init(etcd: EtcdStateStore, location: String) {
        store = nil
        self.location = location
        self.etcd = etcd
    }

    /// Whether a write can be handed on now: to the writer thread, or to etcd while leading.
    var acceptsWrites: Bool { writer != nil || etcdActive }

    /// Something changed that no write handed to the writer holds yet.
    var isDirty: Bool { allDirty || !dirtyTasks.isEmpty || pendingRunIDMark != nil || !historyAppends.isEmpty }

    var status: StateFileStatus {
        StateFileStatus(path: location, saved: saved, error: error, failingSince: failingSince)
    }
}
