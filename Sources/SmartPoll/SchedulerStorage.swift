/// Everything the loop mutates, kept by reference so that it survives from one run to the next
/// (tasks of an ended run may still be in flight when the next run is requested).
///
/// - Important: Accessed only by the one task executing `Scheduler.run()` (the scheduler's
///   exclusive flag guarantees there is at most one), and by ``SchedulerControl`` from hooks that this
///   task awaits. That is the whole of its thread-safety argument.
final class SchedulerStorage: @unchecked Sendable {
    var machine: SchedulerStateMachine
    let taskIndex: [String: Int]
    /// Incremented at the start and at the end of every run; a task result from another
    /// generation is late and dropped.
    var generation: UInt64 = 0
    var handles: [Task<Void, Never>?]
    /// Messages the loop has taken from the mailbox but not handled yet.
    var batch: [Mailbox.Message] = []
    var cursor = 0
    /// Event-hook messages that arrived while no run could handle them, oldest first.
    var deferred: [Mailbox.Message] = []
    var timer: Task<Void, Never>?
    var armedDeadline: Instant?
    var timerToken: UInt64 = 0
    var pumps: [Task<Void, Never>]?

    init(taskCount: Int, taskIndex: [String: Int]) {
        machine = SchedulerStateMachine(taskCount: taskCount)
        self.taskIndex = taskIndex
        handles = Array(repeating: nil, count: taskCount)
        batch.reserveCapacity(256)
    }

    /// Accounts for a message outside a run: a task's end is recorded and its result dropped;
    /// event values wait for the next run; stale timers are ignored.
    func absorb(_ message: Mailbox.Message) {
        switch message {
        case .taskFinished(let task, _, _):
            handles[Int(task.index)] = nil
            machine.taskFinished(task)
        case .timer:
            break
        case .timerFailed:
            deferred.append(message)
        case .event, .eventSourceFinished, .eventSourceFailed:
            deferred.append(message)
        }
    }

    deinit {
        timer?.cancel()
        for pump in pumps ?? [] { pump.cancel() }
        for handle in handles { handle?.cancel() }
        for message in deferred + batch[cursor...] {
            if case .event(_, _, let delivered) = message { delivered.resume() }
        }
    }
}
