import SmartPollTestSupport
import Testing

@testable import SmartPoll

@Suite struct SchedulerStateMachineTests {
    @Test func aHeldTaskFallsDueButNeverStartsAndAdvanceDoesNotSpinOnIt() {
        var machine = runningMachine(2)
        machine.hold(ID(0))
        machine.schedule(ID(0), after: .seconds(5), now: at(0))
        machine.schedule(ID(1), after: .seconds(5), now: at(0))
        #expect(machine.isHeld(ID(0)) && !machine.isHeld(ID(1)))
        let first = advanceAll(&machine, now: at(5))
        #expect(first.started == [1], "the held task fell due but did not start")
        #expect(first.deadline == nil)
        #expect(machine.schedule(of: ID(0)) == .ready(due: at(5)), "it keeps its schedule")
        // Asked again and again, the machine answers wait at once: the held task is not in the
        // start queue, so it is never handed out nor looked at.
        for time in 6...8 {
            #expect(machine.advance(now: at(Int64(time))) == .wait(until: nil))
        }
        // Its schedule still moves while held.
        machine.schedule(ID(0), after: .seconds(10), now: at(8))
        #expect(machine.schedule(of: ID(0)) == .pending(at: at(18)))
        #expect(advanceAll(&machine, now: at(18)).started == [])
        machine.release(ID(0))
        #expect(!machine.isHeld(ID(0)))
        let resumed = advanceAll(&machine, now: at(20))
        #expect(resumed.started == [0], "released, the task that fell due meanwhile starts at once")
    }

    @Test func aHeldRunningTaskFinishesAndThenWaitsForItsRelease() {
        var machine = runningMachine(1)
        machine.schedule(ID(0), after: .zero, now: at(0))
        #expect(advanceAll(&machine, now: at(0)).started == [0])
        machine.hold(ID(0))
        machine.schedule(ID(0), after: .zero, now: at(1))
        machine.taskFinished(ID(0))
        #expect(machine.runningCount == 0, "the run in flight ended normally")
        #expect(advanceAll(&machine, now: at(2)).started == [], "ready, but held")
        // Holding and releasing twice changes nothing more.
        machine.hold(ID(0))
        machine.release(ID(0))
        machine.release(ID(0))
        #expect(advanceAll(&machine, now: at(3)).started == [0])
    }

    @Test func aHoldOutlivesTheLoopsRunAndARemapping() {
        var machine = SchedulerStateMachine(taskCount: 2)
        machine.hold(ID(1))
        machine.runStarted()
        machine.runEnded()
        machine.runStarted()
        machine = machine.remapped(taskCount: 2, maximumRunning: 0) { ID(1 - Int($0.index)) }
        #expect(machine.isHeld(ID(0)) && !machine.isHeld(ID(1)), "the hold moved with the task")
        machine.schedule(ID(0), after: .zero, now: at(0))
        machine.schedule(ID(1), after: .zero, now: at(0))
        #expect(advanceAll(&machine, now: at(0)).started == [1])
    }

    @Test func anAdoptedRunningTaskHoldsItsSlotAndItsReadinessUntilItFinishes() {
        // A replacement machine (a reload) takes over a run in flight and a ready task.
        var machine = runningMachine(2, maximumRunning: 1)
        machine.schedule(ID(0), after: .zero, now: at(1))
        machine.adoptRunning(ID(0))
        machine.adoptRunning(ID(1))
        #expect(machine.runningCount == 2)
        #expect(machine.isRunning(ID(0)) && machine.isRunning(ID(1)))
        #expect(machine.nextStart() == nil, "ready, but its run is still in flight")
        machine.taskFinished(ID(1))
        #expect(machine.nextStart() == nil, "the one slot is still taken by task 0")
        machine.taskFinished(ID(0))
        #expect(drainStarts(&machine) == [0])
        #expect(machine.schedule(of: ID(0)) == .none)
    }

