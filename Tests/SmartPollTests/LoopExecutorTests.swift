import Testing

@testable import SmartPoll

/// The scheduler's executor: deferred wake-ups must never leave a job waiting on a worker that
/// does not come back to the queue.
///
/// Serialized: two of these tests each hold one of the executor's threads (a spin without
/// suspending) until a job on another thread runs; run side by side on a 2-core machine they
/// held both threads and each waited 10 s for the other (seen on this machine).
@Suite(.serialized, .timeLimit(.minutes(1)))
struct LoopExecutorTests {
    /// Polls `condition` without suspending (the point is to keep this worker busy) until it
    /// holds or 10 s pass.
    static func spin(until condition: () -> Bool) -> Bool {
        let deadline = ContinuousClock.now.advanced(by: .seconds(10))
        while !condition() {
            if ContinuousClock.now > deadline { return false }
        }
        return true
    }

    @Test func twoRunsStartedTogetherRunInParallel() async throws {
        // Each stage one waits, without suspending, until both have started: with the start of
        // the first one deferred and nobody woken for the second, this would never end.
        let started = Counter()
        let finished = Counter()
        let body = SchedulerTask {
            _ = started.increment()
            let both = LoopExecutorTests.spin { started.current >= 2 }
            return { _ in
                #expect(both, "the other run started while this one was busy")
                if finished.increment() == 2 { throw Done() }
            }
        }
        let scheduler = try Scheduler(
            tasks: ["a": body, "b": body],
            runHooks: [
                RunHook { control in
                    control.schedule("a", after: .zero)
                    control.schedule("b", after: .zero)
                }
            ],
            clock: ManualClock()
        )
        await #expect(throws: Done.self) { try await scheduler.run() }
        #expect(finished.current == 2)
    }

    @Test func aDeferredJobIsFlushedWhenTheJobThatQueuedItGoesOn() async {
        let executor = LoopExecutor.shared
        // Every worker waiting, so that nothing but the flush can wake one for the queued job.
        #expect(Self.spin { executor.idleCount == executor.threadCount })
        let ran = Counter()
        let seen = await Task(executorPreference: executor) { @Sendable () -> Bool in
            executor.deferringWakes {
                _ = Task(executorPreference: executor) { @Sendable in _ = ran.increment() }
            }
            // This job does not suspend: another worker must take the queued one.
            executor.flushDeferred()
            return LoopExecutorTests.spin { ran.current > 0 }
        }.value
        #expect(seen)
    }

    @Test func aDeferredJobRunsWhenTheJobThatQueuedItEnds() async {
        let executor = LoopExecutor.shared
        let journal = Journal()
        Task(executorPreference: executor) { @Sendable in
            executor.deferringWakes {
                _ = Task(executorPreference: executor) { @Sendable in journal.record("ran") }
            }
        }
        await journal.wait(for: "ran")
        #expect(journal.count("ran") == 1)
    }
}
