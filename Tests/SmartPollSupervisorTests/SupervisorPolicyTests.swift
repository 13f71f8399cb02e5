import SmartPoll
import SmartPollProtocol
import Testing

@testable import SmartPollSupervisor

/// The built-in task hook and the scheduling rules, with plain numbers: no processes, sockets,
/// clocks or sleeps.
@Suite struct SupervisorPolicyTests {
    typealias TaskID = SchedulerStateMachine.TaskID

    /// A random source that always gives the same word: 1 makes every jitter 0, `.max` makes it
    /// its whole bound (0 would loop for ever in the standard library's rejection sampling).
    struct ConstantRandom: RandomNumberGenerator {
        var word: UInt64
        mutating func next() -> UInt64 { word }
    }

    static func at(_ seconds: Double) -> Instant { Instant(nanoseconds: Int64(seconds * 1e9)) }
    static func instant(_ time: Timestamp) -> Instant { Instant(nanoseconds: time.nanosecondsSinceEpoch) }

    static func configuration(_ tasks: [String: TaskConfiguration]) -> SupervisorConfiguration {
        SupervisorConfiguration(file: "test.json", tasks: tasks)
    }

    static func task(_ configure: (inout TaskConfiguration) -> Void = { _ in }) -> TaskConfiguration {
        var task = TaskConfiguration(command: ["true"])
        configure(&task)
        return task
    }

    /// A started policy (the loop running at t = 0) and the id of `name`.
    static func started(_ tasks: [String: TaskConfiguration]) -> SupervisorPolicy {
        var policy = SupervisorPolicy(configuration: configuration(tasks))
        _ = policy.loopStarted(now: at(0))
        return policy
    }

    /// Every task the policy hands out to start at `time`, and the deadline to arm then.
    static func advance(_ policy: inout SupervisorPolicy, at time: Double) -> (starts: [TaskID], deadline: Instant?) {
        var starts: [TaskID] = []
        while true {
            switch policy.advance(now: at(time)) {
            case .start(let task, _): starts.append(task)
            case .wait(let deadline): return (starts, deadline)
            }
        }
    }

    /// Starts `name` at `time` (it must be the only task due) and returns its id.
    static func run(_ name: String, _ policy: inout SupervisorPolicy, at time: Double) -> TaskID {
        let task = policy.task(named: name)!
        #expect(advance(&policy, at: time).starts == [task], "\(name) starts at \(time) s")
        return task
    }

    /// The end of `name`'s run at `time`; `due`: the time the run fell due (by default, `time`).
    static func end(
        _ name: String, _ outcome: SupervisorPolicy.Report.Outcome, _ policy: inout SupervisorPolicy, at time: Double,
        due: Double? = nil, random: UInt64 = 1
    ) -> [SupervisorPolicy.Action] {
        let task = policy.task(named: name)!
        var source = ConstantRandom(word: random)
        let report = SupervisorPolicy.Report(
            task: task, outcome: outcome, configuration: policy.configurations[Int(task.index)], due: at(due ?? time))
        return policy.runEnded(report, now: at(time), instant: instant, random: &source)
    }

    static func next(_ name: String, _ policy: SupervisorPolicy) -> Instant? {
        policy.machine.next(policy.task(named: name)!)
    }

    @Test func aPausedTaskKeepsItsEveryScheduleButStartsOnlyWhenResumed() {
        var policy = Self.started([
            "w": Self.task {
                $0.start = .zero; $0.every = .seconds(10)
            }
        ])
        let task = Self.run("w", &policy, at: 0)
        let pausedNow = policy.pause(task)
        let pausedAgain = policy.pause(task)
        #expect(pausedNow, "it was not paused")
        #expect(!pausedAgain, "pausing twice changes nothing")
        #expect(policy.isPaused(task))
        // The run in flight ends normally, and every still schedules the next one.
        let actions = Self.end("w", .succeeded(changed: false, directives: []), &policy, at: 1)
        #expect(actions == [.scheduleChanged(task, next: Self.at(11))])
        #expect(Self.advance(&policy, at: 11).starts == [], "due, but paused")
        #expect(Self.advance(&policy, at: 30).starts == [])
        #expect(Self.next("w", policy) == Self.at(11), "it stays due at its beat")
        // A reload that changes the task keeps it paused.
        var changed = Self.task {
            $0.start = .zero; $0.every = .seconds(20)
        }
        changed.timeout = .seconds(3)
        _ = policy.reload(Self.configuration(["w": changed, "x": Self.task()]), now: Self.at(31))
        let kept = policy.task(named: "w")!
        #expect(policy.isPaused(kept))
        #expect(!policy.isPaused(policy.task(named: "x")!))
        #expect(Self.advance(&policy, at: 32).starts == [])
        let resumedNow = policy.resume(kept)
        let resumedAgain = policy.resume(kept)
        #expect(resumedNow)
        #expect(!resumedAgain, "resuming twice changes nothing")
        #expect(Self.advance(&policy, at: 33).starts == [kept], "it fell due while paused: it starts at once")
    }