    @Test func adoptingARunningTaskWorksWhileStopped() {
        var machine = SchedulerStateMachine(taskCount: 1)
        machine.adoptRunning(ID(0))
        #expect(machine.runningCount == 1)
        machine.taskFinished(ID(0))
        #expect(machine.runningCount == 0)
        machine.runStarted()
        #expect(machine.phase == .running)
    }

    @Test func positiveDelaySchedulesAtNowPlusDelay() {
        var machine = runningMachine()
        machine.schedule(ID(0), after: .seconds(10), now: at(5))
        #expect(machine.schedule(of: ID(0)) == .pending(at: at(15)))
        #expect(machine.next(ID(0)) == at(15))
        #expect(machine.nextDeadline == at(15))
        #expect(machine.nextStart() == nil)
    }

    @Test func positiveDelayReplacesAnEarlierAndALaterSchedule() {
        var machine = runningMachine()
        machine.schedule(ID(0), after: .seconds(10), now: at(0))
        machine.schedule(ID(0), after: .seconds(20), now: at(0))
        #expect(machine.next(ID(0)) == at(20))
        machine.schedule(ID(0), after: .seconds(3), now: at(0))
        #expect(machine.next(ID(0)) == at(3))
        #expect(machine.nextDeadline == at(3))
        #expect(machine.scheduledCount == 1)
    }

    @Test func positiveDelayReplacesEvenAReadyState() {
        var machine = runningMachine(2, maximumRunning: 1)
        machine.schedule(ID(0), after: .zero, now: at(0))
        #expect(drainStarts(&machine) == [0])
        machine.schedule(ID(1), after: .zero, now: at(0))
        #expect(machine.schedule(of: ID(1)) == .ready(due: at(0)))
        machine.schedule(ID(1), after: .seconds(4), now: at(1))
        #expect(machine.schedule(of: ID(1)) == .pending(at: at(5)))
        machine.taskFinished(ID(0))
        #expect(drainStarts(&machine) == [], "the replaced ready state must not start the task")
        machine.deadlinesReached(now: at(5))
        #expect(drainStarts(&machine) == [1])
    }

    @Test func zeroDelayMakesReadyNow() {
        var machine = runningMachine()
        machine.schedule(ID(2), after: .seconds(30), now: at(0))
        machine.schedule(ID(2), after: .zero, now: at(7))
        #expect(machine.schedule(of: ID(2)) == .ready(due: at(7)))
        #expect(machine.nextDeadline == nil, "the replaced timer is gone from the heap")
        let start = machine.nextStart()
        #expect(start?.task == ID(2))
        #expect(start?.due == at(7))
        #expect(machine.isRunning(ID(2)))
        #expect(machine.next(ID(2)) == nil, "starting consumes the schedule")
    }

    @Test func negativeDelayClearsPendingAndReady() {
        var machine = runningMachine(2, maximumRunning: 1)
        machine.schedule(ID(0), after: .seconds(1), now: at(0))
        machine.schedule(ID(0), after: .seconds(-1), now: at(0))
        #expect(machine.schedule(of: ID(0)) == .none)
        #expect(machine.nextDeadline == nil)

        machine.schedule(ID(0), after: .zero, now: at(0))
        _ = machine.nextStart()
        machine.schedule(ID(1), after: .zero, now: at(0))
        machine.schedule(ID(1), after: .milliseconds(-1), now: at(0))
        #expect(machine.schedule(of: ID(1)) == .none)
        machine.taskFinished(ID(0))
        #expect(drainStarts(&machine) == [])
        #expect(machine.scheduledCount == 0)
    }

