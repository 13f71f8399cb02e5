/// The scheduling core of SPEC section 2 as a value type: events in, with the time passed in;
/// decisions out. It performs no I/O, owns no threads and never reads a clock, so both drivers
/// (the in-process ``Scheduler`` and the supervisor) share exactly these semantics, and tests
/// drive it with plain numbers.
///
/// Each task is in one of three schedule states, independent of whether it is running:
/// - `none`: not scheduled;
/// - `pending(at:)`: a deadline in the future, kept in one min-heap;
/// - `ready(due:)`: due now. A ready task that is not running waits in the start queue (a second
///   heap, ordered by `due`) until ``advance(now:)`` hands it out; a ready task that *is* running
///   stays ready and enters the start queue once ``taskFinished(_:)`` reports the end of its run
///   (including its task hook), so at most one run of a task is in flight.
///
/// A task may also be *held* (``hold(_:)``, ``release(_:)``: the supervisor's `pause`): its
/// schedule changes as usual, but a held ready task stays out of the start queue, exactly as a
/// running one does, so ``advance(now:)`` never sees it. Holding is a flag in the task's record
/// rather than a filter in ``advance(now:)`` because a filter would have to pop and set aside
/// every held ready task on each step (a scan, and a spin when all ready tasks are held); kept
/// out of the queue, a held task costs nothing until it is released, which queues it by its due
/// time (O(log n)), so a task that fell due while held starts at the next step.
///
/// - Complexity: every scheduling call, ``advance(now:)`` and ``deadlinesReached(now:)`` per due
///   or started task, ``nextStart()`` and ``taskFinished(_:)`` are O(log n) in the number of
///   tasks; ``nextDeadline`` is O(1). Only ``runEnded()`` (O(n), once per run of the loop) and
///   ``remapped(taskCount:maximumRunning:mapping:)`` (once per new task set) cost more.
public struct SchedulerStateMachine: Sendable {
    /// A task, by its index in the fixed task set (0..<taskCount).
    public struct TaskID: Hashable, Comparable, Sendable, CustomStringConvertible {
        public let index: Int32

        @inlinable
        public init(_ index: Int) {
            self.index = Int32(index)
        }

        @inlinable
        public static func < (lhs: TaskID, rhs: TaskID) -> Bool { lhs.index < rhs.index }

        public var description: String { "task#\(index)" }
    }

    /// A task's schedule.
    public enum Schedule: Hashable, Sendable {
        case none
        case pending(at: Instant)
        case ready(due: Instant)
    }

    /// Whether the loop is in a run. Scheduling calls and task starts happen only while running.
    public enum Phase: Hashable, Sendable {
        case stopped
        case running
    }

    private struct Record {
        static let none: UInt8 = 0, pending: UInt8 = 1, ready: UInt8 = 2
        var time: Int64 = 0
        var kind: UInt8 = Record.none
        var running = false
        var held = false
    }

    private var records: [Record]
    private var deadlines: DeadlineHeap
    private var startQueue: DeadlineHeap
    private var sequence: UInt64 = 0

    /// The number of tasks currently in flight (started and not yet finished).
    public private(set) var runningCount = 0
    /// The number of tasks with a schedule other than `none`.
    public var scheduledCount: Int { deadlines.count + readyCount }
    private var readyCount = 0
    public private(set) var phase: Phase = .stopped
    /// At most this many tasks in flight at once; 0 means no limit. Ready tasks beyond the limit
    /// wait in due order.
    public var maximumRunning: Int

    /// Creates a machine for `taskCount` tasks, identified as `TaskID(0)..<TaskID(taskCount)`.
    public init(taskCount: Int, maximumRunning: Int = 0) {
        precondition(taskCount > 0, "a scheduler needs at least one task")
        precondition(taskCount < Int(Int32.max), "too many tasks")
        records = Array(repeating: Record(), count: taskCount)
        deadlines = DeadlineHeap(taskCount: taskCount)
        startQueue = DeadlineHeap(taskCount: taskCount)
        self.maximumRunning = maximumRunning
    }

    public var taskCount: Int { records.count }

    // MARK: Queries

    /// The task's schedule.
    public func schedule(of task: TaskID) -> Schedule {
        let record = records[Int(task.index)]
        switch record.kind {
        case Record.pending: return .pending(at: Instant(nanoseconds: record.time))
        case Record.ready: return .ready(due: Instant(nanoseconds: record.time))
        default: return .none
        }
    }

    /// The advisory time the task will next be ready (for a ready task, when it fell due), or nil.
    public func next(_ task: TaskID) -> Instant? {
        let record = records[Int(task.index)]
        return record.kind == Record.none ? nil : Instant(nanoseconds: record.time)
    }

    public func isRunning(_ task: TaskID) -> Bool {
        records[Int(task.index)].running
    }

