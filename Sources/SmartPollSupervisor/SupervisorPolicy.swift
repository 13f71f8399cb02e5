import Glibc
import SmartPoll
import SmartPollProtocol

/// What the supervisor decides, as a value (SPEC sections 2 to 5): the scheduler's state
/// machine, every task's definition and retry state, and the built-in task hook. Events in (a
/// run's report, a scheduling request or directive, the loop starting, a hook's schedule, a
/// reload, time passing), actions out. It performs no I/O and reads no clock: the time and a
/// random source (for jitter) are passed in, so tests drive it with plain numbers, and the
/// ``Supervisor`` only carries its actions out (spawn, kill, reply, publish, log, save).
///
/// - Important: Scheduling events are valid only while the loop runs (``isRunning``): the
///   driver refuses requests otherwise, and reports of runs from an earlier run of the loop go
///   to ``lateRunEnded(_:)``.
struct SupervisorPolicy {
    typealias TaskID = SchedulerStateMachine.TaskID

    enum Action: Hashable {
        /// The task's schedule changed to `next` (nil: unscheduled): watchers hear it, the state
        /// file saves it, and a `run --wait` for a run that will now not happen is answered.
        /// Each change is its own action, with the schedule it made, even when a later one in
        /// the same list changes the task again.
        case scheduleChanged(TaskID, next: Instant?)
        /// A fatal failure: the loop's run ends with this error.
        case endLoop(error: String)
    }

    /// How a task's run ended, as the built-in task hook sees it.
    struct Report {
        enum Outcome {
            /// Exit 0: its directives are applied; `changed`: its result differs from the
            /// previous successful one (the first counts as a change).
            case succeeded(changed: Bool, directives: [Command])
            /// An operator's `cancel`: not the task failing; only `every` applies.
            case cancelled
            /// Anything else that is not a success; `reason` names the run and what happened.
            case failed(reason: String)
        }

        var task: TaskID
        var outcome: Outcome
        /// The definition the run started with: a reload's changes apply from the next run.
        var configuration: TaskConfiguration
        /// The time the run fell due (the scheduler's due time it started for): `every_from:
        /// due` counts from it.
        var due: Instant
    }

    /// The last beat `every_from: due` scheduled a task for: the beat on its grid, and the time
    /// it was scheduled for (the beat plus jitter). A run that starts for `scheduled` continues
    /// the grid from `beat`, so jitter never moves the grid.
    struct EveryBeat: Hashable {
        var beat: Instant
        var scheduled: Instant
    }

    /// What a reload changed, by name, and where each kept task went.
    struct ReloadPlan {
        var added: [String]
        var changed: [String]
        var removed: [String]
        /// For each old task index, its new index, or nil when removed.
        var newIndex: [Int?]
        var actions: [Action]
    }

    private(set) var machine: SchedulerStateMachine
    /// Task names in status order (sorted), and each one's index.
    private(set) var names: [String]
    private(set) var indexByName: [String: Int]
    private(set) var configurations: [TaskConfiguration]
    /// Failures since the last success, per task: `retry`'s backoff and `max_retries`.
    private(set) var consecutiveFailures: [Int]
    /// Per task, the last beat `every_from: due` scheduled, if any.
    private(set) var everyBeats: [EveryBeat?]

    init(configuration: SupervisorConfiguration) {
        names = configuration.taskNames
        indexByName = Dictionary(uniqueKeysWithValues: names.enumerated().map { ($1, $0) })
        configurations = names.map { configuration.tasks[$0]! }
        consecutiveFailures = Array(repeating: 0, count: names.count)
        everyBeats = Array(repeating: nil, count: names.count)
        machine = SchedulerStateMachine(taskCount: names.count, maximumRunning: configuration.maximumRunning)
    }

    var isRunning: Bool { machine.phase == .running }

    func task(named name: String) -> TaskID? {
        indexByName[name].map(TaskID.init)
    }

    // MARK: The loop's runs

