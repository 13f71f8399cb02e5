import Testing

@testable import SmartPoll

/// `remapped(taskCount:maximumRunning:mapping:)`: a machine carried over to a new task set.
@Suite struct SchedulerStateMachineRemapTests {
    /// The mapping given as a table: `table[old]` is the new index, or nil when dropped.
    private func remap(
        _ machine: SchedulerStateMachine, to count: Int, maximumRunning: Int = 0, _ table: [Int?]
    ) -> SchedulerStateMachine {
        machine.remapped(taskCount: count, maximumRunning: maximumRunning) { old in
            table[Int(old.index)].map(ID.init)
        }
    }

    @Test func keptTasksKeepTheirStateChangedOnesMoveDroppedOnesVanishAddedOnesStartEmpty() {
        // Old tasks a b c d; new ones a c e b: d is removed, e added, b and c move.
        var machine = runningMachine(4)
        machine.schedule(ID(2), after: .zero, now: at(0))
        #expect(drainStarts(&machine) == [2])
        machine.schedule(ID(0), at: at(10), now: at(1))
        machine.schedule(ID(1), at: at(0), now: at(1))
        machine.schedule(ID(3), at: at(4), now: at(1))
        var new = remap(machine, to: 4, [0, 3, 1, nil])
        #expect(new.taskCount == 4)
        #expect(new.phase == .running)
        #expect(new.schedule(of: ID(0)) == .pending(at: at(10)))
        #expect(new.schedule(of: ID(3)) == .ready(due: at(0)))
        #expect(new.next(ID(3)) == at(0))
        #expect(new.schedule(of: ID(1)) == .none)
        #expect(new.isRunning(ID(1)))
        #expect(new.schedule(of: ID(2)) == .none && !new.isRunning(ID(2)), "added: nothing yet")
        #expect(new.runningCount == 1)
        #expect(new.scheduledCount == 2)
        #expect(new.nextDeadline == at(10), "the removed task's deadline is gone")
        #expect(advanceAll(&new, now: at(1)) == ([3], at(10)))
        new.taskFinished(ID(1))
        new.schedule(ID(2), after: .seconds(2), now: at(1))
        #expect(advanceAll(&new, now: at(10)) == ([2, 0], nil))
        #expect(machine.schedule(of: ID(3)) == .pending(at: at(4)), "the old machine is untouched")
    }

    @Test func aTaskReadyAndRunningStartsOnceAfterItsRun() {
        var machine = runningMachine(2)
        machine.schedule(ID(1), after: .zero, now: at(0))
        #expect(drainStarts(&machine) == [1])
        machine.schedule(ID(1), after: .zero, now: at(2))
        var new = remap(machine, to: 3, [nil, 2])
        #expect(new.isRunning(ID(2)))
        #expect(new.schedule(of: ID(2)) == .ready(due: at(2)))
        #expect(new.advance(now: at(3)) == .wait(until: nil), "single flight holds across the reload")
        new.taskFinished(ID(2))
        #expect(new.advance(now: at(3)) == .start(ID(2), due: at(2)))
        #expect(new.advance(now: at(3)) == .wait(until: nil))
    }

    @Test func theStartQueueAndEqualDeadlinesKeepTheirOrder() {
        var machine = runningMachine(6)
        // Ready, in queue order 3 1 0 (1 and 0 due at the same instant, 1 queued first).
        machine.schedule(ID(1), at: at(2), now: at(5))
        machine.schedule(ID(3), at: at(1), now: at(5))
        machine.schedule(ID(0), at: at(2), now: at(5))
        // Pending at one instant, in schedule order 5 2 4.
        machine.schedule(ID(5), at: at(9), now: at(5))
        machine.schedule(ID(2), at: at(9), now: at(5))
        machine.schedule(ID(4), at: at(9), now: at(5))
        // Reversed: old i becomes 5 - i, so an order taken from indices would differ.
        var new = remap(machine, to: 6, [5, 4, 3, 2, 1, 0])
        #expect(advanceAll(&new, now: at(5)) == ([2, 4, 5], at(9)))
        #expect(advanceAll(&new, now: at(9)) == ([0, 3, 1], nil))
    }

    @Test func tasksScheduledAfterTheRemapComeAfterCarriedOnesOfTheSameTime() {
        var machine = runningMachine(2)
        machine.schedule(ID(0), at: at(3), now: at(5))
        var new = remap(machine, to: 2, [1, nil])
        new.schedule(ID(0), at: at(3), now: at(5))
        #expect(drainStarts(&new) == [1, 0])
    }

    @Test func theNewMaximumRunningApplies() {
        var machine = runningMachine(4, maximumRunning: 1)
        for task in 0..<4 { machine.schedule(ID(task), at: at(Int64(task)), now: at(5)) }
        #expect(drainStarts(&machine) == [0])
        var wider = remap(machine, to: 4, maximumRunning: 3, [0, 1, 2, 3])
        #expect(wider.maximumRunning == 3)
        #expect(drainStarts(&wider) == [1, 2])
        var narrower = remap(wider, to: 4, maximumRunning: 2, [0, 1, 2, 3])
        #expect(narrower.runningCount == 3, "runs in flight are not stopped by a lower limit")
        narrower.taskFinished(ID(0))
        #expect(drainStarts(&narrower) == [], "three in flight, two allowed")
        narrower.taskFinished(ID(1))
        #expect(drainStarts(&narrower) == [3])
        var unlimited = remap(narrower, to: 4, maximumRunning: 0, [0, 1, 2, 3])
        unlimited.schedule(ID(0), after: .zero, now: at(6))
        unlimited.schedule(ID(1), after: .zero, now: at(6))
        #expect(drainStarts(&unlimited) == [0, 1])
    }

    @Test func aDroppedRunningTaskNoLongerCounts() {
        var machine = runningMachine(2, maximumRunning: 1)
        machine.schedule(ID(0), after: .zero, now: at(0))
        #expect(drainStarts(&machine) == [0])
        machine.schedule(ID(1), after: .zero, now: at(1))
        #expect(drainStarts(&machine) == [], "the one slot is taken")
        var new = remap(machine, to: 1, maximumRunning: 1, [nil, 0])
        #expect(new.runningCount == 0)
        #expect(new.advance(now: at(1)) == .start(ID(0), due: at(1)))
    }

    @Test func aStoppedMachineStaysStoppedWithItsRunsInFlight() {
        var machine = runningMachine(2)
        machine.schedule(ID(0), after: .zero, now: at(0))
        #expect(drainStarts(&machine) == [0])
        machine.runEnded()
        var new = remap(machine, to: 3, [2, 0])
        #expect(new.phase == .stopped)
        #expect(new.isRunning(ID(2)))
        #expect(new.runningCount == 1)
        #expect(new.advance(now: at(1)) == .wait(until: nil))
        new.taskFinished(ID(2))
        new.runStarted()
        new.schedule(ID(1), after: .zero, now: at(2))
        #expect(new.advance(now: at(2)) == .start(ID(1), due: at(2)))
    }

    @Test func mappingIsAskedOncePerOldTaskInOrder() {
        let machine = runningMachine(3)
        var asked: [Int32] = []
        _ = machine.remapped(taskCount: 1, maximumRunning: 0) { old in
            asked.append(old.index)
            return old.index == 1 ? ID(0) : nil
        }
        #expect(asked == [0, 1, 2])
    }
}