    /// Whether the task is held (``hold(_:)``).
    public func isHeld(_ task: TaskID) -> Bool {
        records[Int(task.index)].held
    }

    /// The earliest pending deadline, for the driver's single timer.
    public var nextDeadline: Instant? {
        deadlines.min.map { Instant(nanoseconds: $0.time) }
    }

    // MARK: Scheduling calls (the API of SPEC section 2)

    /// `d > 0`: pending at `now + d`, replacing any schedule (even `ready`); `d == 0`: ready now,
    /// except that a task already ready keeps its due time and its place in the start queue (as
    /// the Go library's `Schedule(key, 0)` keeps `Next`); `d < 0`: clears the schedule.
    public mutating func schedule(_ task: TaskID, after delay: Duration, now: Instant) {
        if delay > .zero {
            setPending(task, at: now.advanced(by: delay))
        } else if delay == .zero {
            setReady(task, due: now, replacing: false)
        } else {
            clear(task)
        }
    }

    /// Replaces the schedule with `time`, whatever it was (the Go library's `ScheduleAt`): after
    /// `now`, the task is pending at `time`, so a ready task waits again; at or before `now`, it
    /// is ready and due at `time` (`next` reports `time`), so a ready task stays ready and takes
    /// its place in the start queue by its new due time. nil clears the schedule.
    public mutating func schedule(_ task: TaskID, at time: Instant?, now: Instant) {
        guard let time else { return clear(task) }
        if time <= now {
            setReady(task, due: time, replacing: true)
        } else {
            setPending(task, at: time)
        }
    }

    /// `scheduleSooner(task, at: now + delay, now: now)`. A ready task's due time is never after
    /// `now`, so it stays as it is. - Precondition: `delay > 0`.
    public mutating func scheduleSooner(_ task: TaskID, after delay: Duration, now: Instant) {
        precondition(delay > .zero, "scheduleSooner needs a positive delay")
        scheduleSooner(task, at: now.advanced(by: delay), now: now)
    }

    /// Keeps whichever of the existing schedule and `time` is sooner (the Go library's
    /// `ScheduleAtSooner`). A ready task stays ready; when `time` is before its due time, `time`
    /// becomes its due time (`next` reports it) and its place in the start queue follows. Any
    /// other task takes `time` when it is sooner (or it had no schedule): at or before `now`
    /// that makes it ready.
    public mutating func scheduleSooner(_ task: TaskID, at time: Instant, now: Instant) {
        let record = records[Int(task.index)]
        if record.kind != Record.none && record.time <= time.nanoseconds { return }
        if record.kind == Record.ready || time <= now {
            setReady(task, due: time, replacing: true)
        } else {
            setPending(task, at: time)
        }
    }

    /// Stops the task's pending timer without clearing readiness. Returns true if the task is
    /// (still) ready, which includes a deadline at or before `now` that the driver has not
    /// processed yet (the timer has gone off); otherwise its schedule is cleared and false is
    /// returned.
    public mutating func stopTimer(_ task: TaskID, now: Instant) -> Bool {
        let record = records[Int(task.index)]
        if record.kind == Record.ready { return true }
        if record.kind == Record.pending && record.time <= now.nanoseconds {
            setReady(task, due: Instant(nanoseconds: record.time), replacing: false)
            return true
        }
        clear(task)
        return false
    }

    // MARK: Events from the driver

    /// A run of the loop begins. - Precondition: stopped, and no task from an earlier run is
    /// still in flight (the driver waits for them first).
    public mutating func runStarted() {
        precondition(phase == .stopped, "a run is already in progress")
        precondition(runningCount == 0, "tasks of the previous run are still in flight")
        phase = .running
    }

    /// The run ended (error, cancellation or stop): every schedule is cleared. Tasks in flight
    /// stay counted until ``taskFinished(_:)``, and their late results are the driver's to drop.
    /// - Complexity: O(n).
    public mutating func runEnded() {
        phase = .stopped
        deadlines.removeAll()
        startQueue.removeAll()
        readyCount = 0
        for index in records.indices where records[index].kind != Record.none {
            records[index].kind = Record.none
        }
    }

    /// Moves every task whose deadline is at or before `now` to ready. Returns how many fell due.
    @discardableResult
    public mutating func deadlinesReached(now: Instant) -> Int {
        guard phase == .running else { return 0 }
        var fired = 0
        while let first = deadlines.min, first.time <= now.nanoseconds {
            deadlines.remove(first.task)
            let index = Int(first.task)
            records[index].kind = Record.ready
            readyCount += 1
            if !records[index].running && !records[index].held {
                enqueueStart(first.task, due: first.time)
            }
            fired += 1
        }
        return fired
    }

    /// The next task to start, if one is ready, not running, and the `maximumRunning` limit
    /// allows; it is marked running and its schedule is consumed. The driver calls this until it
    /// returns nil after every event.
    public mutating func nextStart() -> (task: TaskID, due: Instant)? {
        guard phase == .running else { return nil }
        return popStart()
    }