    @Test func scheduleAtReplacesAndPastMeansReady() {
        var machine = runningMachine()
        machine.schedule(ID(0), at: at(50), now: at(10))
        #expect(machine.schedule(of: ID(0)) == .pending(at: at(50)))
        machine.schedule(ID(0), at: at(70), now: at(10))
        #expect(machine.schedule(of: ID(0)) == .pending(at: at(70)))
        machine.schedule(ID(0), at: at(3), now: at(10))
        #expect(machine.schedule(of: ID(0)) == .ready(due: at(3)))
        machine.schedule(ID(1), at: at(10), now: at(10))
        #expect(machine.schedule(of: ID(1)) == .ready(due: at(10)))
        machine.schedule(ID(0), at: nil, now: at(10))
        #expect(machine.schedule(of: ID(0)) == .none)
        #expect(drainStarts(&machine) == [1])
    }

    @Test func sooner_keepsTheEarlierOfExistingAndNew() {
        var machine = runningMachine()
        machine.scheduleSooner(ID(0), after: .seconds(10), now: at(0))
        #expect(machine.next(ID(0)) == at(10), "an unscheduled task takes the new time")
        machine.scheduleSooner(ID(0), after: .seconds(20), now: at(0))
        #expect(machine.next(ID(0)) == at(10), "a later time is ignored")
        machine.scheduleSooner(ID(0), after: .seconds(5), now: at(0))
        #expect(machine.next(ID(0)) == at(5), "a sooner time wins")
        #expect(machine.nextDeadline == at(5))
        machine.scheduleSooner(ID(0), at: at(4), now: at(0))
        #expect(machine.next(ID(0)) == at(4))
        machine.scheduleSooner(ID(0), at: at(0), now: at(1))
        #expect(machine.schedule(of: ID(0)) == .ready(due: at(0)), "a past time makes it ready")
    }

    @Test func soonerLeavesAReadyTaskReady() {
        var machine = runningMachine(1)
        machine.schedule(ID(0), after: .zero, now: at(2))
        machine.scheduleSooner(ID(0), after: .seconds(1), now: at(3))
        #expect(machine.schedule(of: ID(0)) == .ready(due: at(2)))
        machine.scheduleSooner(ID(0), at: at(100), now: at(3))
        #expect(machine.schedule(of: ID(0)) == .ready(due: at(2)))
        #expect(machine.nextDeadline == nil)
    }

    // Parity with the Go library on a task that is already ready: `ScheduleAt` replaces timer
    // and `next` whatever the state; `ScheduleAtSooner` takes a sooner time into `next` and
    // keeps readiness; `Schedule(key, 0)` leaves a ready task as it is.

    @Test func scheduleAtAFutureTimeMakesAReadyTaskWaitAgain() {
        var machine = runningMachine(2)
        machine.schedule(ID(0), after: .zero, now: at(5))
        machine.schedule(ID(0), at: at(20), now: at(6))
        #expect(machine.schedule(of: ID(0)) == .pending(at: at(20)))
        #expect(machine.next(ID(0)) == at(20))
        #expect(machine.nextDeadline == at(20))
        #expect(machine.scheduledCount == 1)
        #expect(drainStarts(&machine) == [], "it is no longer ready")
        #expect(machine.advance(now: at(20)) == .start(ID(0), due: at(20)))
    }

    @Test func scheduleAtAPastTimeKeepsAReadyTaskReadyDueAtThatTime() {
        var machine = runningMachine(3)
        machine.schedule(ID(0), at: at(3), now: at(10))
        machine.schedule(ID(1), at: at(5), now: at(10))
        machine.schedule(ID(2), at: at(7), now: at(10))
        machine.schedule(ID(0), at: at(8), now: at(10))
        #expect(machine.schedule(of: ID(0)) == .ready(due: at(8)))
        #expect(machine.next(ID(0)) == at(8))
        machine.schedule(ID(2), at: at(1), now: at(10))
        #expect(machine.next(ID(2)) == at(1))
        #expect(machine.scheduledCount == 3)
        #expect(drainStarts(&machine) == [2, 1, 0], "the start queue follows the new due times")
    }

