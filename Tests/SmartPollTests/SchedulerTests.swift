import Testing

@testable import SmartPoll

@Suite(.timeLimit(.minutes(1)))
struct SchedulerTests {
    @Test func independentTasksEachRunAnExactNumberOfTimes() async throws {
        let clock = ManualClock()
        let targets = ["a": 3, "b": 5, "c": 2]
        let intervals: [String: Duration] = ["a": .seconds(1), "b": .seconds(2), "c": .seconds(3)]
        let counters = targets.mapValues { _ in Counter() }
        let total = Counter()
        var tasks: [String: SchedulerTask] = [:]
        for name in targets.keys {
            tasks[name] = SchedulerTask {
                { control in
                    let count = counters[name]!.increment()
                    #expect(control.isRunning(name), "a run includes its task hook")
                    if count < targets[name]! {
                        // The test's driver moves the clock concurrently, so bound `next`.
                        let before = control.now
                        control.schedule(name, after: intervals[name]!)
                        let next = try #require(control.next(name))
                        #expect(next >= before.advanced(by: intervals[name]!))
                        #expect(next <= control.now.advanced(by: intervals[name]!))
                    }
                    if total.increment() == targets.values.reduce(0, +) { throw Done() }
                }
            }
        }
        let scheduler = try Scheduler(
            tasks: tasks,
            runHooks: [RunHook { control in for name in targets.keys { control.schedule(name, after: .zero) } }],
            clock: clock
        )
        let ending = await runToCompletion(scheduler, clock: clock)
        #expect(ending as? Done == Done())
        for (name, target) in targets {
            #expect(counters[name]!.current == target, "task \(name)")
        }
    }

    @Test func selfReschedulingWithZeroDelayNeedsNoTimer() async throws {
        let runs = Counter()
        let scheduler = try Scheduler(
            tasks: [
                "spin": SchedulerTask {
                    { control in
                        if runs.increment() == 1_000 { throw Done() }
                        control.schedule("spin", after: .zero)
                    }
                }
            ],
            runHooks: [RunHook { $0.schedule("spin", after: .zero) }],
            clock: ManualClock()
        )
        await #expect(throws: Done.self) { try await scheduler.run() }
        #expect(runs.current == 1_000)
    }

