/// The scheduling API available inside run hooks, event hooks and task hooks (`SchedulerControl` in the
/// Go library the semantics come from). Every call is O(log n) in the number of tasks.
///
/// - Important: Valid only during the run of the loop that handed it out, and only from inside
///   the hook it was passed to; hooks run one at a time, serialized with the loop, so there is
///   no locking. Naming a task that does not exist is a programmer error and traps.
public final class SchedulerControl {
    private let loop: LoopState
    private let clock: any SchedulerClock
    private let generation: UInt64

    init(loop: LoopState, clock: any SchedulerClock) {
        self.loop = loop
        self.clock = clock
        self.generation = loop.generation
    }

    /// The scheduler clock's current instant.
    public var now: Instant { clock.now }

    /// The advisory time `task` will next be ready (for a ready task, when it fell due), or nil.
    public func next(_ task: String) -> Instant? {
        loop.machine.next(id(task))
    }

    /// Whether a run of `task` is in flight (stage one or its task hook).
    public func isRunning(_ task: String) -> Bool {
        loop.machine.isRunning(id(task))
    }

    /// `delay > 0` schedules `task` at now + delay, replacing any schedule; `delay == 0` makes it
    /// ready now; `delay < 0` clears its schedule.
    public func schedule(_ task: String, after delay: Duration) {
        let id = id(task)
        loop.machine.schedule(id, after: delay, now: clock.now)
    }

    /// Replaces the schedule of `task` with `time` (in the past: ready now); nil clears it.
    public func schedule(_ task: String, at time: Instant?) {
        let id = id(task)
        loop.machine.schedule(id, at: time, now: clock.now)
    }

    /// Keeps whichever of the existing schedule and now + `delay` is sooner; a ready task stays
    /// ready. - Precondition: `delay > 0`.
    public func scheduleSooner(_ task: String, after delay: Duration) {
        let id = id(task)
        loop.machine.scheduleSooner(id, after: delay, now: clock.now)
    }

    /// Keeps whichever of the existing schedule and `time` is sooner; a ready task stays ready.
    public func scheduleSooner(_ task: String, at time: Instant) {
        let id = id(task)
        loop.machine.scheduleSooner(id, at: time, now: clock.now)
    }

    /// Stops the pending timer of `task` without clearing readiness: returns true if it is
    /// (still) ready, and clears its schedule otherwise.
    @discardableResult
    public func stopTimer(_ task: String) -> Bool {
        loop.machine.stopTimer(id(task))
    }

    @inline(__always)
    private func id(_ task: String) -> SchedulerStateMachine.TaskID {
        precondition(loop.generation == generation && loop.machine.phase == .running,
                     "SchedulerControl used outside the run of the loop that handed it out")
        guard let index = loop.taskIndex[task] else {
            preconditionFailure("unknown task \"\(task)\"")
        }
        return SchedulerStateMachine.TaskID(index)
    }
}
