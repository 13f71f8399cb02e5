#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

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

/// The real monotonic clock: `CLOCK_MONOTONIC` for `now`, and Swift's `ContinuousClock` to
/// sleep, with both origins taken together at creation.
public struct SystemClock: SchedulerClock {
    private let origin: ContinuousClock.Instant
    private let originNanoseconds: Int64

    public init() {
        originNanoseconds = SystemClock.monotonicNanoseconds()
        origin = ContinuousClock.now
    }

    public var now: Instant {
        Instant(nanoseconds: SystemClock.monotonicNanoseconds() &- originNanoseconds)
    }

    public func sleep(until deadline: Instant) async throws {
        try await Task.sleep(
            until: origin.advanced(by: .nanoseconds(deadline.nanoseconds)),
            tolerance: .zero,
            clock: .continuous
        )
    }

    @inline(__always)
    private static func monotonicNanoseconds() -> Int64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return Int64(time.tv_sec) &* 1_000_000_000 &+ Int64(time.tv_nsec)
    }
}
