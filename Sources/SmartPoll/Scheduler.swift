import Synchronization

/// The in-process driver of ``SchedulerStateMachine``: a control loop that runs a fixed set of
/// named tasks as Swift tasks, with run hooks, event hooks and the scheduling API of
/// ``SchedulerControl`` available inside every hook.
///
/// ```swift
/// let scheduler = try Scheduler(
///     tasks: [
///         "poll": SchedulerTask {
///             let value = try await fetch()          // in the background
///             return { control in                    // serialized with the loop
///                 control.scheduleSooner("poll", after: .seconds(10))
///                 if value != last { control.schedule("publish", after: .zero) }
///             }
///         },
///         "publish": SchedulerTask { try await publish(); return nil },
///     ],
///     runHooks: [RunHook { $0.schedule("poll", after: .zero) }]
/// )
/// try await scheduler.run()   // returns only by throwing: an error, or CancellationError
/// ```
///
/// - Important: One loop iteration costs O(log n) per task it touches: deadlines live in one
///   min-heap and a single timer is armed for the earliest one, never one timer per task.
public final class Scheduler: Sendable {
    /// The task names, sorted; a task's index here is its `TaskID`.
    public let taskNames: [String]
    private let bodies: [@Sendable () async throws -> TaskHook?]
    private let runHooks: [RunHook]
    private let eventHooks: [EventHook]
    private let clock: any SchedulerClock
    private let mailbox: Mailbox
    let pool: RunPool
    private let loop: SchedulerStorage
    private let exclusive = Atomic<Bool>(false)

    /// - Throws: ``SchedulerError/Code/invalidConfiguration`` when `tasks` is empty.
    public init(
        tasks: [String: SchedulerTask],
        runHooks: [RunHook] = [],
        eventHooks: [EventHook] = [],
        clock: any SchedulerClock = SystemClock()
    ) throws(SchedulerError) {
        guard !tasks.isEmpty else {
            throw SchedulerError(code: .invalidConfiguration, message: "a scheduler needs at least one task")
        }
        taskNames = tasks.keys.sorted()
        bodies = taskNames.map { tasks[$0]!.body }
        loop = SchedulerStorage(taskCount: taskNames.count, taskIndex: TaskNameTable(names: taskNames))
        self.runHooks = runHooks
        self.eventHooks = eventHooks
        self.clock = clock
        mailbox = Mailbox()
        pool = RunPool(mailbox: mailbox, threads: LoopExecutor.shared.threadCount)
        LoopExecutor.shared.register(pool)
    }

    deinit {
        mailbox.close()
        _ = pool.cancelRuns()
        pool.close()
        LoopExecutor.shared.unregister(pool)
    }

    /// The handle of the task named `name`, or nil if there is no such task.
    public func handle(for name: String) -> TaskHandle? {
        loop.taskIndex.index(of: name).map { TaskHandle(id: SchedulerStateMachine.TaskID($0)) }
    }