    @Test func pauseIsAllowedWhileTheLoopIsStoppedAndLastsIntoItsNextRun() {
        var policy = SupervisorPolicy(configuration: Self.configuration(["w": Self.task { $0.start = .zero }]))
        let task = policy.task(named: "w")!
        let pausedNow = policy.pause(task)
        #expect(pausedNow)
        _ = policy.loopStarted(now: Self.at(0))
        #expect(Self.advance(&policy, at: 0).starts == [])
        policy.loopEnded()
        #expect(policy.isPaused(task), "the end of the loop's run does not resume it")
    }

    @Test func loopStartSchedulesEveryTaskWithStartAndNothingElse() {
        var policy = SupervisorPolicy(
            configuration: Self.configuration([
                "a": Self.task { $0.start = .seconds(2) }, "b": Self.task(), "c": Self.task { $0.start = .zero },
            ]))
        let actions = policy.loopStarted(now: Self.at(10))
        #expect(
            actions == [
                .scheduleChanged(policy.task(named: "a")!, next: Self.at(12)),
                .scheduleChanged(policy.task(named: "c")!, next: Self.at(10)),
            ])
        #expect(Self.next("a", policy) == Self.at(12))
        #expect(Self.next("b", policy) == nil)
        let (starts, deadline) = Self.advance(&policy, at: 10)
        #expect(starts == [policy.task(named: "c")!])
        #expect(deadline == Self.at(12), "the one timer is armed for a")
    }

    @Test func retryBacksOffExponentiallyUpToTheMaximumAndSuccessResetsIt() {
        var policy = Self.started([
            "w": Self.task {
                $0.start = .zero
                $0.onFailure = .retry
                $0.backoff = .init(initial: .seconds(1), maximum: .seconds(5), factor: 2)
            }
        ])
        var time = 0.0
        for expected in [1.0, 2, 4, 5, 5] {
            _ = Self.run("w", &policy, at: time)
            let actions = Self.end("w", .failed(reason: "exit 1"), &policy, at: time)
            #expect(actions == [.scheduleChanged(policy.task(named: "w")!, next: Self.at(time + expected))])
            #expect(Self.next("w", policy) == Self.at(time + expected), "after a failure at \(time) s")
            time += expected
        }
        #expect(policy.consecutiveFailures == [5])
        _ = Self.run("w", &policy, at: time)
        _ = Self.end("w", .succeeded(changed: false, directives: []), &policy, at: time)
        #expect(policy.consecutiveFailures == [0])
        #expect(Self.next("w", policy) == nil, "no every: a success schedules nothing")
    }

    @Test func retryJitterAddsUpToItsBound() {
        func delay(random: UInt64) -> Instant? {
            var policy = Self.started([
                "w": Self.task {
                    $0.start = .zero
                    $0.onFailure = .retry
                    $0.jitter = .milliseconds(500)
                }
            ])
            _ = Self.run("w", &policy, at: 0)
            _ = Self.end("w", .failed(reason: "exit 1"), &policy, at: 0, random: random)
            return Self.next("w", policy)
        }
        #expect(delay(random: 1) == Self.at(1), "initial backoff 1 s, no jitter")
        #expect(delay(random: .max) == Self.at(1.5), "the whole jitter bound")
        #expect(SupervisorPolicy.backoff(afterFailures: 60, .init()) == .seconds(300), "no overflow: capped at max")
    }

    @Test func maxRetriesEndsTheLoopAfterTheLastRetry() {
        var policy = Self.started([
            "w": Self.task {
                $0.start = .zero
                $0.onFailure = .retry
                $0.maximumRetries = 2
            }
        ])
        var time = 0.0
        for _ in 0..<2 {
            _ = Self.run("w", &policy, at: time)
            _ = Self.end("w", .failed(reason: "task w run 1 exited with status 1"), &policy, at: time)
            time += 10
        }
        _ = Self.run("w", &policy, at: time)
        let actions = Self.end("w", .failed(reason: "task w run 3 exited with status 1"), &policy, at: time)
        #expect(actions == [.endLoop(error: "task w run 3 exited with status 1; gave up after 2 retries")])
    }

    @Test func fatalEndsTheLoopAndContinueReschedulesByEvery() {
        var fatal = Self.started([
            "w": Self.task {
                $0.start = .zero; $0.every = .seconds(10)
            }
        ])
        _ = Self.run("w", &fatal, at: 0)
        #expect(Self.end("w", .failed(reason: "boom"), &fatal, at: 1) == [.endLoop(error: "boom")])
        #expect(Self.next("w", fatal) == nil, "no every after a fatal failure")

        var carryOn = Self.started([
            "w": Self.task {
                $0.start = .zero; $0.every = .seconds(10); $0.onFailure = .continue
            }
        ])
        _ = Self.run("w", &carryOn, at: 0)
        #expect(
            Self.end("w", .failed(reason: "boom"), &carryOn, at: 1) == [
                .scheduleChanged(carryOn.task(named: "w")!, next: Self.at(11))
            ])
        #expect(Self.next("w", carryOn) == Self.at(11), "every counts from the end of the run")
        #expect(carryOn.consecutiveFailures == [0], "continue keeps no retry count")
    }

    @Test func everyAfterSuccessUnlessSomethingElseScheduledTheTask() {
        var policy = Self.started([
            "w": Self.task {
                $0.start = .zero; $0.every = .seconds(10); $0.jitter = .seconds(1)
            }
        ])
        _ = Self.run("w", &policy, at: 0)
        _ = Self.end("w", .succeeded(changed: true, directives: []), &policy, at: 2, random: .max)
        #expect(Self.next("w", policy) == Self.at(13), "every + the whole jitter, from the end")
        _ = Self.run("w", &policy, at: 13)
        let soon = Command.schedule(task: "w", when: .after(.seconds(3)), sooner: false)
        _ = Self.end("w", .succeeded(changed: false, directives: [soon]), &policy, at: 14)
        #expect(Self.next("w", policy) == Self.at(17), "the directive's schedule stands; every does not replace it")
    }

    @Test func cancelledRunAppliesOnlyEvery() {
        var policy = Self.started([
            "w": Self.task {
                $0.start = .zero; $0.every = .seconds(5); $0.onFailure = .retry; $0.onSuccess = ["p"]
            },
            "p": Self.task(),
        ])
        _ = Self.run("w", &policy, at: 0)
        let actions = Self.end("w", .cancelled, &policy, at: 1)
        #expect(actions == [.scheduleChanged(policy.task(named: "w")!, next: Self.at(6))])
        #expect(Self.next("w", policy) == Self.at(6), "every, not the retry backoff")
        #expect(Self.next("p", policy) == nil, "on_success does not fire")
        #expect(policy.consecutiveFailures == [0, 0])
    }

    @Test func onChangeFiresOnlyForAChangedResultAndOnSuccessAlways() {
        var policy = Self.started([
            "w": Self.task {
                $0.start = .zero; $0.onChange = ["publish"]; $0.onSuccess = ["audit"]
            },
            "publish": Self.task(), "audit": Self.task(),
        ])
        _ = Self.run("w", &policy, at: 0)
        let first = Self.end("w", .succeeded(changed: true, directives: []), &policy, at: 1)
        #expect(
            first == [
                .scheduleChanged(policy.task(named: "publish")!, next: Self.at(1)),
                .scheduleChanged(policy.task(named: "audit")!, next: Self.at(1)),
            ])
        #expect(Self.next("publish", policy) == Self.at(1))
        #expect(Self.next("audit", policy) == Self.at(1))

        let starts = Self.advance(&policy, at: 1).starts
        #expect(Set(starts) == [policy.task(named: "publish")!, policy.task(named: "audit")!])
        _ = Self.end("publish", .succeeded(changed: true, directives: []), &policy, at: 1)
        _ = Self.end("audit", .succeeded(changed: true, directives: []), &policy, at: 1)
        _ = policy.schedule(policy.task(named: "w")!, after: .zero, now: Self.at(2))
        _ = Self.run("w", &policy, at: 2)
        let same = Self.end("w", .succeeded(changed: false, directives: []), &policy, at: 3)
        #expect(
            same == [.scheduleChanged(policy.task(named: "audit")!, next: Self.at(3))],
            "an unchanged result triggers no on_change")
        #expect(Self.next("publish", policy) == nil)
    }

    @Test func directivesApplyInOrderOnSuccessOnly() {
        var policy = Self.started(["w": Self.task { $0.start = .zero }, "x": Self.task()])
        let directives: [Command] = [
            .schedule(task: "x", when: .after(.seconds(30)), sooner: false),
            .schedule(task: "x", when: .after(.seconds(20)), sooner: true),
            .schedule(task: "w", when: .at(Timestamp(nanosecondsSinceEpoch: 50_000_000_000)), sooner: false),
        ]
        _ = Self.run("w", &policy, at: 0)
        _ = Self.end("w", .succeeded(changed: false, directives: directives), &policy, at: 1)
        #expect(Self.next("x", policy) == Self.at(21), "sooner of 31 and 21")
        #expect(Self.next("w", policy) == Self.at(50))
        _ = policy.apply(.unschedule(task: "x"), now: Self.at(2), instant: Self.instant)
        #expect(Self.next("x", policy) == nil)
        #expect(policy.apply(.unschedule(task: "nope"), now: Self.at(2), instant: Self.instant) == nil)
    }

    @Test func aLateRunChangesNothingButLetsTheTaskRunAgain() {
        var policy = Self.started([
            "w": Self.task {
                $0.start = .zero; $0.every = .seconds(1)
            }
        ])
        let task = Self.run("w", &policy, at: 0)
        policy.loopEnded()
        policy.lateRunEnded(task)
        #expect(Self.next("w", policy) == nil, "no every from the late run")
        #expect(policy.machine.runningCount == 0)
        _ = policy.loopStarted(now: Self.at(5))
        #expect(Self.advance(&policy, at: 5).starts == [task], "free to start again")
    }

    @Test func reloadKeepsChangesAddsAndRemovesTasks() {
        var policy = Self.started([
            "keep": Self.task { $0.start = .seconds(5) },
            "change": Self.task {
                $0.start = .zero; $0.onFailure = .retry
            },
            "remove": Self.task { $0.start = .zero },
        ])
        #expect(Self.advance(&policy, at: 0).starts.count == 2, "change and remove are running")
        _ = Self.end("change", .failed(reason: "exit 1"), &policy, at: 0)
        #expect(Self.advance(&policy, at: 0.5).starts.isEmpty)
        #expect(policy.consecutiveFailures[Int(policy.task(named: "change")!.index)] == 1)

        let plan = policy.reload(
            Self.configuration([
                "added": Self.task { $0.start = .seconds(3) },
                "change": Self.task {
                    $0.start = .zero; $0.onFailure = .retry; $0.every = .seconds(7)
                },
                "keep": Self.task { $0.start = .seconds(5) },
            ]), now: Self.at(2))
        #expect(plan.added == ["added"])
        #expect(plan.changed == ["change"])
        #expect(plan.removed == ["remove"])
        #expect(plan.newIndex == [1, 2, nil], "old order change, keep, remove; new order added, change, keep")
        #expect(
            plan.actions == [.scheduleChanged(policy.task(named: "added")!, next: Self.at(5))],
            "only the added task's start")
        #expect(policy.names == ["added", "change", "keep"])
        #expect(Self.next("keep", policy) == Self.at(5), "a kept schedule stays")
        #expect(Self.next("change", policy) == Self.at(1), "the backoff's schedule stays")
        #expect(Self.next("added", policy) == Self.at(5))
        #expect(policy.consecutiveFailures == [0, 1, 0], "retry state follows its task")
        #expect(policy.configurations[1].every == .seconds(7), "the new definition")
        #expect(policy.machine.runningCount == 0, "the removed task's run is no longer counted")
    }

    // MARK: every_from

    static let success = SupervisorPolicy.Report.Outcome.succeeded(changed: false, directives: [])

    /// A task run every 1 s from t = 10 s, with `every_from` as given.
    static func beating(_ everyFrom: TaskConfiguration.EveryFrom, jitter: Duration = .zero) -> SupervisorPolicy {
        started([
            "w": task {
                $0.every = .seconds(1)
                $0.start = .seconds(10)
                $0.everyFrom = everyFrom
                $0.jitter = jitter
                $0.onFailure = .continue
            }
        ])
    }

    @Test func everyFromDueKeepsTheGridAndSkipsTheBeatsALongRunMissed() {
        var policy = Self.beating(.due)
        _ = Self.run("w", &policy, at: 10)
        let actions = Self.end("w", Self.success, &policy, at: 10.3, due: 10)
        #expect(actions == [.scheduleChanged(policy.task(named: "w")!, next: Self.at(11))], "not 11.3")
        _ = Self.run("w", &policy, at: 11)
        _ = Self.end("w", Self.success, &policy, at: 13.5, due: 11)
        #expect(Self.next("w", policy) == Self.at(14), "12 and 13 passed during the run: skipped, no burst")
        _ = Self.run("w", &policy, at: 14.01)
        _ = Self.end("w", .failed(reason: "exit 1"), &policy, at: 14.2, due: 14)
        #expect(Self.next("w", policy) == Self.at(15), "a continue failure keeps the grid")
        _ = Self.run("w", &policy, at: 15)
        _ = Self.end("w", .cancelled, &policy, at: 16.5, due: 15)
        #expect(Self.next("w", policy) == Self.at(17), "after a cancel too")
    }

    @Test func everyFromEndCountsFromTheEndOfTheRunAsBefore() {
        var policy = Self.beating(.end)
        #expect(policy.configurations[0].everyFrom == .end)
        _ = Self.run("w", &policy, at: 10)
        _ = Self.end("w", Self.success, &policy, at: 10.3, due: 10)
        #expect(Self.next("w", policy) == Self.at(11.3))
        _ = Self.run("w", &policy, at: 11.3)
        _ = Self.end("w", Self.success, &policy, at: 13.5, due: 11.3)
        #expect(Self.next("w", policy) == Self.at(14.5))
        #expect(TaskConfiguration(command: ["true"]).everyFrom == .end, "the default")
    }

    @Test func everyFromDueAddsJitterToEachBeatWithoutMovingTheGrid() {
        var policy = Self.beating(.due, jitter: .milliseconds(200))
        _ = Self.run("w", &policy, at: 10)
        _ = Self.end("w", Self.success, &policy, at: 10.3, due: 10, random: .max)
        #expect(Self.next("w", policy) == Self.at(11.2), "the beat at 11 plus the whole jitter")
        _ = Self.run("w", &policy, at: 11.2)
        _ = Self.end("w", Self.success, &policy, at: 11.25, due: 11.2, random: .max)
        #expect(Self.next("w", policy) == Self.at(12.2), "12 plus jitter, not 12.4: jitter never accumulates")
        _ = Self.run("w", &policy, at: 12.2)
        _ = Self.end("w", Self.success, &policy, at: 12.3, due: 12.2, random: 1)
        #expect(Self.next("w", policy) == Self.at(13), "no jitter this time: back on the beat")
    }

    @Test func everyFromDueStartsANewGridFromARunSomethingElseScheduled() {
        var policy = Self.beating(.due)
        _ = Self.run("w", &policy, at: 10)
        _ = Self.end("w", Self.success, &policy, at: 10.3, due: 10)
        // `run` (or a directive) moves it off the grid: the grid then follows that run's due time.
        let task = policy.task(named: "w")!
        _ = policy.schedule(task, after: .zero, now: Self.at(10.5))
        _ = Self.run("w", &policy, at: 10.5)
        _ = Self.end("w", Self.success, &policy, at: 10.6, due: 10.5)
        #expect(Self.next("w", policy) == Self.at(11.5))
    }

    @Test func changingEveryFromIsATaskChangeOnReload() {
        var policy = Self.beating(.end)
        var due = Self.task {
            $0.every = .seconds(1)
            $0.start = .seconds(10)
            $0.everyFrom = .due
            $0.onFailure = .continue
        }
        let plan = policy.reload(Self.configuration(["w": due]), now: Self.at(1))
        #expect(plan.changed == ["w"] && plan.added.isEmpty && plan.removed.isEmpty)
        #expect(policy.configurations[0].everyFrom == .due)
        due.everyFrom = .due
        #expect(policy.reload(Self.configuration(["w": due]), now: Self.at(2)).changed.isEmpty)
    }

    @Test func nextBeatIsTheFirstBeatNotBeforeNow() {
        func beat(_ anchor: Double, _ now: Double) -> Instant {
            SupervisorPolicy.nextBeat(after: Self.at(anchor), every: .seconds(1), now: Self.at(now))
        }
        #expect(beat(10, 10.3) == Self.at(11))
        #expect(beat(10, 11) == Self.at(11))
        #expect(
            SupervisorPolicy.nextBeat(
                after: Self.at(10), every: .seconds(1), now: Instant(nanoseconds: 11_000_000_001)) == Self.at(12))
        #expect(beat(10, 13.5) == Self.at(14))
        #expect(beat(10, 14) == Self.at(14))
        #expect(beat(10, 1e6 + 0.5) == Self.at(1e6 + 1))
    }
}
