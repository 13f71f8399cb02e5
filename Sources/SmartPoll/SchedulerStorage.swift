/// Everything the loop mutates, kept by reference so that it survives from one run to the next
/// (tasks of an ended run may still be in flight when the next run is requested).
///
/// - Important: Accessed only by the one task executing `Scheduler.run()` (the scheduler's
///   exclusive flag guarantees there is at most one), and by ``SchedulerControl`` from hooks that this
///   task awaits. That is the whole of its thread-safety argument.
final class SchedulerStorage: @unchecked Sendable {
    /// What every scheduling call and every message touches lives behind a pointer rather than
    /// in stored properties: each access to a class's stored `var` costs a dynamic exclusivity
    /// check (swift_beginAccess, a thread-local look-up: about a tenth of a scheduling call, and
    /// some 1,000 instructions of a one-task cycle). The one-task access argument above makes
    /// the check redundant.
    private let core: UnsafeMutablePointer<Core>
    private struct Core {
        var machine: SchedulerStateMachine
        var generation: UInt64 = 0
        var batch: [Mailbox.Message] = []
        var cursor = 0
        var hookNow: Instant?
        /// The job `hookNow` was read in (nil: outside the loop's executor, where it is kept
        /// for the hook's call as it is).
        var hookNowStamp: LoopExecutor.JobStamp?
    }

    var machine: SchedulerStateMachine {
        unsafeAddress { UnsafePointer(core).pointer(to: \.machine)! }
        unsafeMutableAddress { core.pointer(to: \.machine)! }
    }

    /// Incremented at the start and at the end of every run; a task result from another
    /// generation is late and dropped.
    var generation: UInt64 {
        unsafeAddress { UnsafePointer(core).pointer(to: \.generation)! }
        unsafeMutableAddress { core.pointer(to: \.generation)! }
    }

    /// Messages the loop has taken from the mailbox; those from `cursor` on are not handled yet.
    var batch: [Mailbox.Message] {
        unsafeAddress { UnsafePointer(core).pointer(to: \.batch)! }
        unsafeMutableAddress { core.pointer(to: \.batch)! }
    }

    /// The message at `cursor`, moved out of the batch (a trivial message takes its place, so
    /// that clearing the batch later destroys nothing twice), and `cursor` advanced: no copy of
    /// the message (see ``Mailbox/post(_:)``).
    @inline(__always)
    func takeNextMessage() -> Mailbox.Message {
        let index = core.pointee.cursor
        core.pointee.cursor = index + 1
        return core.pointee.batch.withUnsafeMutableBufferPointer { buffer in
            let slot = buffer.baseAddress! + index
            let message = slot.move()
            slot.initialize(to: .timer(token: 0))
            return message
        }
    }

    var cursor: Int {
        unsafeAddress { UnsafePointer(core).pointer(to: \.cursor)! }
        unsafeMutableAddress { core.pointer(to: \.cursor)! }
    }

    /// ``SchedulerControl/now`` for the hook being called, once read.
    var hookNow: Instant? {
        unsafeAddress { UnsafePointer(core).pointer(to: \.hookNow)! }
        unsafeMutableAddress { core.pointer(to: \.hookNow)! }
    }

    var hookNowStamp: LoopExecutor.JobStamp? {
        unsafeAddress { UnsafePointer(core).pointer(to: \.hookNowStamp)! }
        unsafeMutableAddress { core.pointer(to: \.hookNowStamp)! }
    }

    let taskIndex: TaskNameTable
    /// Event-hook messages that arrived while no run could handle them, oldest first.
    var deferred: [Mailbox.Message] = []
    var timer: Task<Void, Never>?
    var armedDeadline: Instant?
    var timerToken: UInt64 = 0
    var pumps: [Task<Void, Never>]?

    init(taskCount: Int, taskIndex: TaskNameTable) {
        core = .allocate(capacity: 1)
        core.initialize(
            to: Core(
                machine: SchedulerStateMachine(taskCount: taskCount)))
        core.pointee.batch.reserveCapacity(256)
        self.taskIndex = taskIndex
    }

    /// Accounts for a message outside a run: a task's end is recorded and its result dropped;
    /// event values wait for the next run; stale timers are ignored.
    func absorb(_ message: Mailbox.Message) {
        switch message {
        case .taskFinished(let task, _, _, _):
            machine.taskFinished(task)
        case .timer, .needWorker:
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
        for message in deferred + batch[cursor...] {
            if case .event(_, _, let delivered) = message { delivered.resume() }
        }
        core.deinitialize(count: 1)
        core.deallocate()
    }
}