    @Test func scheduleAtTheSameDueTimeQueuesAReadyTaskAsIfScheduledNow() {
        var machine = runningMachine(2)
        machine.schedule(ID(0), at: at(5), now: at(10))
        machine.schedule(ID(1), at: at(5), now: at(10))
        machine.schedule(ID(0), at: at(5), now: at(10))
        #expect(drainStarts(&machine) == [1, 0], "a replaced schedule goes after its equals")
    }

    @Test func scheduleAtOnAReadyRunningTaskReplacesTheRunItWaitsFor() {
        var machine = runningMachine(1)
        machine.schedule(ID(0), after: .zero, now: at(0))
        #expect(drainStarts(&machine) == [0])
        machine.schedule(ID(0), after: .zero, now: at(1))
        machine.schedule(ID(0), at: at(0), now: at(2))
        #expect(machine.schedule(of: ID(0)) == .ready(due: at(0)))
        machine.schedule(ID(0), at: at(9), now: at(2))
        #expect(machine.schedule(of: ID(0)) == .pending(at: at(9)))
        machine.taskFinished(ID(0))
        #expect(machine.advance(now: at(3)) == .wait(until: at(9)), "it waits for its new time")
        machine.schedule(ID(0), at: at(2), now: at(3))
        #expect(machine.advance(now: at(3)) == .start(ID(0), due: at(2)))
    }

    @Test func scheduleSoonerAtAnEarlierTimeMovesAReadyTaskWhichStaysReady() {
        var machine = runningMachine(2)
        machine.schedule(ID(0), at: at(4), now: at(10))
        machine.schedule(ID(1), at: at(6), now: at(10))
        machine.scheduleSooner(ID(1), at: at(2), now: at(10))
        #expect(machine.schedule(of: ID(1)) == .ready(due: at(2)))
        #expect(machine.next(ID(1)) == at(2))
        machine.scheduleSooner(ID(0), at: at(4), now: at(10))
        machine.scheduleSooner(ID(0), at: at(30), now: at(10))
        machine.scheduleSooner(ID(0), after: .seconds(1), now: at(10))
        #expect(machine.schedule(of: ID(0)) == .ready(due: at(4)), "not sooner: unchanged, and still ready")
        #expect(machine.nextDeadline == nil)
        #expect(drainStarts(&machine) == [1, 0])
    }

    @Test func scheduleSoonerOnAReadyRunningTaskKeepsItReady() {
        var machine = runningMachine(1)
        machine.schedule(ID(0), after: .zero, now: at(0))
        #expect(drainStarts(&machine) == [0])
        machine.schedule(ID(0), after: .zero, now: at(5))
        machine.scheduleSooner(ID(0), at: at(3), now: at(6))
        machine.scheduleSooner(ID(0), after: .seconds(2), now: at(6))
        #expect(machine.schedule(of: ID(0)) == .ready(due: at(3)))
        machine.taskFinished(ID(0))
        #expect(machine.advance(now: at(7)) == .start(ID(0), due: at(3)))
    }

    @Test func zeroDelayLeavesAReadyTaskItsDueTimeAndItsPlace() {
        var machine = runningMachine(2)
        machine.schedule(ID(0), after: .zero, now: at(1))
        machine.schedule(ID(1), after: .zero, now: at(2))
        machine.schedule(ID(0), after: .zero, now: at(3))
        #expect(machine.schedule(of: ID(0)) == .ready(due: at(1)))
        #expect(drainStarts(&machine) == [0, 1])
    }

