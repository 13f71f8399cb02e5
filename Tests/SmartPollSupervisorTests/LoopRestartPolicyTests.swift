import SmartPoll
import Testing

@testable import SmartPollSupervisor

@Suite struct LoopRestartPolicyTests {
    private func at(_ seconds: Int64) -> Instant { Instant(nanoseconds: seconds * 1_000_000_000) }

    @Test func theDelayDoublesUpToMaxAndComesBackAfterALongGoodRun() {
        var policy = LoopRestartPolicy(.init(after: .seconds(10), maximum: .seconds(60)))
        policy.loopStarted(now: at(0))
        do {
            let value = policy.loopFailed(now: at(1))
            #expect(value == at(11))
        }
        #expect(policy.restartAt == at(11))
        do {
            let due = policy.restartDue(now: at(10))
            #expect(!due, "not before its time")
        }
        do {
            let value = policy.restartDue(now: at(11))
            #expect(value)
        }
        #expect(policy.restartAt == nil)
        policy.loopStarted(now: at(11))
        do {
            let value = policy.loopFailed(now: at(12))
            #expect(value == at(32), "20 s")
        }
        policy.loopStarted(now: at(32))
        do {
            let value = policy.loopFailed(now: at(33))
            #expect(value == at(73), "40 s")
        }
        policy.loopStarted(now: at(73))
        do {
            let value = policy.loopFailed(now: at(74))
            #expect(value == at(134), "capped at 60 s")
        }
        policy.loopStarted(now: at(134))
        do {
            let value = policy.loopFailed(now: at(135))
            #expect(value == at(195), "still 60 s")
        }
        // A run that went max (60 s) without failing: back to after.
        policy.loopStarted(now: at(195))
        do {
            let value = policy.loopFailed(now: at(255))
            #expect(value == at(265))
        }
    }

    @Test func anOperatorsStopOrStartCancelsThePendingRestart() {
        var policy = LoopRestartPolicy(.init(after: .seconds(1), maximum: .seconds(8)))
        policy.loopStarted(now: at(0))
        _ = policy.loopFailed(now: at(1))
        policy.loopStopped()
        #expect(policy.restartAt == nil)
        do {
            let due = policy.restartDue(now: at(100))
            #expect(!due)
        }
        _ = policy.loopFailed(now: at(101))
        policy.loopStarted(now: at(101))
        #expect(policy.restartAt == nil, "started by hand")
    }

    @Test func withoutThePolicyAFailedLoopWaits() {
        var policy = LoopRestartPolicy(nil)
        policy.loopStarted(now: at(0))
        do {
            let value = policy.loopFailed(now: at(1))
            #expect(value == nil)
        }
        policy.reconfigure(.init(after: .seconds(2), maximum: .seconds(4)))
        policy.loopStarted(now: at(2))
        do {
            let value = policy.loopFailed(now: at(3))
            #expect(value == at(5), "a reload brought the policy")
        }
        policy.reconfigure(nil)
        #expect(policy.restartAt == nil, "and a reload took it away")
    }
}
