/// A point on the scheduler's monotonic time line, in nanoseconds from an arbitrary origin
/// chosen by the ``SchedulerClock`` that produced it.
///
/// Instants from different clocks are not comparable in any meaningful way; the scheduler only
/// ever compares instants produced by its own clock (or derived from them with ``advanced(by:)``).
public struct Instant: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// Nanoseconds since the clock's origin.
    public var nanoseconds: Int64

    @inlinable
    public init(nanoseconds: Int64) {
        self.nanoseconds = nanoseconds
    }

    /// The instant `duration` after this one, saturating at the ends of the representable range.
    @inlinable
    public func advanced(by duration: Duration) -> Instant {
        let (sum, overflow) = nanoseconds.addingReportingOverflow(duration.nanosecondsClamped)
        if overflow { return Instant(nanoseconds: duration < .zero ? .min : .max) }
        return Instant(nanoseconds: sum)
    }

    /// The signed duration from this instant to `other`.
    @inlinable
    public func duration(to other: Instant) -> Duration {
        .nanoseconds(other.nanoseconds &- nanoseconds)
    }

    @inlinable
    public static func < (lhs: Instant, rhs: Instant) -> Bool {
        lhs.nanoseconds < rhs.nanoseconds
    }

    public var description: String {
        "Instant(\(nanoseconds)ns)"
    }
}

extension Duration {
    /// This duration in whole nanoseconds (rounded toward zero), clamped to `Int64`'s range.
    ///
    /// - Complexity: two 64-bit divisions by a constant, which the compiler turns into
    ///   multiplications; `dividingFullWidth` calls the runtime's 128-bit division (__udivti3)
    ///   and Swift's generic `Int128` division (as in `components`) costs more still, and this
    ///   sits on every scheduling call.
    @inlinable
    public var nanosecondsClamped: Int64 {
        let attoseconds = self.attoseconds
        let magnitude = attoseconds.magnitude
        let high = UInt64(truncatingIfNeeded: magnitude >> 64)
        let low = UInt64(truncatingIfNeeded: magnitude)
        let divisor: UInt64 = 1_000_000_000
        guard high < divisor else { return attoseconds < 0 ? .min : .max }
        // (high * 2^64 + low) / divisor in two steps of 32 bits: with high < divisor (< 2^30),
        // each dividend fits in 64 bits and each partial quotient in 32.
        let upper = high << 32 | low >> 32
        let lower = (upper % divisor) << 32 | (low & 0xFFFF_FFFF)
        let quotient = (upper / divisor) << 32 | (lower / divisor)
        if attoseconds < 0 {
            return quotient > UInt64(Int64.max) ? .min : -Int64(quotient)
        }
        return quotient > UInt64(Int64.max) ? .max : Int64(quotient)
    }
}