    /// A run of the loop begins: the run hooks, i.e. every task with `start` is scheduled.
    /// - Precondition: no task of an earlier run is in flight.
    mutating func loopStarted(now: Instant) -> [Action] {
        machine.runStarted()
        var actions: [Action] = []
        for index in names.indices {
            guard let delay = configurations[index].start else { continue }
            actions += schedule(TaskID(index), after: delay, now: now)
        }
        return actions
    }

    /// The loop's run ended: every schedule is cleared; runs in flight end late.
    mutating func loopEnded() {
        machine.runEnded()
    }

    // MARK: Scheduling

    /// Deadlines reached, the next task to start, the timer to arm: the scheduler's
    /// ``SchedulerStateMachine/advance(now:)``. The driver starts each task handed out and
    /// asks again, until the answer is to wait.
    mutating func advance(now: Instant) -> SchedulerStateMachine.Action {
        machine.advance(now: now)
    }

    /// One scheduling request or directive (`schedule`, `unschedule`, `stop_timer`), as the
    /// library's calls. Returns the change it made, or nil for an unknown task or another
    /// command (the driver answers those).
    @discardableResult
    mutating func apply(_ command: Command, now: Instant, instant: (Timestamp) -> Instant) -> Action? {
        switch command {
        case .schedule(let name, let when, let sooner):
            guard let task = task(named: name) else { return nil }
            switch (when, sooner) {
            case (.after(let delay), false): machine.schedule(task, after: delay, now: now)
            case (.after(let delay), true): machine.scheduleSooner(task, after: delay, now: now)
            case (.at(let time), false): machine.schedule(task, at: time.map(instant), now: now)
            case (.at(let time?), true): machine.scheduleSooner(task, at: instant(time), now: now)
            case (.at(nil), true): break  // rejected when decoded
            }
            return changed(task)
        case .unschedule(let name):
            guard let task = task(named: name) else { return nil }
            machine.schedule(task, at: nil, now: now)
            return changed(task)
        case .stopTimer(let name):
            guard let task = task(named: name) else { return nil }
            _ = machine.stopTimer(task, now: now)
            return changed(task)
        default:
            return nil
        }
    }

    /// The library's `schedule(task, after:)`.
    mutating func schedule(_ task: TaskID, after delay: Duration, now: Instant) -> [Action] {
        machine.schedule(task, after: delay, now: now)
        return [changed(task)]
    }

    // MARK: Pause

    /// Whether the task is paused.
    func isPaused(_ task: TaskID) -> Bool {
        Self.isPaused(task, in: machine)
    }

    /// Whether the task is paused, read from a copy of the policy's machine (`status` reads it
    /// once a request).
    static func isPaused(_ task: TaskID, in machine: SchedulerStateMachine) -> Bool {
        machine.isHeld(task)
    }

    /// `pause`: the task never starts until ``resume(_:)``, while its schedule still changes as
    /// usual (`every`, hooks, directives, requests) and a run in flight finishes normally.
    /// Returns whether it was not paused yet. Valid in either phase: pause is a property of the
    /// task, kept across runs of the loop and reloads.
    ///
    /// The flag lives in the scheduler's records (``SchedulerStateMachine/hold(_:)``) rather than
    /// in a set here that ``advance(now:)`` would consult: the machine then keeps a paused ready
    /// task out of its start queue, so a step never sees it (no scan, no spin) and stays
    /// O(log n), and a reload's remapping carries the flag over with the rest of the record.
    /// - Complexity: O(log n).
    @discardableResult
    mutating func pause(_ task: TaskID) -> Bool {
        guard !machine.isHeld(task) else { return false }
        machine.hold(task)
        return true
    }

    /// `resume`: the task may start again; one that fell due while paused starts at the next
    /// ``advance(now:)`` (when the loop runs). Returns whether it was paused.
    /// - Complexity: O(log n).
    @discardableResult
    mutating func resume(_ task: TaskID) -> Bool {
        guard machine.isHeld(task) else { return false }
        machine.release(task)
        return true
    }

    /// A retry count restored from the state file.
    mutating func restore(consecutiveFailures count: Int, of task: TaskID) {
        consecutiveFailures[Int(task.index)] = count
    }

