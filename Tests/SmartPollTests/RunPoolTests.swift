import Synchronization
import Testing

@testable import SmartPoll

/// Runs on long-lived workers (RunPool): few workers for many runs that do not suspend, and
/// still one concurrent stage one per task when they do.
@Suite(.timeLimit(.minutes(1)))
struct RunPoolTests {
    /// Set once the scheduler exists, read by its hooks. Weak: the pool holds the hooks (through
    /// its queued runs), the hooks hold this box, so a strong reference here made a cycle that
    /// LeakSanitizer reported when runs were still queued at the end (CI, ASan).
    final class PoolBox: @unchecked Sendable {
        weak var pool: RunPool?
    }

    @Test func manyReadyTasksShareAFewWorkers() async throws {
        let count = 5_000
        let names = (0..<count).map { "t\($0)" }
        let hooks = Counter()
        let mostAlive = Mutex(0)
        let box = PoolBox()
        var tasks: [String: SchedulerTask] = [:]
        for name in names {
            tasks[name] = SchedulerTask {
                { control in
                    let alive = box.pool?.counts.alive ?? 0
                    mostAlive.withLock { $0 = max($0, alive) }
                    if hooks.increment() == 3 * count { throw Done() }
                    control.schedule(name, after: .zero)
                }
            }
        }
        let scheduler = try Scheduler(
            tasks: tasks,
            runHooks: [RunHook { control in for name in names { control.schedule(name, after: .zero) } }],
            clock: ManualClock())
        box.pool = scheduler.pool
        await #expect(throws: Done.self) { try await scheduler.run() }
        #expect(hooks.current == 3 * count)
        // A Swift task a run would have had thousands alive at once; a worker more appears only
        // when an executor thread is idle with runs queued (a handful here; the bound leaves room
        // for a loaded machine, where threads idle more often, and still fails for a task a run).
        let bound = 64
        let most = mostAlive.withLock { $0 }
        #expect(most >= 1 && most <= bound, "workers alive at most \(most), bound \(bound)")
    }

    @Test func suspendedStageOnesStillAllRunConcurrently() async throws {
        // Every stage one waits for a gate that opens only once all of them have started: with a
        // bounded pool that waits for a busy worker, this would never end.
        let count = 50
        let started = Counter()
        let gate = Gate()
        let finished = Counter()
        var tasks: [String: SchedulerTask] = [:]
        for index in 0..<count {
            tasks["t\(index)"] = SchedulerTask {
                if started.increment() == count { gate.open() }
                await gate.wait()
                return { _ in if finished.increment() == count { throw Done() } }
            }
        }
        let scheduler = try Scheduler(
            tasks: tasks,
            runHooks: [RunHook { control in for index in 0..<count { control.schedule("t\(index)", after: .zero) } }],
            clock: ManualClock())
        await #expect(throws: Done.self) { try await scheduler.run() }
        #expect(started.current == count)
        #expect(finished.current == count)
    }

    @Test func queuedRunsOfAnEndedRunNeverStartAndAreAccountedFor() async throws {
        // Workers busy (their stage ones wait for a gate), other runs perhaps queued; the run
        // ends; the next run starts only once the busy ones finished, and sees every task idle.
        let count = 20
        let journal = Journal()
        let started = Counter()
        let gate = Gate()
        let runs = Counter()
        var tasks: [String: SchedulerTask] = [:]
        for index in 0..<count {
            tasks["t\(index)"] = SchedulerTask {
                _ = started.increment()
                journal.record("started")
                if runs.current == 1 { await gate.wait() }
                return nil
            }
        }
        let scheduler = try Scheduler(
            tasks: tasks,
            runHooks: [
                RunHook { control in
                    if runs.increment() == 2 {
                        for index in 0..<count { #expect(!control.isRunning("t\(index)")) }
                        throw Done()
                    }
                    for index in 0..<count { control.schedule("t\(index)", after: .zero) }
                }
            ],
            clock: ManualClock())
        let first = Task { try await scheduler.run() }
        // Some stage ones started and are stuck at the gate (others may be queued).
        await journal.wait(for: "started")
        first.cancel()
        await #expect(throws: CancellationError.self) { try await first.value }
        gate.open()
        // The second run's hooks run once every run of the first finished or was taken back.
        await #expect(throws: Done.self) { try await scheduler.run() }
        #expect(runs.current == 2)
        #expect(started.current <= count)
    }

    @Test func aCancelledWorkerNeverTakesAnotherRun() async throws {
        // The pool alone: a worker executing a run when the loop's run ends is cancelled, and
        // the next run, submitted at once, must not start on it (it would start cancelled).
        let pool = RunPool(mailbox: Mailbox(), threads: 2)
        let gate = Gate()
        let journal = Journal()
        let execute: RunPool.Execute = { run in
            journal.record("run \(run.generation) cancelled \(Task.isCancelled)")
            if run.generation == 1 { await gate.wait() }
            journal.record("run \(run.generation) ended cancelled \(Task.isCancelled)")
        }
        func submit(_ generation: UInt64) {
            switch pool.submit(RunPool.Run(task: SchedulerStateMachine.TaskID(0), generation: generation)) {
            case .handed(let worker, let run): worker.resume(returning: run)
            case .queued(let startWorker): if startWorker { pool.start(executor: .shared, execute) }
            }
        }
        submit(1)
        await journal.wait(for: "run 1 cancelled false")
        #expect(pool.cancelRuns().isEmpty, "nothing was queued")
        gate.open()
        await journal.wait(for: "run 1 ended cancelled true")
        submit(2)
        await journal.wait(for: "run 2 ended cancelled false")
        #expect(journal.count("run 2 cancelled false") == 1)
        pool.close()
    }
}
