/// The time source of a ``Scheduler``: a monotonic `now` and a way to sleep until an instant.
///
/// Inject ``ManualClock`` in tests so that nothing waits on real time.
public protocol SchedulerClock: Sendable {
    /// The current instant. Never decreases.
    var now: Instant { get }
    /// Suspends until `now >= deadline`, or throws `CancellationError` when the calling task is
    /// cancelled first. Returns at once for a deadline that has passed.
    func sleep(until deadline: Instant) async throws
}

/// The real monotonic clock, Swift's `ContinuousClock`, with its origin at the clock's creation.
/// `now` and `sleep` read the same clock, so a sleep never ends before `now` reaches its deadline
/// (two different kernel clocks would drift apart across a suspend of the host).
public struct SystemClock: SchedulerClock {
    private let origin: ContinuousClock.Instant

    public init() {
        origin = ContinuousClock.now
    }

    public var now: Instant {
        Instant(nanoseconds: origin.duration(to: ContinuousClock.now).nanosecondsClamped)
    }

    public func sleep(until deadline: Instant) async throws {
        try await Task.sleep(
            until: origin.advanced(by: .nanoseconds(deadline.nanoseconds)),
            tolerance: .zero,
            clock: .continuous
        )
    }
}
