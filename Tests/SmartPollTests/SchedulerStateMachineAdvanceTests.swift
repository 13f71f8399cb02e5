import SmartPollTestSupport
import Testing

@testable import SmartPoll

/// `advance(now:)`: the one step both drivers take after every event.
@Suite struct SchedulerStateMachineAdvanceTests {
    @Test func startsWhatFellDueInDueOrderThenAsksForTheNextDeadline() {
        var machine = runningMachine(4)
        machine.schedule(ID(2), at: at(9), now: at(0))
        machine.schedule(ID(1), at: at(5), now: at(0))
        machine.schedule(ID(0), at: at(2), now: at(0))
        machine.schedule(ID(3), after: .zero, now: at(1))
        #expect(machine.advance(now: at(5)) == .start(ID(3), due: at(1)))
        #expect(machine.advance(now: at(5)) == .start(ID(0), due: at(2)))
        #expect(machine.advance(now: at(5)) == .start(ID(1), due: at(5)))
        #expect(machine.advance(now: at(5)) == .wait(until: at(9)))
        #expect(machine.advance(now: at(5)) == .wait(until: at(9)), "asking again changes nothing")
        #expect(machine.runningCount == 3)
        #expect(machine.next(ID(1)) == nil, "a start consumes the schedule")
    }

    @Test func waitsForNothingWhenNothingIsPending() {
        var machine = runningMachine(1)
        #expect(machine.advance(now: at(0)) == .wait(until: nil))
        machine.schedule(ID(0), after: .zero, now: at(0))
        #expect(machine.advance(now: at(0)) == .start(ID(0), due: at(0)))
        #expect(machine.advance(now: at(0)) == .wait(until: nil))
    }

    @Test func startsNothingOutsideARun() {
        var machine = runningMachine(2)
        machine.schedule(ID(0), after: .seconds(1), now: at(0))
        machine.runEnded()
        #expect(machine.advance(now: at(5)) == .wait(until: nil))
        var fresh = SchedulerStateMachine(taskCount: 1)
        #expect(fresh.advance(now: at(5)) == .wait(until: nil))
    }

    @Test func respectsMaximumRunningAndStillNamesTheNextDeadline() {
        var machine = runningMachine(3, maximumRunning: 1)
        machine.schedule(ID(0), at: at(1), now: at(0))
        machine.schedule(ID(1), at: at(2), now: at(0))
        machine.schedule(ID(2), at: at(8), now: at(0))
        #expect(advanceAll(&machine, now: at(3)) == ([0], at(8)))
        #expect(machine.schedule(of: ID(1)) == .ready(due: at(2)), "due, waiting for a slot")
        machine.taskFinished(ID(0))
        #expect(advanceAll(&machine, now: at(3)) == ([1], at(8)))
    }

    @Test func aTaskThatFallsDueWhileRunningWaitsForItsRun() {
        var machine = runningMachine(1)
        machine.schedule(ID(0), after: .zero, now: at(0))
        #expect(advanceAll(&machine, now: at(0)) == ([0], nil))
        machine.schedule(ID(0), after: .seconds(1), now: at(0))
        #expect(advanceAll(&machine, now: at(2)) == ([], nil), "fell due, but its run is in flight")
        #expect(machine.schedule(of: ID(0)) == .ready(due: at(1)))
        machine.taskFinished(ID(0))
        #expect(machine.advance(now: at(2)) == .start(ID(0), due: at(1)))
    }

    @Test func theDriverMayChangeTheMachineBetweenSteps() {
        // A start that fails at once: the driver ends the run and schedules a retry before its
        // next step, which sees both.
        var machine = runningMachine(2)
        machine.schedule(ID(0), after: .zero, now: at(0))
        machine.schedule(ID(1), after: .zero, now: at(0))
        #expect(machine.advance(now: at(0)) == .start(ID(0), due: at(0)))
        machine.taskFinished(ID(0))
        machine.schedule(ID(0), after: .seconds(3), now: at(0))
        #expect(machine.advance(now: at(0)) == .start(ID(1), due: at(0)))
        #expect(machine.advance(now: at(0)) == .wait(until: at(3)))
    }

    @Test func agreesWithTheSeparateCalls() {
        var rng = SplitMix64(seed: 7)
        var stepwise = runningMachine(50, maximumRunning: 7)
        var separate = stepwise
        var now: Int64 = 0
        for _ in 0..<2_000 {
            let task = ID(Int(rng.next() % 50))
            switch rng.next() % 4 {
            case 0:
                let delay = Duration.seconds(Int64(rng.next() % 5))
                stepwise.schedule(task, after: delay, now: at(now))
                separate.schedule(task, after: delay, now: at(now))
            case 1 where stepwise.isRunning(task):
                stepwise.taskFinished(task)
                separate.taskFinished(task)
            default:
                now += Int64(rng.next() % 2)
                let (started, deadline) = advanceAll(&stepwise, now: at(now))
                separate.deadlinesReached(now: at(now))
                #expect(started == drainStarts(&separate))
                #expect(deadline == separate.nextDeadline)
            }
        }
    }
}