    @Test func eventHookStartsTasks() async throws {
        let (events, feed) = AsyncStream.makeStream(of: Int.self)
        let journal = Journal()
        let lastValue = Counter()
        let scheduler = try Scheduler(
            tasks: [
                "worker": SchedulerTask {
                    journal.record("work")
                    return { _ in
                        journal.record("worked")
                        if journal.count("worked") == 3 { throw Done() }
                    }
                }
            ],
            eventHooks: [
                EventHook(events) { value, control in
                    journal.record("event \(value)")
                    lastValue.increment()
                    control.schedule("worker", after: .zero)
                }
            ],
            clock: ManualClock()
        )
        let runner = Task { try await scheduler.run() }
        for value in 1...3 {
            feed.yield(value)
            await journal.wait(for: "worked", count: value)
        }
        await #expect(throws: Done.self) { try await runner.value }
        #expect(
            journal.entries == [
                "event 1", "work", "worked", "event 2", "work", "worked", "event 3", "work", "worked",
            ])
    }

    @Test func blockedTaskDelaysTheNextRunAndItsLateResultIsDropped() async throws {
        let journal = Journal()
        let gate = Gate()
        let runHookCalls = Counter()
        let firstRun = Counter()
        let scheduler = try Scheduler(
            tasks: [
                "slow": SchedulerTask {
                    let attempt = firstRun.increment()
                    journal.record("slow started \(attempt)")
                    if attempt == 1 {
                        await gate.wait()  // ignores cancellation, like a stuck request
                        journal.record("slow returned \(attempt)")
                        return { _ in journal.record("late hook ran") }
                    }
                    return { _ in throw Done() }
                }
            ],
            runHooks: [
                RunHook { control in
                    runHookCalls.increment()
                    #expect(control.next("slow") == nil, "a new run starts with no schedules")
                    control.schedule("slow", after: .zero)
                }
            ],
            clock: ManualClock()
        )
        let first = Task { try await scheduler.run() }
        await journal.wait(for: "slow started 1")
        first.cancel()
        await #expect(throws: CancellationError.self) { try await first.value }

        let second = Task { try await scheduler.run() }
        for _ in 0..<200 { await Task.yield() }
        #expect(runHookCalls.current == 1, "the run hooks wait for the previous run's task")
        gate.open()
        await #expect(throws: Done.self) { try await second.value }
        #expect(runHookCalls.current == 2)
        #expect(journal.count("late hook ran") == 0, "a late result is dropped")
        #expect(journal.entries == ["slow started 1", "slow returned 1", "slow started 2"])
    }

    @Test func runningTaskIsCancelledWhenTheRunEnds() async throws {
        let journal = Journal()
        let scheduler = try Scheduler(
            tasks: [
                "sleeper": SchedulerTask {
                    journal.record("sleeping")
                    do {
                        try await Task.sleep(for: .seconds(3600))
                    } catch is CancellationError {
                        journal.record("cancelled")
                    }
                    return nil
                }
            ],
            runHooks: [RunHook { $0.schedule("sleeper", after: .zero) }],
            eventHooks: [],
            clock: ManualClock()
        )
        let runner = Task { try await scheduler.run() }
        await journal.wait(for: "sleeping")
        runner.cancel()
        await #expect(throws: CancellationError.self) { try await runner.value }
        await journal.wait(for: "cancelled")
        #expect(journal.count("cancelled") == 1)
    }

    @Test func stageOneErrorEndsTheRun() async throws {
        let scheduler = try Scheduler(
            tasks: ["bad": SchedulerTask { throw Done(tag: "stage one") }],
            runHooks: [RunHook { $0.schedule("bad", after: .zero) }],
            clock: ManualClock()
        )
        await #expect(throws: Done(tag: "stage one")) { try await scheduler.run() }
    }

    @Test func taskHookErrorEndsTheRun() async throws {
        let scheduler = try Scheduler(
            tasks: ["bad": SchedulerTask { { _ in throw Done(tag: "task hook") } }],
            runHooks: [RunHook { $0.schedule("bad", after: .zero) }],
            clock: ManualClock()
        )
        await #expect(throws: Done(tag: "task hook")) { try await scheduler.run() }
    }

    @Test func runHookErrorEndsTheRunAndClearsItsTimers() async throws {
        let attempt = Counter()
        let seen = Journal()
        let scheduler = try Scheduler(
            tasks: [
                "a": SchedulerTask {
                    seen.record("a ran"); return nil
                }
            ],
            runHooks: [
                RunHook { control in
                    seen.record("next a: \(control.next("a").map { "\($0.nanoseconds)" } ?? "none")")
                    control.schedule("a", after: .seconds(10))
                },
                RunHook { _ in throw Done(tag: "run hook \(attempt.increment())") },
            ],
            clock: ManualClock()
        )
        await #expect(throws: Done(tag: "run hook 1")) { try await scheduler.run() }
        await #expect(throws: Done(tag: "run hook 2")) { try await scheduler.run() }
        #expect(seen.entries == ["next a: none", "next a: none"])
    }

    @Test func eventHookErrorEndsTheRun() async throws {
        let (events, feed) = AsyncStream.makeStream(of: String.self)
        let scheduler = try Scheduler(
            tasks: ["idle": SchedulerTask { nil }],
            eventHooks: [EventHook(events) { value, _ in throw Done(tag: value) }],
            clock: ManualClock()
        )
        feed.yield("boom")
        await #expect(throws: Done(tag: "boom")) { try await scheduler.run() }
    }

    @Test func failingEventSourceEndsTheRun() async throws {
        let (events, feed) = AsyncThrowingStream.makeStream(of: Int.self)
        let scheduler = try Scheduler(
            tasks: ["idle": SchedulerTask { nil }],
            eventHooks: [EventHook(events) { _, _ in }],
            clock: ManualClock()
        )
        feed.finish(throwing: Done(tag: "source"))
        await #expect(throws: Done(tag: "source")) { try await scheduler.run() }
    }

    @Test func finishedEventSourceIsReportedOnceAfterItsLastValue() async throws {
        let (events, feed) = AsyncStream.makeStream(of: Int.self)
        let journal = Journal()
        let scheduler = try Scheduler(
            tasks: ["after": SchedulerTask { { _ in throw Done(tag: "after") } }],
            eventHooks: [
                EventHook(events) { value, _ in
                    journal.record("event \(value)")
                } onFinish: { control in
                    journal.record("finished")
                    control.schedule("after", after: .zero)
                }
            ],
            clock: ManualClock()
        )
        feed.yield(1)
        feed.yield(2)
        feed.finish()
        await #expect(throws: Done(tag: "after")) { try await scheduler.run() }
        #expect(journal.entries == ["event 1", "event 2", "finished"])
    }

    @Test func eventSourceFinishingBetweenRunsIsReportedInTheNextRunAfterItsRunHooks() async throws {
        let (events, feed) = AsyncStream.makeStream(of: String.self)
        let journal = Journal()
        let runs = Counter()
        let scheduler = try Scheduler(
            tasks: ["idle": SchedulerTask { nil }],
            runHooks: [RunHook { _ in journal.record("run hook \(runs.increment())") }],
            eventHooks: [
                EventHook(events) { value, _ in
                    journal.record("event \(value)")
                    throw Done(tag: value)
                } onFinish: { _ in
                    journal.record("finished")
                    throw Done(tag: "finished")
                }
            ],
            clock: ManualClock()
        )
        feed.yield("stop")
        await #expect(throws: Done(tag: "stop")) { try await scheduler.run() }
        feed.finish()
        await #expect(throws: Done(tag: "finished")) { try await scheduler.run() }
        #expect(journal.entries == ["run hook 1", "event stop", "run hook 2", "finished"])
    }

    @Test func failingEventSourceIsNotReportedAsFinished() async throws {
        let (events, feed) = AsyncThrowingStream.makeStream(of: Int.self)
        let journal = Journal()
        let scheduler = try Scheduler(
            tasks: ["idle": SchedulerTask { nil }],
            eventHooks: [
                EventHook(events) { _, _ in
                } onFinish: { _ in
                    journal.record("finished")
                }
            ],
            clock: ManualClock()
        )
        feed.finish(throwing: Done(tag: "source"))
        await #expect(throws: Done(tag: "source")) { try await scheduler.run() }
        #expect(journal.entries == [])
    }

    @Test func controlReplacesAReadyTasksScheduleAsTheGoLibraryDoes() async throws {
        let scheduler = try Scheduler(
            tasks: ["t": SchedulerTask { { _ in throw Done() } }],
            runHooks: [
                RunHook { control in
                    control.schedule("t", after: .zero)
                    control.schedule("t", at: at(90))
                    #expect(control.next("t") == at(90), "ready, due at the given past time")
                    control.scheduleSooner("t", at: at(80))
                    #expect(control.next("t") == at(80), "ready, due at the sooner time")
                    control.scheduleSooner("t", after: .seconds(1))
                    control.schedule("t", after: .zero)
                    #expect(control.next("t") == at(80), "neither is sooner than a ready task's due time")
                    control.schedule("t", at: at(110))
                    #expect(control.next("t") == at(110))
                    #expect(control.stopTimer("t") == false, "a future time made it wait again")
                    control.schedule("t", at: at(100))
                }
            ],
            clock: ManualClock(now: at(100))
        )
        await #expect(throws: Done.self) { try await scheduler.run() }
    }

    @Test func taskWithoutHookRunsOnceAndTheLoopGoesOn() async throws {
        let clock = ManualClock()
        let quiet = Counter()
        let scheduler = try Scheduler(
            tasks: [
                "quiet": SchedulerTask {
                    quiet.increment(); return nil
                },
                "end": SchedulerTask { { _ in throw Done() } },
            ],
            runHooks: [
                RunHook { control in
                    control.schedule("quiet", after: .zero)
                    control.schedule("end", after: .seconds(5))
                }
            ],
            clock: clock
        )
        let ending = await runToCompletion(scheduler, clock: clock)
        #expect(ending as? Done == Done())
        #expect(quiet.current == 1)
        #expect(clock.now == Instant(nanoseconds: 5_000_000_000), "the clock only moved to the one deadline")
    }

    @Test func secondConcurrentRunIsRefused() async throws {
        let journal = Journal()
        let scheduler = try Scheduler(
            tasks: [
                "t": SchedulerTask {
                    journal.record("started"); return nil
                }
            ],
            runHooks: [RunHook { $0.schedule("t", after: .zero) }],
            clock: ManualClock()
        )
        let first = Task { try await scheduler.run() }
        await journal.wait(for: "started")
        await #expect(throws: SchedulerError.self) { try await scheduler.run() }
        do {
            try await scheduler.run()
        } catch let error as SchedulerError {
            #expect(error.code == .alreadyRunning)
            #expect(error.message.contains("already running"))
        }
        first.cancel()
        await #expect(throws: CancellationError.self) { try await first.value }
    }

    @Test func taskDueWhileRunningStartsOnceAfterItsHook() async throws {
        let (events, feed) = AsyncStream.makeStream(of: Int.self)
        let journal = Journal()
        let gate = Gate()
        let starts = Counter()
        let scheduler = try Scheduler(
            tasks: [
                "A": SchedulerTask {
                    let run = starts.increment()
                    journal.record("start \(run)")
                    if run == 1 { await gate.wait() }
                    return { control in
                        journal.record("hook \(run)")
                        if run == 2 { throw Done() }
                    }
                }
            ],
            runHooks: [RunHook { $0.schedule("A", after: .zero) }],
            eventHooks: [
                EventHook(events) { value, control in
                    #expect(control.isRunning("A"))
                    control.schedule("A", after: .zero)
                    journal.record("event \(value)")
                }
            ],
            clock: ManualClock()
        )
        let runner = Task { try await scheduler.run() }
        await journal.wait(for: "start 1")
        for value in 1...3 { feed.yield(value) }
        await journal.wait(for: "event 3")
        gate.open()
        await #expect(throws: Done.self) { try await runner.value }
        #expect(starts.current == 2)
        #expect(journal.entries == ["start 1", "event 1", "event 2", "event 3", "hook 1", "start 2", "hook 2"])
    }

    @Test func tasksRunConcurrentlyWithEachOther() async throws {
        let journal = Journal()
        let body: @Sendable (String, String) -> SchedulerTask = { me, other in
            SchedulerTask {
                journal.record(me)
                await journal.wait(for: other)  // deadlocks unless both run at once
                return { _ in
                    journal.record("\(me) done")
                    if journal.count("x done") + journal.count("y done") == 2 { throw Done() }
                }
            }
        }
        let scheduler = try Scheduler(
            tasks: ["x": body("x", "y"), "y": body("y", "x")],
            runHooks: [
                RunHook { control in
                    control.schedule("x", after: .zero)
                    control.schedule("y", after: .zero)
                }
            ],
            clock: ManualClock()
        )
        await #expect(throws: Done.self) { try await scheduler.run() }
    }

    @Test func endOfRunDisarmsTheTimer() async throws {
        let clock = ManualClock()
        let journal = Journal()
        let scheduler = try Scheduler(
            tasks: [
                "later": SchedulerTask {
                    journal.record("later ran"); return nil
                },
                "fail": SchedulerTask {
                    await journal.wait(for: "timer armed")
                    throw Done(tag: "fail")
                },
            ],
            runHooks: [
                RunHook { control in
                    control.schedule("later", after: .seconds(60))
                    control.schedule("fail", after: .zero)
                }
            ],
            clock: clock
        )
        let runner = Task { try await scheduler.run() }
        while clock.sleeperCount == 0 { await Task.yield() }
        #expect(clock.nextSleeperDeadline == Instant(nanoseconds: 60_000_000_000), "one timer, for the one deadline")
        journal.record("timer armed")
        await #expect(throws: Done(tag: "fail")) { try await runner.value }
        #expect(clock.sleeperCount == 0, "the run's end cancels its timer")
        clock.advance(by: .seconds(120))
        #expect(journal.count("later ran") == 0)
    }

    @Test func eventArrivingBetweenRunsIsHandledInTheNextRunAfterItsRunHooks() async throws {
        let (events, feed) = AsyncStream.makeStream(of: String.self)
        let journal = Journal()
        let runs = Counter()
        let scheduler = try Scheduler(
            tasks: ["idle": SchedulerTask { nil }],
            runHooks: [RunHook { _ in journal.record("run hook \(runs.increment())") }],
            eventHooks: [
                EventHook(events) { value, _ in
                    journal.record("event \(value)")
                    if value == "stop" || value == "between" { throw Done(tag: value) }
                }
            ],
            clock: ManualClock()
        )
        feed.yield("stop")
        await #expect(throws: Done(tag: "stop")) { try await scheduler.run() }
        feed.yield("between")
        await #expect(throws: Done(tag: "between")) { try await scheduler.run() }
        #expect(journal.entries == ["run hook 1", "event stop", "run hook 2", "event between"])
    }

    @Test func manualClockWakesSleepersInOrderAndHonoursCancellation() async throws {
        let clock = ManualClock()
        let journal = Journal()
        let early = Task {
            try await clock.sleep(until: Instant(nanoseconds: 10)); journal.record("early")
        }
        let late = Task {
            try await clock.sleep(until: Instant(nanoseconds: 20)); journal.record("late")
        }
        let cancelled = Task { try await clock.sleep(until: Instant(nanoseconds: 15)) }
        while clock.sleeperCount < 3 { await Task.yield() }
        cancelled.cancel()
        await #expect(throws: CancellationError.self) { try await cancelled.value }
        #expect(clock.sleeperCount == 2)
        clock.advance(to: Instant(nanoseconds: 10))
        try await early.value
        #expect(journal.entries == ["early"])
        clock.advance(by: .nanoseconds(10))
        try await late.value
        #expect(journal.entries == ["early", "late"])
        try await clock.sleep(until: Instant(nanoseconds: 5))  // in the past: returns at once
    }

    @Test func emptyTaskSetIsRejected() {
        #expect(throws: SchedulerError.self) { try Scheduler(tasks: [:]) }
    }

    @Test func realClockFiresATimer() async throws {
        let clock = SystemClock()
        let scheduler = try Scheduler(
            tasks: ["t": SchedulerTask { { _ in throw Done() } }],
            runHooks: [RunHook { $0.schedule("t", after: .milliseconds(20)) }],
            clock: clock
        )
        let started = clock.now
        await #expect(throws: Done.self) { try await scheduler.run() }
        #expect(started.duration(to: clock.now) >= .milliseconds(20))
    }
}
