import Synchronization

@testable import SmartPoll

/// An ordered log of what happened, which a test can await entry by entry: no sleeping.
final class Journal: Sendable {
    private struct State {
        var entries: [String] = []
        var waiters: [(entry: String, count: Int, continuation: CheckedContinuation<Void, Never>)] = []
    }
    private let state = Mutex(State())

    func record(_ entry: String) {
        let ready = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.entries.append(entry)
            let total = state.entries.filter { $0 == entry }.count
            let ready = state.waiters.filter { $0.entry == entry && $0.count <= total }
            state.waiters.removeAll { $0.entry == entry && $0.count <= total }
            return ready.map(\.continuation)
        }
        for continuation in ready { continuation.resume() }
    }

    /// Returns once `entry` has been recorded `count` times.
    func wait(for entry: String, count: Int = 1) async {
        await withCheckedContinuation { continuation in
            let done = state.withLock { state -> Bool in
                if state.entries.filter({ $0 == entry }).count >= count { return true }
                state.waiters.append((entry, count, continuation))
                return false
            }
            if done { continuation.resume() }
        }
    }

    var entries: [String] { state.withLock { $0.entries } }

    func count(_ entry: String) -> Int {
        state.withLock { $0.entries.filter { $0 == entry }.count }
    }
}

/// Closed until `open()`; `wait()` returns once it is open.
final class Gate: Sendable {
    private let state = Mutex<(open: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    func open() {
        let waiters = state.withLock { state in
            state.open = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    func wait() async {
        await withCheckedContinuation { continuation in
            let isOpen = state.withLock { state in
                if state.open { return true }
                state.waiters.append(continuation)
                return false
            }
            if isOpen { continuation.resume() }
        }
    }
}

/// A counter shared between tasks and hooks.
final class Counter: Sendable {
    private let value = Atomic<Int>(0)
    @discardableResult
    func increment() -> Int { value.add(1, ordering: .relaxed).newValue }
    var current: Int { value.load(ordering: .relaxed) }
}

struct Done: Error, Equatable {
    var tag = ""
}

/// Runs `scheduler` in a task, advancing `clock` to the earliest sleeper's deadline whenever
/// someone sleeps on it, until the run ends; returns how it ended.
func runToCompletion(_ scheduler: Scheduler, clock: ManualClock) async -> any Error {
    let finished = Atomic<Bool>(false)
    let runner = Task {
        defer { finished.store(true, ordering: .releasing) }
        try await scheduler.run()
    }
    while !finished.load(ordering: .acquiring) {
        if let deadline = clock.nextSleeperDeadline {
            clock.advance(to: deadline)
        }
        await Task.yield()
    }
    do {
        try await runner.value
        return Done(tag: "run() returned normally, which it must never do")
    } catch {
        return error
    }
}

// MARK: The state machine, with plain numbers

typealias ID = SchedulerStateMachine.TaskID

/// The instant `seconds` after the origin.
func at(_ seconds: Int64) -> Instant { Instant(nanoseconds: seconds * 1_000_000_000) }

/// A machine in a running loop with `count` tasks.
func runningMachine(_ count: Int = 3, maximumRunning: Int = 0) -> SchedulerStateMachine {
    var machine = SchedulerStateMachine(taskCount: count, maximumRunning: maximumRunning)
    machine.runStarted()
    return machine
}

/// Starts everything that may start, by ``SchedulerStateMachine/nextStart()``.
func drainStarts(_ machine: inout SchedulerStateMachine) -> [Int32] {
    var started: [Int32] = []
    while let (task, _) = machine.nextStart() { started.append(task.index) }
    return started
}

/// Steps ``SchedulerStateMachine/advance(now:)`` until it answers `.wait`: what it started, in
/// order, and the deadline it asked to arm.
func advanceAll(_ machine: inout SchedulerStateMachine, now: Instant) -> (started: [Int32], deadline: Instant?) {
    var started: [Int32] = []
    while true {
        switch machine.advance(now: now) {
        case .start(let task, _): started.append(task.index)
        case .wait(let deadline): return (started, deadline)
        }
    }
}
