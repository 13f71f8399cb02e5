import SmartPollProtocol

/// The supervisor's bookkeeping for its `state_dir`: whether the state changed since the last
/// write, when the next write is due, who waits for it, and how the last one went.
///
/// Writes are coalesced: a change arms one timer, at most one write per ``interval`` for
/// changes that runs make (a burst of runs costs one write), at once for a client's request.
/// A failed write is retried after a growing delay (1 s up to 30 s) and leaves the previous
/// state file whole.
final class StatePersistence {
    let store: StateStore
    /// The least time between two writes caused by runs.
    static let interval: Duration = .milliseconds(100)
    static let longestRetryDelay: Duration = .seconds(30)

    /// Something changed that the state file does not hold yet.
    var isDirty = false
    var timer: EventLoop.TimerID?
    var timerDeadline: Int64?
    /// When the last write began (monotonic ns).
    var lastWriteStarted: Int64 = .min / 2
    /// Replies waiting until what they acknowledge is on disk.
    var waiters: [() -> Void] = []
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
    }

    var status: StateFileStatus {
        StateFileStatus(path: store.statePath, saved: saved, error: error, failingSince: failingSince)
    }
}