    /// A schedule restored from the state file: the sooner of it and `start` when the task has
    /// one (its run hook has just scheduled it), else exactly the saved time.
    mutating func restore(_ task: TaskID, at time: Instant, now: Instant) -> [Action] {
        if configurations[Int(task.index)].start != nil {
            machine.scheduleSooner(task, at: time, now: now)
        } else {
            machine.schedule(task, at: time, now: now)
        }
        return [changed(task)]
    }

    // MARK: Reload

    /// Takes a new task set: kept tasks keep their schedule, their place among ready tasks,
    /// their run in flight and their retry state, and take their new definition (a run in
    /// flight keeps the one it started with); removed tasks are forgotten (the driver ends
    /// their runs); added tasks get their `start` when the loop is running. Nothing else is
    /// scheduled: a reload never fires a timer by itself.
    mutating func reload(_ new: SupervisorConfiguration, now: Instant) -> ReloadPlan {
        let newNames = new.taskNames
        var newIndexByName: [String: Int] = [:]
        for (position, name) in newNames.enumerated() { newIndexByName[name] = position }
        let newIndex = names.map { newIndexByName[$0] }
        let added = newNames.filter { indexByName[$0] == nil }
        let removed = names.filter { newIndexByName[$0] == nil }
        let changed = newNames.filter { name in
            indexByName[name].map { configurations[$0] != new.tasks[name]! } ?? false
        }
        machine = machine.remapped(taskCount: newNames.count, maximumRunning: new.maximumRunning) {
            newIndex[Int($0.index)].map(TaskID.init)
        }
        var failures = Array(repeating: 0, count: newNames.count)
        var beats = [EveryBeat?](repeating: nil, count: newNames.count)
        for (old, position) in newIndex.enumerated() {
            if let position {
                failures[position] = consecutiveFailures[old]
                beats[position] = everyBeats[old]
            }
        }
        consecutiveFailures = failures
        everyBeats = beats
        names = newNames
        indexByName = newIndexByName
        configurations = newNames.map { new.tasks[$0]! }
        var actions: [Action] = []
        if isRunning {
            for name in added {
                guard let delay = new.tasks[name]!.start else { continue }
                actions += schedule(TaskID(newIndexByName[name]!), after: delay, now: now)
            }
        }
        return ReloadPlan(added: added, changed: changed, removed: removed, newIndex: newIndex, actions: actions)
    }

    // MARK: The built-in task hook (SPEC section 3)

    /// A run of the current loop's run ended: its task hook, then the task may run again.
    ///
    /// - On success: its directives, in order; `on_change` (when the result changed) and
    ///   `on_success` scheduled now; then, if it is not scheduled, `every` (+ jitter), counted
    ///   from now or, with `every_from: due`, from the run's due time.
    /// - Cancelled: only `every`.
    /// - On failure, `on_failure`: `fatal` ends the loop; `continue` reschedules by `every`;
    ///   `retry` schedules it after the backoff (+ jitter), and is fatal after `max_retries`.
    mutating func runEnded<Random: RandomNumberGenerator>(
        _ report: Report, now: Instant, instant: (Timestamp) -> Instant, random: inout Random
    ) -> [Action] {
        defer { machine.taskFinished(report.task) }
        let index = Int(report.task.index)
        let configuration = report.configuration
        var actions: [Action] = []
        switch report.outcome {
        case .succeeded(let changed, let directives):
            for directive in directives {
                if let action = apply(directive, now: now, instant: instant) { actions.append(action) }
            }
            consecutiveFailures[index] = 0
            if changed {
                for name in configuration.onChange { scheduleNow(name, now: now, into: &actions) }
            }
            for name in configuration.onSuccess { scheduleNow(name, now: now, into: &actions) }
            rescheduleByEvery(report, now: now, random: &random, into: &actions)
        case .cancelled:
            rescheduleByEvery(report, now: now, random: &random, into: &actions)
        case .failed(let reason):
            switch configuration.onFailure {
            case .fatal:
                actions.append(.endLoop(error: reason))
            case .continue:
                rescheduleByEvery(report, now: now, random: &random, into: &actions)
            case .retry:
                consecutiveFailures[index] += 1
                let failures = consecutiveFailures[index]
                if let limit = configuration.maximumRetries, failures > limit {
                    actions.append(.endLoop(error: "\(reason); gave up after \(limit) retries"))
                } else {
                    let delay = Self.backoff(afterFailures: failures, configuration.backoff)
                    machine.schedule(report.task, after: delay + Self.jitter(configuration.jitter, &random), now: now)
                    actions.append(changed(report.task))
                }
            }
        }
        return actions
    }