    @Test func stopTimerReportsReadinessAndClearsOnlyPending() {
        var machine = runningMachine(3, maximumRunning: 1)
        #expect(machine.stopTimer(ID(0), now: at(0)) == false)

        machine.schedule(ID(0), after: .seconds(9), now: at(0))
        #expect(machine.stopTimer(ID(0), now: at(1)) == false)
        #expect(machine.next(ID(0)) == nil)
        #expect(machine.nextDeadline == nil)

        machine.schedule(ID(1), after: .zero, now: at(0))
        _ = machine.nextStart()
        machine.schedule(ID(2), after: .zero, now: at(1))
        #expect(machine.stopTimer(ID(2), now: at(1)) == true)
        #expect(machine.schedule(of: ID(2)) == .ready(due: at(1)), "readiness is kept")
        machine.taskFinished(ID(1))
        #expect(drainStarts(&machine) == [2])
    }

    @Test func stopTimerTreatsAPassedButUnprocessedDeadlineAsReady() {
        var machine = runningMachine(1)
        machine.schedule(ID(0), after: .seconds(2), now: at(0))
        #expect(machine.stopTimer(ID(0), now: at(3)) == true, "the timer has gone off already")
        #expect(machine.schedule(of: ID(0)) == .ready(due: at(2)))
        #expect(drainStarts(&machine) == [0])
    }

    @Test func taskDueWhileRunningStaysReadyAndStartsOnceAfterItsRun() {
        var machine = runningMachine(1)
        machine.schedule(ID(0), after: .zero, now: at(0))
        #expect(drainStarts(&machine) == [0])
        machine.schedule(ID(0), after: .seconds(1), now: at(0))
        machine.deadlinesReached(now: at(1))
        #expect(machine.schedule(of: ID(0)) == .ready(due: at(1)))
        #expect(drainStarts(&machine) == [], "single flight: no second run while the first is in flight")
        machine.schedule(ID(0), after: .zero, now: at(2))
        machine.schedule(ID(0), after: .zero, now: at(3))
        #expect(drainStarts(&machine) == [])
        machine.taskFinished(ID(0))
        #expect(drainStarts(&machine) == [0], "exactly one start after the run ends")
        #expect(drainStarts(&machine) == [])
        #expect(machine.runningCount == 1)
    }

    @Test func deadlinesFireInTimeOrderAndTiesInScheduleOrder() {
        var machine = runningMachine(4)
        machine.schedule(ID(3), at: at(5), now: at(0))
        machine.schedule(ID(1), at: at(2), now: at(0))
        machine.schedule(ID(2), at: at(5), now: at(0))
        machine.schedule(ID(0), at: at(9), now: at(0))
        #expect(machine.deadlinesReached(now: at(4)) == 1)
        #expect(drainStarts(&machine) == [1])
        #expect(machine.deadlinesReached(now: at(5)) == 2)
        #expect(drainStarts(&machine) == [3, 2])
        #expect(machine.nextDeadline == at(9))
    }

    @Test func maximumRunningStartsReadyTasksInDueOrder() {
        var machine = runningMachine(4, maximumRunning: 2)
        machine.schedule(ID(0), at: at(1), now: at(0))
        machine.schedule(ID(1), at: at(4), now: at(0))
        machine.schedule(ID(2), at: at(3), now: at(0))
        machine.schedule(ID(3), at: at(2), now: at(0))
        machine.deadlinesReached(now: at(10))
        #expect(drainStarts(&machine) == [0, 3])
        machine.taskFinished(ID(0))
        #expect(drainStarts(&machine) == [2])
        machine.taskFinished(ID(3))
        machine.taskFinished(ID(2))
        #expect(drainStarts(&machine) == [1])
    }

    @Test func runEndClearsEverySchedulesAndDropsNothingInFlight() {
        var machine = runningMachine(3)
        machine.schedule(ID(0), after: .zero, now: at(0))
        #expect(drainStarts(&machine) == [0])
        machine.schedule(ID(0), after: .zero, now: at(0))
        machine.schedule(ID(1), after: .seconds(5), now: at(0))
        machine.runEnded()
        #expect(machine.phase == .stopped)
        #expect(machine.scheduledCount == 0)
        #expect(machine.nextDeadline == nil)
        #expect(machine.next(ID(0)) == nil)
        #expect(machine.next(ID(1)) == nil)
        #expect(machine.runningCount == 1, "the task in flight is still counted until it ends")
        machine.taskFinished(ID(0))
        #expect(machine.runningCount == 0)
        #expect(drainStarts(&machine) == [], "nothing starts outside a run")
        machine.deadlinesReached(now: at(100))
        machine.runStarted()
        #expect(drainStarts(&machine) == [])
    }

