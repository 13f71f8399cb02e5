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
    /// - Complexity: one 128-by-64-bit division instruction; Swift's generic `Int128` division
    ///   (as in `components`) costs several times more, and this sits on every scheduling call.
    @inlinable
    public var nanosecondsClamped: Int64 {
        let attoseconds = self.attoseconds
        let magnitude = attoseconds.magnitude
        let high = UInt64(truncatingIfNeeded: magnitude >> 64)
        let low = UInt64(truncatingIfNeeded: magnitude)
        let divisor: UInt64 = 1_000_000_000
        guard high < divisor else { return attoseconds < 0 ? .min : .max }
        let quotient = divisor.dividingFullWidth((high, low)).quotient
        if attoseconds < 0 {
            return quotient > UInt64(Int64.max) ? .min : -Int64(quotient)
        }
        return quotient > UInt64(Int64.max) ? .max : Int64(quotient)
    }
}