    /// A run that belongs to an earlier run of the loop ended: its result is dropped, and the
    /// task may run again.
    mutating func lateRunEnded(_ task: TaskID) {
        machine.taskFinished(task)
    }

    /// `retry`'s delay after `failures` consecutive failures (1 for the first):
    /// `initial * factor^(failures - 1)`, at most `maximum`.
    static func backoff(afterFailures failures: Int, _ backoff: TaskConfiguration.Backoff) -> Duration {
        let seconds = min(
            Double(backoff.initial.nanosecondsClamped) / 1e9 * pow(backoff.factor, Double(failures - 1)),
            Double(backoff.maximum.nanosecondsClamped) / 1e9)
        return .nanoseconds(Int64(min(seconds * 1e9, 9.2e18)))
    }

    /// A uniformly random delay in `0...bound`.
    static func jitter<Random: RandomNumberGenerator>(_ bound: Duration, _ random: inout Random) -> Duration {
        let nanoseconds = bound.nanosecondsClamped
        guard nanoseconds > 0 else { return .zero }
        return .nanoseconds(Int64.random(in: 0...nanoseconds, using: &random))
    }

    /// The change just made to `task`'s schedule, with the schedule as it is now.
    private func changed(_ task: TaskID) -> Action {
        .scheduleChanged(task, next: machine.next(task))
    }

    private mutating func scheduleNow(_ name: String, now: Instant, into actions: inout [Action]) {
        guard let task = task(named: name) else { return }
        machine.schedule(task, after: .zero, now: now)
        actions.append(changed(task))
    }

    /// `every` (+ jitter) after the end of the run, or after its beat with `every_from: due`,
    /// unless something already scheduled the task.
    private mutating func rescheduleByEvery<Random: RandomNumberGenerator>(
        _ report: Report, now: Instant, random: inout Random, into actions: inout [Action]
    ) {
        let task = report.task
        let configuration = report.configuration
        guard let every = configuration.every, machine.next(task) == nil else { return }
        let jitter = Self.jitter(configuration.jitter, &random)
        switch configuration.everyFrom {
        case .end:
            machine.schedule(task, after: every + jitter, now: now)
        case .due:
            let index = Int(task.index)
            // A run that started for the beat last scheduled continues its grid; any other
            // (`run`, a directive, a hook) starts a new grid at its own due time.
            let previous = everyBeats[index]
            let anchor = previous.flatMap { $0.scheduled == report.due ? $0.beat : nil } ?? report.due
            let beat = Self.nextBeat(after: anchor, every: every, now: now)
            let scheduled = beat.advanced(by: jitter)
            everyBeats[index] = EveryBeat(beat: beat, scheduled: scheduled)
            machine.schedule(task, at: scheduled, now: now)
        }
        actions.append(changed(task))
    }

    /// The first beat `anchor + k * every` (k ≥ 1) that is not before `now`: the beats that
    /// passed are skipped, never run in a burst.
    /// - Precondition: `every` is positive.
    static func nextBeat(after anchor: Instant, every: Duration, now: Instant) -> Instant {
        let period = every.nanosecondsClamped
        let first = anchor.advanced(by: every)
        guard first < now else { return first }
        // The number of periods from `first` to `now`, rounded up: ceil(late / period).
        let late = now.nanoseconds &- first.nanoseconds
        let (skipped, overflow) = ((late - 1) / period + 1).multipliedReportingOverflow(by: period)
        return first.advanced(by: .nanoseconds(overflow ? .max : skipped))
    }
}