    /// Runs the loop until a task, a hook or an event source throws (that error is rethrown) or
    /// the calling task is cancelled (`CancellationError`). It never returns normally.
    ///
    /// Before the run hooks are called, it waits until every task of the previous run has
    /// finished. When the run ends, every schedule is cleared and the tasks in flight are
    /// cancelled but not awaited; their results are dropped.
    ///
    /// - Throws: ``SchedulerError/Code/alreadyRunning`` if another `run()` is in progress.
    public func run() async throws {
        let claimed = exclusive.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing)
        guard claimed.exchanged else {
            throw SchedulerError(
                code: .alreadyRunning,
                message: "the scheduler's loop is already running; a second run() was refused")
        }
        defer { exclusive.store(false, ordering: .releasing) }
        // The loop, the hooks and the runs on the scheduler's own executor (LoopExecutor says why).
        let mailbox = self.mailbox
        mailbox.resetCancellation()
        try await withTaskExecutorPreference(LoopExecutor.shared) {
            try await withTaskCancellationHandler {
                try await runClaimed()
            } onCancel: {
                mailbox.cancelReceiver()
            }
        }
    }

    // runClaimed, iterate and handle run where run() runs (nonisolated(nonsending)): an await of a
    // plain nonisolated async function checks the task's executor preference on the way in and
    // out, which takes the task's status-record lock (some 200 instructions a check).
    private nonisolated(nonsending) func runClaimed() async throws {
        let loop = self.loop
        if loop.pumps == nil {
            loop.pumps = eventHooks.enumerated().map { index, hook in hook.pump(mailbox, index) }
        }

        // Tasks of the previous run must be gone before the run hooks see the task set.
        while loop.machine.runningCount > 0 {
            loop.batch.removeAll(keepingCapacity: true)
            loop.cursor = 0
            guard await mailbox.receive(into: &loop.batch) else { throw CancellationError() }
            for message in loop.batch { absorb(message) }
            loop.batch.removeAll(keepingCapacity: true)
        }
        try Task.checkCancellation()

        loop.generation &+= 1
        loop.machine.runStarted()
        let control = SchedulerControl(loop: loop, clock: clock)
        do {
            for hook in runHooks {
                control.hookStarts()
                try await hook.body(control)
            }
            loop.batch = loop.deferred + loop.batch
            loop.deferred.removeAll()
            loop.cursor = 0
            try await iterate(control)
        } catch {
            endRun()
            throw error
        }
    }

    private nonisolated(nonsending) func iterate(_ control: SchedulerControl) async throws {
        let loop = self.loop
        while true {
            while loop.cursor < loop.batch.count {
                let message = loop.takeNextMessage()
                try await handle(message, control)
            }
            loop.batch.removeAll(keepingCapacity: true)
            loop.cursor = 0
            try Task.checkCancellation()

            let now = clock.now
            steps: while true {
                switch loop.machine.advance(now: now) {
                case .start(let task, _):
                    start(task)
                case .wait(let deadline):
                    if let deadline { armTimer(deadline) }
                    break steps
                }
            }
            guard await mailbox.receive(into: &loop.batch) else { throw CancellationError() }
            // Runs started above, if the loop went on without waiting, need another worker.
            LoopExecutor.shared.flushDeferred()
        }
    }

    private nonisolated(nonsending) func handle(_ message: Mailbox.Message, _ control: SchedulerControl) async throws {
        let loop = self.loop
        control.hookStarts()
        // Passed to a hook the loop awaits, and used by nothing else meanwhile (hooks run one at
        // a time, serialized with the loop): no race, whatever isolation the hook runs in.
        nonisolated(unsafe) let control = control
        switch message {
        case .taskFinished(let task, let generation, let hook, let error):
            defer { loop.machine.taskFinished(task) }
            guard generation == loop.generation else { return }
            if let error { throw error }
            if let hook { try await hook(control) }
        case .timer(let token):
            if token == loop.timerToken {
                loop.armedDeadline = nil
                loop.timer = nil
            }
        case .event(let hook, let value, let delivered):
            defer { delivered.resume() }
            try await eventHooks[hook].handle(value, control)
        case .eventSourceFinished(let hook):
            try await eventHooks[hook].finish?(control)
        case .eventSourceFailed(_, let error), .timerFailed(let error):
            throw error
        case .needWorker:
            if pool.workerStartStillWanted() { startWorker() }
        }
    }

    /// Accounts for a message outside a run (``SchedulerStorage/absorb(_:)``); a worker asked
    /// for is no longer needed (the run's end took its queued runs back).
    private func absorb(_ message: Mailbox.Message) {
        if case .needWorker = message {
            if pool.workerStartStillWanted() { startWorker() }
            return
        }
        loop.absorb(message)
    }

    /// Starts a run of `task` on a worker of the pool (``RunPool``). Both hand-offs of a run are
    /// deferred (LoopExecutor): the loop waits for its mailbox after starting runs, and a run's
    /// post is the last thing its worker does before it parks.
    private func start(_ task: SchedulerStateMachine.TaskID) {
        let run = RunPool.Run(task: task, generation: loop.generation)
        LoopExecutor.shared.deferringWakes {
            switch pool.submit(run) {
            case .handed(let worker, let run):
                worker.resume(returning: run)
            case .queued(let startWorker):
                if startWorker { self.startWorker() }
            }
        }
    }

    /// A new worker, made by the loop's Swift task (so it inherits its task-local values).
    private func startWorker() {
        let bodies = self.bodies
        let mailbox = self.mailbox
        let executor = LoopExecutor.shared
        pool.start(executor: executor) { run in
            var hook: TaskHook?
            var failure: (any Error)?
            do {
                hook = try await bodies[Int(run.task.index)]()
            } catch {
                failure = error
            }
            executor.deferringWakes {
                mailbox.post(.taskFinished(run.task, generation: run.generation, hook: hook, error: failure))
            }
        }
    }

    /// Keeps one timer armed for the earliest deadline. An armed timer that is earlier than
    /// needed is left alone (it wakes the loop once, harmlessly); only a sooner deadline re-arms.
    private func armTimer(_ deadline: Instant) {
        let loop = self.loop
        if let armed = loop.armedDeadline, armed <= deadline { return }
        loop.timer?.cancel()
        loop.timerToken &+= 1
        loop.armedDeadline = deadline
        let token = loop.timerToken
        let clock = self.clock
        let mailbox = self.mailbox
        loop.timer = Task {
            do {
                try await clock.sleep(until: deadline)
            } catch {
                // Cancelled: re-armed or the run ended. Anything else ends the run, rather than
                // leaving every later deadline waiting on a timer that never fires.
                if !Task.isCancelled { mailbox.post(.timerFailed(error)) }
                return
            }
            mailbox.post(.timer(token: token))
        }
    }

    /// Ends the current run: schedules cleared, tasks in flight cancelled (their results will be
    /// late, so dropped), the timer disarmed, unhandled messages accounted for.
    private func endRun() {
        let loop = self.loop
        loop.machine.runEnded()
        loop.generation &+= 1
        loop.timer?.cancel()
        loop.timer = nil
        loop.armedDeadline = nil
        // Runs still queued never start: accounted for as finished.
        for task in pool.cancelRuns() {
            loop.machine.taskFinished(task)
        }
        let rest = loop.batch[loop.cursor...]
        loop.batch.removeAll(keepingCapacity: true)
        loop.cursor = 0
        for message in rest {
            absorb(message)
        }
    }
}