    /// ``nextStart()`` without the phase check.
    @inline(__always)
    private mutating func popStart() -> (task: TaskID, due: Instant)? {
        guard maximumRunning == 0 || runningCount < maximumRunning,
            let entry = startQueue.popMin()
        else { return nil }
        let index = Int(entry.task)
        records[index].kind = Record.none
        records[index].running = true
        readyCount -= 1
        runningCount += 1
        return (TaskID(index), Instant(nanoseconds: entry.time))
    }

    /// What ``advance(now:)`` asks of its driver.
    public enum Action: Hashable, Sendable {
        /// Start a run of the task, which fell due at `due`: it is counted running from now on,
        /// and its schedule is consumed. Then call ``advance(now:)`` again.
        case start(TaskID, due: Instant)
        /// Nothing more may start now. Have one timer armed for `deadline`, the earliest pending
        /// deadline (a timer armed for an earlier instant may stay: it wakes the loop once, in
        /// vain); nil when nothing is pending. Call ``advance(now:)`` again after the timer goes
        /// off, or after any event or scheduling call.
        case wait(until: Instant?)
    }

    /// The one step both drivers take after every event: the deadlines at or before `now` fall
    /// due (as ``deadlinesReached(now:)``), then the next task that may start is handed out (as
    /// ``nextStart()``); when none may, the deadline to arm (as ``nextDeadline``).
    ///
    /// A driver calls it until it answers `.wait`:
    /// ```swift
    /// let now = clock.now
    /// steps: while true {
    ///     switch machine.advance(now: now) {
    ///     case .start(let task, let due): start(task, due)
    ///     case .wait(let deadline): armTimerIfSooner(deadline); break steps
    ///     }
    /// }
    /// ```
    /// Between two steps the driver may do anything with the machine (a start that fails at
    /// once may report `taskFinished(_:)`, a hook may schedule): the next step sees it. Outside a
    /// run it starts nothing and answers `.wait(until: nil)` (a stopped machine has no schedule).
    ///
    /// - Complexity: O(log n) per task that falls due or starts, O(1) for the final `.wait`; it
    ///   allocates nothing.
    public mutating func advance(now: Instant) -> Action {
        guard phase == .running else { return .wait(until: nil) }
        // Most steps find nothing due: spare them the call.
        if let first = deadlines.min, first.time <= now.nanoseconds {
            deadlinesReached(now: now)
        }
        if let (task, due) = popStart() { return .start(task, due: due) }
        return .wait(until: nextDeadline)
    }

    /// The task's run (stage one and its task hook, if any) is over. If it became ready while
    /// running, it joins the start queue now.
    public mutating func taskFinished(_ task: TaskID) {
        let index = Int(task.index)
        precondition(records[index].running, "\(task) finished but was not running")
        records[index].running = false
        runningCount -= 1
        if records[index].kind == Record.ready && !records[index].held {
            enqueueStart(task.index, due: records[index].time)
        }
    }

    /// Holds the task: from now on it never starts, though its schedule still changes as usual
    /// and a run in flight goes on. A ready task leaves the start queue and stays ready (its due
    /// time kept). Valid in either phase; a held task stays held across runs of the loop and
    /// ``remapped(taskCount:maximumRunning:mapping:)``. Holding a held task changes nothing.
    /// - Complexity: O(log n).
    public mutating func hold(_ task: TaskID) {
        let index = Int(task.index)
        guard !records[index].held else { return }
        records[index].held = true
        if records[index].kind == Record.ready && !records[index].running {
            startQueue.remove(task.index)
        }
    }

    /// Ends ``hold(_:)``: a ready task that is not running joins the start queue by its due time,
    /// so the next ``advance(now:)`` may start it. Releasing a task not held changes nothing.
    /// - Complexity: O(log n).
    public mutating func release(_ task: TaskID) {
        let index = Int(task.index)
        guard records[index].held else { return }
        records[index].held = false
        if records[index].kind == Record.ready && !records[index].running {
            enqueueStart(task.index, due: records[index].time)
        }
    }

    /// Counts `task` as in flight without starting it, in either phase: for a driver that builds
    /// a machine of its own while some runs are still going. ``taskFinished(_:)`` ends it as
    /// usual.
    /// ``remapped(taskCount:maximumRunning:mapping:)`` carries runs over by itself.
    /// - Precondition: the task is not already running.
    public mutating func adoptRunning(_ task: TaskID) {
        let index = Int(task.index)
        precondition(!records[index].running, "\(task) is already running")
        records[index].running = true
        runningCount += 1
        // A ready task waits for the end of this run, as it would for any run.
        if records[index].kind == Record.ready && !records[index].held {
            startQueue.remove(task.index)
        }
    }