    @Test func nothingStartsOrFiresWhileStopped() {
        var machine = SchedulerStateMachine(taskCount: 2)
        #expect(machine.phase == .stopped)
        #expect(machine.deadlinesReached(now: at(1)) == 0)
        #expect(machine.nextStart() == nil)
    }

    /// The machine against a naive reference model (a linear scan per step) over random
    /// operations, reloads to other task sets included: any disagreement in schedules, starts or
    /// the earliest deadline fails.
    @Test func agreesWithANaiveModelOnRandomOperations() {
        struct Model {
            var schedule: [SchedulerStateMachine.Schedule]
            var running: [Bool]
            /// When each task was last queued, for ties between equal times.
            var order: [UInt64]
            var seq: UInt64 = 0
            var maxRunning: Int

            var count: Int { schedule.count }

            mutating func stamp(_ i: Int) { seq += 1; order[i] = seq }

            /// Every pending deadline at or before `now` becomes ready, in (time, order) order.
            mutating func deadlinesReached(now: Int64) {
                let due = (0..<count).compactMap { i -> (Int64, UInt64, Int)? in
                    if case .pending(let t) = schedule[i], t <= at(now) { return (t.nanoseconds, order[i], i) }
                    return nil
                }.sorted { ($0.0, $0.1) < ($1.0, $1.1) }
                for (t, _, i) in due { schedule[i] = .ready(due: Instant(nanoseconds: t)); stamp(i) }
            }

            /// Starts everything that may start, in (due, order) order.
            mutating func startAll() -> [Int] {
                var started: [Int] = []
                while maxRunning == 0 || running.filter({ $0 }).count < maxRunning {
                    let candidates = (0..<count).compactMap { i -> (Int64, UInt64, Int)? in
                        if case .ready(let d) = schedule[i], !running[i] { return (d.nanoseconds, order[i], i) }
                        return nil
                    }
                    guard let first = candidates.min(by: { ($0.0, $0.1) < ($1.0, $1.1) }) else { break }
                    schedule[first.2] = .none
                    running[first.2] = true
                    started.append(first.2)
                }
                return started
            }

            var earliest: Instant? {
                (0..<count).compactMap { i -> Instant? in
                    if case .pending(let t) = schedule[i] { return t }
                    return nil
                }.min()
            }
        }
        var rng = SplitMix64(seed: 42)
        for round in 0..<20 {
            var count = 1 + Int(rng.next() % 12)
            let limit = Int(rng.next() % 4)
            var machine = runningMachine(count, maximumRunning: limit)
            var model = Model(
                schedule: Array(repeating: .none, count: count), running: Array(repeating: false, count: count),
                order: Array(repeating: 0, count: count), maxRunning: limit)
            var now: Int64 = 0
            for step in 0..<2_000 {
                let task = Int(rng.next() % UInt64(count))
                let id = ID(task)
                let amount = Int64(rng.next() % 7) - 2
                switch rng.next() % 11 {
                case 0:
                    machine.schedule(id, after: .seconds(amount), now: at(now))
                    if amount > 0 {
                        model.schedule[task] = .pending(at: at(now + amount))
                        model.stamp(task)
                    } else if amount < 0 {
                        model.schedule[task] = .none
                    } else if case .ready = model.schedule[task] {
                        // Already ready: due time and place kept.
                    } else {
                        model.schedule[task] = .ready(due: at(now))
                        model.stamp(task)
                    }
                case 1:
                    // Replaces whatever the state, a ready task's due time included.
                    let time = now + amount
                    machine.schedule(id, at: at(time), now: at(now))
                    model.schedule[task] = time > now ? .pending(at: at(time)) : .ready(due: at(time))
                    model.stamp(task)
                case 2:
                    let time = now + amount
                    machine.scheduleSooner(id, at: at(time), now: at(now))
                    switch model.schedule[task] {
                    case .ready(let due) where due <= at(time), .pending(let due) where due <= at(time):
                        break
                    case .ready:
                        model.schedule[task] = .ready(due: at(time))
                        model.stamp(task)
                    default:
                        model.schedule[task] = time > now ? .pending(at: at(time)) : .ready(due: at(time))
                        model.stamp(task)
                    }
                case 3:
                    let ready = machine.stopTimer(id, now: at(now))
                    switch model.schedule[task] {
                    case .ready: #expect(ready)
                    case .pending(let t) where t <= at(now):
                        #expect(ready)
                        model.schedule[task] = .ready(due: t)
                        model.stamp(task)
                    default: #expect(!ready); model.schedule[task] = .none
                    }
                case 4:
                    now += Int64(rng.next() % 3)
                    machine.deadlinesReached(now: at(now))
                    model.deadlinesReached(now: now)
                case 5:
                    let runningTasks = (0..<count).filter { model.running[$0] }
                    if let finished = runningTasks.first(where: { _ in rng.next() % 2 == 0 }) {
                        machine.taskFinished(ID(finished))
                        model.running[finished] = false
                        if case .ready = model.schedule[finished] { model.stamp(finished) }
                    }
                case 6 where !model.running.contains(true):
                    // End the run and start another: every schedule is gone.
                    machine.runEnded()
                    machine.runStarted()
                    model.schedule = Array(repeating: .none, count: count)
                case 7:
                    now += Int64(rng.next() % 3)
                    let (started, deadline) = advanceAll(&machine, now: at(now))
                    model.deadlinesReached(now: now)
                    #expect(started.map(Int.init) == model.startAll(), "round \(round) step \(step)")
                    #expect(deadline == model.earliest)
                case 8 where rng.next() % 8 == 0:
                    // A reload: another task set, each old task kept (somewhere) or dropped.
                    let newCount = 1 + Int(rng.next() % 12)
                    let newLimit = Int(rng.next() % 4)
                    var free = Array(0..<newCount)
                    var table: [Int?] = []
                    for _ in 0..<count {
                        if rng.next() % 4 == 0 || free.isEmpty {
                            table.append(nil)
                        } else {
                            table.append(free.remove(at: Int(rng.next() % UInt64(free.count))))
                        }
                    }
                    machine = machine.remapped(taskCount: newCount, maximumRunning: newLimit) { old in
                        table[Int(old.index)].map(ID.init)
                    }
                    var remapped = Model(
                        schedule: Array(repeating: .none, count: newCount),
                        running: Array(repeating: false, count: newCount),
                        order: Array(repeating: 0, count: newCount), seq: model.seq, maxRunning: newLimit)
                    for (old, new) in table.enumerated() {
                        guard let new else { continue }
                        remapped.schedule[new] = model.schedule[old]
                        remapped.running[new] = model.running[old]
                        remapped.order[new] = model.order[old]
                    }
                    model = remapped
                    count = newCount
                default:
                    #expect(drainStarts(&machine).map(Int.init) == model.startAll(), "round \(round) step \(step)")
                }
                #expect(machine.taskCount == count)
                #expect(machine.runningCount == model.running.filter { $0 }.count)
                for i in 0..<count {
                    #expect(machine.schedule(of: ID(i)) == model.schedule[i], "round \(round) step \(step) task \(i)")
                    #expect(machine.isRunning(ID(i)) == model.running[i])
                }
                #expect(machine.nextDeadline == model.earliest)
            }
        }
    }
}
