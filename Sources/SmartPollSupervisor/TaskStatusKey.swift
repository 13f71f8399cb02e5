import SmartPollProtocol

/// What a task's `status` row shows, as plain values: the row is made from the key alone (and
/// from the task's ``TaskRuntime``: its name, which never changes, and its `last`, which the key
/// counts the changes of), so two equal keys make the same row, and a kept
/// ``TaskStatusRecord`` is reused exactly while its key is equal to the state's.
///
/// - Important: a field of ``TaskStatus`` must come from here (``Supervisor/statusRow(_:of:)``):
///   one taken from the state directly would go stale in the kept record.
struct TaskStatusKey: Equatable {
    var scheduled = false
    var ready = false
    var next: Timestamp? = nil
    var running = false
    var pid: Int? = nil
    var run: Int? = nil
    var runs = 0
    var failures = 0
    var cancelled = 0
    var paused = false
    /// ``TaskRuntime/lastChanges``: the last run changes exactly when this does.
    var lastChanges = 0

    /// The fields taken from the scheduler (and for a standby, etcd), not from the runtime.
    struct SchedulerPart: Equatable {
        var scheduled: Bool
        var ready: Bool
        var next: Timestamp?
        var paused: Bool
    }

    var schedulerPart: SchedulerPart {
        SchedulerPart(scheduled: scheduled, ready: ready, next: next, paused: paused)
    }
}
