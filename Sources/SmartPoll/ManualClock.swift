import Synchronization

/// A clock that moves only when told to: for tests of code built on ``Scheduler``, so that they
/// never sleep for real.
///
/// Sleepers whose deadline is reached by ``advance(by:)`` or ``advance(to:)`` are resumed in
/// deadline order; a sleep for a deadline that has already passed returns at once.
public final class ManualClock: SchedulerClock {
    private struct Sleeper {
        var id: UInt64
        var deadline: Instant
        var continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var now: Instant
        var nextID: UInt64 = 0
        var sleepers: [Sleeper] = []
        var unregistered: Set<UInt64> = []
        var cancelled: Set<UInt64> = []
    }

    private let state: Mutex<State>

    public init(now: Instant = Instant(nanoseconds: 0)) {
        state = Mutex(State(now: now))
    }

    public var now: Instant {
        state.withLock { $0.now }
    }

    /// The number of tasks currently sleeping on this clock.
    public var sleeperCount: Int {
        state.withLock { $0.sleepers.count }
    }

    /// The earliest deadline anyone sleeps until, if any.
    public var nextSleeperDeadline: Instant? {
        state.withLock { $0.sleepers.map(\.deadline).min() }
    }

    public func sleep(until deadline: Instant) async throws {
        let id: UInt64? = state.withLock { state in
            if deadline <= state.now { return nil }
            state.nextID += 1
            state.unregistered.insert(state.nextID)
            return state.nextID
        }
        guard let id else { return }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                enum Outcome { case registered, due, cancelled }
                let outcome: Outcome = state.withLock { state in
                    state.unregistered.remove(id)
                    if state.cancelled.remove(id) != nil { return .cancelled }
                    if deadline <= state.now { return .due }
                    state.sleepers.append(Sleeper(id: id, deadline: deadline, continuation: continuation))
                    return .registered
                }
                switch outcome {
                case .registered: break
                case .due: continuation.resume()
                case .cancelled: continuation.resume(throwing: CancellationError())
                }
            }
        } onCancel: {
            let sleeper: Sleeper? = state.withLock { state in
                if let index = state.sleepers.firstIndex(where: { $0.id == id }) {
                    return state.sleepers.remove(at: index)
                }
                // Cancelled between taking an id and registering: the registration sees this.
                if state.unregistered.contains(id) { state.cancelled.insert(id) }
                return nil
            }
            sleeper?.continuation.resume(throwing: CancellationError())
        }
    }

    /// Moves the clock forward by `duration` and wakes every sleeper whose deadline is reached.
    public func advance(by duration: Duration) {
        advance(to: now.advanced(by: duration))
    }

    /// Moves the clock to `instant` (never backwards) and wakes every sleeper whose deadline is
    /// reached.
    public func advance(to instant: Instant) {
        let woken: [Sleeper] = state.withLock { state in
            if instant > state.now { state.now = instant }
            let now = state.now
            let due = state.sleepers.filter { $0.deadline <= now }
            state.sleepers.removeAll { $0.deadline <= now }
            return due.sorted { $0.deadline < $1.deadline }
        }
        for sleeper in woken {
            sleeper.continuation.resume()
        }
    }
}
