/// The scheduling API available inside run hooks, event hooks and task hooks (`SchedulerControl` in the
/// Go library the semantics come from). Every call is O(log n) in the number of tasks.
///
/// - Important: Valid only during the run of the loop that handed it out, and only from inside
///   the hook it was passed to; hooks run one at a time, serialized with the loop, so there is
///   no locking. Naming a task that does not exist is a programmer error and traps.
public final class SchedulerControl {
    private let loop: SchedulerStorage
    /// `loop.taskIndex`'s look-up by bytes (the table, which `loop` keeps alive, is a class: a
    /// call on it would retain and release it, two atomic operations, a tenth of a call).
    private let names: TaskNameTable.Lookup
    private let clock: any SchedulerClock
    private let generation: UInt64

    init(loop: SchedulerStorage, clock: any SchedulerClock) {
        self.loop = loop
        self.names = loop.taskIndex.lookup
        self.clock = clock
        self.generation = loop.generation
    }

    /// The loop calls this before it calls each hook: the next use of ``now`` reads the clock.
    @inline(__always)
    func hookStarts() {
        loop.hookNow = nil
    }

    /// The hook's instant: the scheduler clock read at the first use of `now` (or of a call
    /// relative to now) in a hook's call, and the same for the calls that follow it until the
    /// hook suspends (an `await` that waits: after it, the clock is read again), as libuv's
    /// `uv_now` and sd-event's `sd_event_now` keep one reading of the clock for a turn of their
    /// loop. A clock read costs more than a scheduling call (about 100 ns on a virtual machine
    /// without a fast vDSO clock), and one instant makes `schedule(at: now + d)` and
    /// `schedule(after: d)` agree. A hook that spins a long time without suspending between two
    /// scheduling calls and wants the second relative to the later time calls ``refreshNow()``.
    public var now: Instant {
        let stamp = LoopExecutor.shared.jobStamp()
        if let hookNow = loop.hookNow, stamp == loop.hookNowStamp { return hookNow }
        let reading = clock.now
        loop.hookNow = reading
        loop.hookNowStamp = stamp
        return reading
    }

    /// Reads the clock again: ``now`` and the calls relative to it use the new reading for the
    /// rest of the hook's call.
    @discardableResult
    public func refreshNow() -> Instant {
        loop.hookNow = nil
        return now
    }

    /// The handle of the task named `name`, for calls that skip the name lookup; nil if there is
    /// no such task.
    public func handle(for name: String) -> TaskHandle? {
        (names.index(of: name) ?? loop.taskIndex.slowIndex(of: name)).map {
            TaskHandle(id: SchedulerStateMachine.TaskID($0))
        }
    }

    /// The advisory time `task` will next be ready (for a ready task, when it fell due), or nil.
    public func next(_ task: String) -> Instant? { next(handle(task)) }
    public func next(_ task: TaskHandle) -> Instant? {
        loop.machine.next(checked(task))
    }

    /// Whether a run of `task` is in flight (stage one or its task hook).
    public func isRunning(_ task: String) -> Bool { isRunning(handle(task)) }
    public func isRunning(_ task: TaskHandle) -> Bool {
        loop.machine.isRunning(checked(task))
    }

    /// `delay > 0` schedules `task` at now + delay, replacing any schedule; `delay == 0` makes it
    /// ready now (a task already ready keeps its due time and its turn); `delay < 0` clears its
    /// schedule.
    public func schedule(_ task: String, after delay: Duration) { schedule(handle(task), after: delay) }
    public func schedule(_ task: TaskHandle, after delay: Duration) {
        loop.machine.schedule(checked(task), after: delay, now: now)
    }

    /// Replaces the schedule of `task` with `time`, whatever it was: a future time makes it wait
    /// for `time` (a ready task waits again); a time not in the future makes it ready, due at
    /// `time`, which `next` reports. nil clears it.
    public func schedule(_ task: String, at time: Instant?) { schedule(handle(task), at: time) }
    public func schedule(_ task: TaskHandle, at time: Instant?) {
        loop.machine.schedule(checked(task), at: time, now: now)
    }

    /// Keeps whichever of the existing schedule and now + `delay` is sooner; a ready task stays
    /// ready, due when it was. - Precondition: `delay > 0`.
    public func scheduleSooner(_ task: String, after delay: Duration) { scheduleSooner(handle(task), after: delay) }
    public func scheduleSooner(_ task: TaskHandle, after delay: Duration) {
        loop.machine.scheduleSooner(checked(task), after: delay, now: now)
    }

    /// Keeps whichever of the existing schedule and `time` is sooner. A ready task stays ready;
    /// a `time` before its due time becomes its due time, which `next` reports.
    public func scheduleSooner(_ task: String, at time: Instant) { scheduleSooner(handle(task), at: time) }
    public func scheduleSooner(_ task: TaskHandle, at time: Instant) {
        loop.machine.scheduleSooner(checked(task), at: time, now: now)
    }

    /// Stops the pending timer of `task` without clearing readiness: returns true if it is
    /// (still) ready, and clears its schedule otherwise.
    @discardableResult
    public func stopTimer(_ task: String) -> Bool { stopTimer(handle(task)) }
    @discardableResult
    public func stopTimer(_ task: TaskHandle) -> Bool {
        loop.machine.stopTimer(checked(task), now: now)
    }

    private func handle(_ name: String) -> TaskHandle {
        guard let index = names.index(of: name) ?? loop.taskIndex.slowIndex(of: name) else {
            preconditionFailure("unknown task \"\(name)\"")
        }
        return TaskHandle(id: SchedulerStateMachine.TaskID(index))
    }

    @inline(__always)
    private func checked(_ task: TaskHandle) -> SchedulerStateMachine.TaskID {
        precondition(
            loop.generation == generation && loop.machine.phase == .running,
            "SchedulerControl used outside the run of the loop that handed it out")
        precondition(Int(task.id.index) < loop.machine.taskCount, "a handle of another scheduler")
        return task.id
    }
}

/// A task of one scheduler, resolved once from its name (``Scheduler/handle(for:)``), so that
/// scheduling calls in hot hooks skip the name lookup.
public struct TaskHandle: Hashable, Sendable {
    let id: SchedulerStateMachine.TaskID
}
