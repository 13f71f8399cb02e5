import Glibc
import Testing

@testable import SmartPollSupervisor

/// A run's life as a value: timeouts, teardown and the end, with no process and no clock.
@Suite struct RunLifecycleTests {
    static let teardown = Teardown(signal: SIGINT, grace: .seconds(2))

    @Test func aRunThatExitsByItselfKillsWhatIsLeftAndFinishes() {
        var life = RunLifecycle(timeout: .seconds(30), teardown: Self.teardown)
        #expect(life.started() == [.armTimeout(.seconds(30))])
        #expect(life.exited() == [.signal(SIGKILL), .finish], "leftovers of the run are killed before it is reaped")
        #expect(life.state == .ended)
        #expect(life.timeoutElapsed() == [], "a timer that fires late changes nothing")
        #expect(life.terminate(.cancelled) == [])
        #expect(!life.cancelled && !life.timedOut)
        #expect(life.succeeded(status: .exited(0), directiveError: nil))
        #expect(life.failureReason(status: .exited(3), directiveError: nil) == "exited with status 3")
        #expect(life.failureReason(status: .signaled(SIGSEGV), directiveError: nil) == "killed by SIGSEGV")
        #expect(life.failureReason(status: .exited(0), directiveError: "bad directive") == "bad directive")
    }

    @Test func aTimeoutSendsTheKillSignalThenSIGKILLAfterTheGrace() {
        var life = RunLifecycle(timeout: .seconds(1), teardown: Self.teardown)
        #expect(life.timeoutElapsed() == [.signal(SIGINT), .armKill(.seconds(2))])
        #expect(life.state == .terminating)
        #expect(life.terminate(.stopped) == [], "already being ended: no second signal")
        #expect(life.graceElapsed() == [.signal(SIGKILL)])
        #expect(life.state == .killed)
        #expect(life.graceElapsed() == [])
        #expect(life.exited() == [.signal(SIGKILL), .finish])
        #expect(life.timedOut)
        #expect(!life.succeeded(status: .exited(0), directiveError: nil), "a timed-out run fails even if it exits 0")
        #expect(life.failureReason(status: .signaled(SIGKILL), directiveError: nil) == "timed out")
    }

    @Test func aProcessThatHonoursTheSignalNeverGetsSIGKILL() {
        var life = RunLifecycle(timeout: nil, teardown: Self.teardown)
        #expect(life.started() == [])
        #expect(life.terminate(.stopped) == [.signal(SIGINT), .armKill(.seconds(2))])
        #expect(life.exited() == [.signal(SIGKILL), .finish])
        #expect(life.graceElapsed() == [], "the kill timer that fires after the end does nothing")
        #expect(!life.cancelled, "stop is not cancel")
        #expect(life.failureReason(status: .signaled(SIGINT), directiveError: nil) == "killed by SIGINT")
    }

    @Test func cancelAndRemovalMakeTheRunCancelledEvenDuringATimeout() {
        var cancelled = RunLifecycle(timeout: nil, teardown: Self.teardown)
        #expect(cancelled.terminate(.cancelled) == [.signal(SIGINT), .armKill(.seconds(2))])
        #expect(cancelled.cancelled)
        #expect(cancelled.failureReason(status: .exited(0), directiveError: nil) == "cancelled")

        var removed = RunLifecycle(timeout: nil, teardown: Self.teardown)
        _ = removed.terminate(.removed)
        #expect(removed.cancelled)

        var late = RunLifecycle(timeout: .seconds(1), teardown: Self.teardown)
        _ = late.timeoutElapsed()
        #expect(late.terminate(.cancelled) == [], "the timeout's teardown goes on")
        #expect(late.cancelled && late.timedOut)
        #expect(late.failureReason(status: .exited(0), directiveError: nil) == "timed out")
    }

    @Test func aLostLeadershipKillsAtOnceEvenARunInItsGrace() {
        var life = RunLifecycle(timeout: nil, teardown: Self.teardown)
        #expect(life.terminate(.fenced) == [.signal(SIGKILL)], "no teardown signal, no grace")
        #expect(life.state == .killed && life.stopped && !life.cancelled)
        #expect(life.terminate(.fenced) == [], "killed once")

        var ending = RunLifecycle(timeout: nil, teardown: Self.teardown)
        _ = ending.terminate(.stopped)
        #expect(ending.terminate(.fenced) == [.signal(SIGKILL)], "the grace of a stop is cut short")
        #expect(ending.graceElapsed() == [], "the kill timer then does nothing")
        #expect(ending.exited() == [.signal(SIGKILL), .finish])
        #expect(ending.terminate(.fenced) == [], "an exited run is left alone")
    }

    @Test func aContainedRunIsOverOnlyOnceItsCgroupIsEmpty() {
        var life = RunLifecycle(timeout: .seconds(1), teardown: Self.teardown, isContained: true)
        _ = life.timeoutElapsed()
        #expect(life.exited() == [.signal(SIGKILL), .awaitEmpty], "what is left is killed; the end waits")
        #expect(life.state == .draining && life.hasExited)
        #expect(life.terminate(.cancelled) == [], "nothing is left to end")
        #expect(!life.cancelled, "a cancel after the exit changes nothing")
        #expect(life.graceElapsed() == [])
        #expect(life.exited() == [])
        #expect(life.emptied() == [.finish])
        #expect(life.state == .ended)
        #expect(life.emptied() == [], "the run finishes once")
    }

    @Test func anUncontainedRunFinishesWithoutWaitingForACgroup() {
        var life = RunLifecycle(timeout: nil, teardown: Self.teardown)
        #expect(life.exited() == [.signal(SIGKILL), .finish])
        #expect(life.emptied() == [])
    }

    @Test func aHookGetsTodaysFiveSecondsOfGraceUnlessConfigured() {
        #expect(HookConfiguration.CommandHook(command: ["true"]).killGrace == .seconds(5))
        #expect(Teardown(grace: .seconds(1)).signal == SIGTERM, "a hook is sent SIGTERM")
    }
}
