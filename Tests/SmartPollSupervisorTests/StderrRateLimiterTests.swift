import Testing

@testable import SmartPollSupervisor

@Suite struct StderrRateLimiterTests {
    private let second: Int64 = 1_000_000_000

    @Test func aFullBucketLetsTheBurstThroughThenTheRate() {
        let limiter = StderrRateLimiter(rate: 10, burst: 5, now: 0)
        let first = (0..<8).filter { _ in limiter.admit(now: 0) }.count
        #expect(first == 5, "the burst, no more")
        #expect(limiter.dropped == 3)
        // 10 a second: one line every 100 ms.
        #expect(!limiter.admit(now: second / 10 - 1))
        #expect(limiter.admit(now: second / 10))
        #expect(!limiter.admit(now: second / 10))
        // A long quiet fills the bucket up to the burst, never beyond.
        let later = (0..<20).filter { _ in limiter.admit(now: 100 * second) }.count
        #expect(later == 5)
    }

    @Test func overTimeNoMoreThanBurstPlusRateTimesElapsedGetThrough() {
        let limiter = StderrRateLimiter(rate: 1_000, burst: 10_000, now: 0)
        var admitted = 0
        // 100,000 lines a second for 3 s, 1 ms apart.
        for millisecond in 0..<3_000 {
            for _ in 0..<100 where limiter.admit(now: Int64(millisecond) * 1_000_000) { admitted += 1 }
        }
        #expect(admitted <= 10_000 + 3 * 1_000 && admitted >= 10_000 + 2 * 1_000, "\(admitted)")
    }

    @Test func dropsAreReportedAtMostOnceASecondAndAtTheEnd() {
        let limiter = StderrRateLimiter(rate: 1, burst: 1, now: 0)
        #expect(limiter.admit(now: 0))
        #expect(limiter.takeReport(now: 0) == nil, "nothing dropped yet")
        #expect(!limiter.admit(now: 10))
        #expect(!limiter.admit(now: 20))
        #expect(limiter.takeReport(now: 20) == nil, "not a second since the first drop")
        #expect(limiter.takeReport(now: second + 10) == 2)
        #expect(limiter.takeReport(now: 5 * second) == nil, "the count starts again")
        #expect(limiter.admit(now: 5 * second), "the bucket refilled")
        #expect(!limiter.admit(now: 5 * second + 1))
        #expect(limiter.takeReport(now: 5 * second + 600_000_000) == nil)
        #expect(limiter.takeReport(now: 5 * second + 600_000_000, force: true) == 1, "the end of a run")
    }

    @Test func zeroRateOrZeroBurstMeansNoLimit() {
        for (rate, burst) in [(0, 10), (10, 0), (0, 0)] {
            let limiter = StderrRateLimiter(rate: rate, burst: burst, now: 0)
            #expect((0..<100_000).allSatisfy { _ in limiter.admit(now: 0) })
            #expect(limiter.takeReport(now: 10 * second, force: true) == nil)
        }
    }

    @Test func hugeValuesDoNotOverflow() {
        let limiter = StderrRateLimiter(rate: 1_000_000_000, burst: 1_000_000_000, now: 0)
        #expect(limiter.admit(now: .max / 2))
        #expect(limiter.admit(now: .max))
    }
}
