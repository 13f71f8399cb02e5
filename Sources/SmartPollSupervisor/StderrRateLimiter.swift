/// The rate limit on a task's stderr lines in the log (`log_rate`, `log_burst`): a token bucket
/// that holds at most `burst` lines and refills at `rate` lines a second. A line over the limit
/// is counted, not formatted; the count is reported at most once a second, and at the end of a
/// run.
///
/// One limiter per task, shared by its runs (a task that restarts in a loop cannot log more by
/// restarting); a command hook's run has one of its own. Reference semantics for that reason.
///
/// - Important: Times are CLOCK_MONOTONIC nanoseconds passed in (the loop's `now`), so tests
///   drive it with plain numbers. Not thread-safe: the loop's thread only.
/// - Complexity: O(1) a line, no allocation.
final class StderrRateLimiter {
    /// Lines a second; 0: no limit.
    let rate: Int
    /// Lines the bucket holds; 0: no limit.
    let burst: Int
    /// How often dropped lines are reported at most.
    static let reportInterval: Int64 = 1_000_000_000

    /// Tokens in nanoseconds of refill: a line costs `lineCost`, the bucket holds
    /// `burst * lineCost`. Integers, so that no rounding lets a line through twice.
    private var credit: Int64
    private let lineCost: Int64
    private let capacity: Int64
    private var refilled: Int64
    /// Lines dropped since the last report.
    private(set) var dropped = 0
    /// When the first line of the current count was dropped.
    private var firstDrop: Int64 = 0

    /// A full bucket at `now`.
    init(rate: Int, burst: Int, now: Int64) {
        self.rate = rate
        self.burst = burst
        lineCost = rate > 0 ? max(1, 1_000_000_000 / Int64(rate)) : 0
        let (product, overflow) = Int64(burst).multipliedReportingOverflow(by: lineCost)
        capacity = overflow ? .max : product
        credit = capacity
        refilled = now
    }

    var isUnlimited: Bool { rate == 0 || burst == 0 }

    /// Whether one more line may be logged at `now`; a line that may not is counted as dropped.
    func admit(now: Int64) -> Bool {
        guard !isUnlimited else { return true }
        refill(now)
        if credit >= lineCost {
            credit -= lineCost
            return true
        }
        if dropped == 0 { firstDrop = now }
        dropped += 1
        return false
    }

    private func refill(_ now: Int64) {
        guard now > refilled else { return }
        let (sum, overflow) = credit.addingReportingOverflow(now - refilled)
        credit = overflow ? capacity : min(capacity, sum)
        refilled = now
    }

    /// The number of lines dropped since the last report, when there are some and a report is
    /// due (a second after the first of them was dropped, so at most one report a second; or
    /// `force`: the end of a run); the count starts again.
    func takeReport(now: Int64, force: Bool = false) -> Int? {
        guard dropped > 0, force || now - firstDrop >= StderrRateLimiter.reportInterval else { return nil }
        let count = dropped
        dropped = 0
        return count
    }
}