    // MARK: A new task set

    /// This machine carried over to another task set (a configuration reload): a machine for
    /// `taskCount` tasks, limited to `maximumRunning`, in the same phase, where each task
    /// `mapping` keeps (old task in, its new identity out; nil drops it) is as it was here:
    /// - a pending task keeps its deadline; a ready task stays ready with its due time (`next`
    ///   is unchanged) and keeps its place in the start queue, relative order of equal due
    ///   times included: deadlines and the start queue are carried over, not rebuilt;
    /// - a running task stays running and counted, so ``taskFinished(_:)`` ends it as usual; a
    ///   task both ready and running still starts once after its run.
    ///
    /// A dropped task vanishes, with its schedule; a dropped task that was running no longer
    /// counts toward `runningCount` (its driver owns that run now, and reports nothing of it to
    /// the new machine). Tasks `mapping` does not name are new: not scheduled, not running.
    /// Nothing falls due or starts here: the driver's next ``advance(now:)`` does that.
    ///
    /// - Parameter mapping: called once for each task of this machine, in index order.
    /// - Precondition: `taskCount > 0`; `mapping` gives identities in `0..<taskCount`, never the
    ///   same one twice.
    /// - Complexity: O(n + m + k log k), where n is this machine's task count, m the new one's
    ///   and k the number of kept tasks that have a schedule.
    public func remapped(
        taskCount: Int,
        maximumRunning: Int,
        mapping: (TaskID) throws -> TaskID?
    ) rethrows -> SchedulerStateMachine {
        var machine = SchedulerStateMachine(taskCount: taskCount, maximumRunning: maximumRunning)
        machine.phase = phase
        // Carried entries keep their sequence numbers, so new ones must come after them.
        machine.sequence = sequence
        var newIndices = [Int32](repeating: -1, count: records.count)
        var taken = [Bool](repeating: false, count: taskCount)
        for index in records.indices {
            guard let new = try mapping(TaskID(index)) else { continue }
            let newIndex = Int(new.index)
            precondition(newIndex >= 0 && newIndex < taskCount, "\(new) is not a task of the new set")
            precondition(!taken[newIndex], "two tasks mapped to \(new)")
            taken[newIndex] = true
            newIndices[index] = new.index
            let record = records[index]
            machine.records[newIndex] = record
            if record.running { machine.runningCount += 1 }
            if record.kind == Record.ready { machine.readyCount += 1 }
        }
        for entry in deadlines.entries where newIndices[Int(entry.task)] >= 0 {
            machine.deadlines.insert(newIndices[Int(entry.task)], time: entry.time, sequence: entry.sequence)
        }
        for entry in startQueue.entries where newIndices[Int(entry.task)] >= 0 {
            machine.startQueue.insert(newIndices[Int(entry.task)], time: entry.time, sequence: entry.sequence)
        }
        return machine
    }

    // MARK: Transitions

    private mutating func nextSequence() -> UInt64 {
        sequence &+= 1
        return sequence
    }

    private mutating func enqueueStart(_ task: Int32, due: Int64) {
        startQueue.insert(task, time: due, sequence: nextSequence())
    }

    private mutating func setPending(_ task: TaskID, at time: Instant) {
        precondition(phase == .running, "scheduling calls are only valid while the loop runs")
        let index = Int(task.index)
        if records[index].kind == Record.ready {
            readyCount -= 1
            startQueue.remove(task.index)
        }
        records[index].kind = Record.pending
        records[index].time = time.nanoseconds
        deadlines.insert(task.index, time: time.nanoseconds, sequence: nextSequence())
    }

    /// Makes the task ready, due at `due`. A task already ready keeps its due time, unless
    /// `replacing`: then it is due at `due`, queued anew by it (after tasks already queued with
    /// the same due time, as if scheduled now).
    private mutating func setReady(_ task: TaskID, due: Instant, replacing: Bool) {
        precondition(phase == .running, "scheduling calls are only valid while the loop runs")
        let index = Int(task.index)
        switch records[index].kind {
        case Record.ready:
            guard replacing else { return }
        case Record.pending:
            deadlines.remove(task.index)
            readyCount += 1
        default:
            readyCount += 1
        }
        records[index].kind = Record.ready
        records[index].time = due.nanoseconds
        if !records[index].running && !records[index].held {
            // Moves the task when it is queued already.
            enqueueStart(task.index, due: due.nanoseconds)
        }
    }

    private mutating func clear(_ task: TaskID) {
        precondition(phase == .running, "scheduling calls are only valid while the loop runs")
        let index = Int(task.index)
        switch records[index].kind {
        case Record.ready:
            readyCount -= 1
            startQueue.remove(task.index)
        case Record.pending:
            deadlines.remove(task.index)
        default:
            break
        }
        records[index].kind = Record.none
    }
}
