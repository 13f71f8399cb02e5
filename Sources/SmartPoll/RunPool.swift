import Synchronization

/// The workers that execute one scheduler's runs (stage one, then the post of its result): a
/// few long-lived Swift tasks fed by a queue, instead of a Swift task a run.
///
/// A Swift task costs its creation, its allocator's slab and its completion on every run (some
/// 4,000 instructions of a 15,000-instruction one-task cycle), and when 100,000 tasks fall due
/// together, 100,000 Swift tasks with their frames are alive at once, and the allocator (its
/// consolidation, page faults) dominates the cycle. Here a run is two words in a queue.
///
/// How many workers: a run is handed to a parked worker if there is one; otherwise it is queued,
/// and the loop starts a new worker while fewer workers than the executor has threads are busy.
/// A busy worker whose stage one is suspended (awaiting I/O, a sleep, another actor) holds no
/// thread, so when one of ``LoopExecutor``'s threads finds nothing to do while runs are queued
/// (``LoopExecutor/needsWorker``), it asks the loop (a ``Mailbox/Message/needWorker``
/// message) for one more worker: stage ones still all run concurrently, however many suspend,
/// and the loop creates the workers, so they inherit what its Swift task carries (task-local
/// values, priority) as the runs did. A worker that finds the queue empty parks, up to one more
/// than the executor has threads; the others end.
///
/// Cancellation: a run of an ended generation must see `Task.isCancelled`, and a Swift task's
/// cancellation cannot be undone, so ``cancelRuns()`` cancels the workers executing runs (they
/// end after their run) and takes the queued runs back (they never start; the loop accounts for
/// them as finished).
final class RunPool: @unchecked Sendable {
    typealias Execute = nonisolated(nonsending) @Sendable (Run) async -> Void

    struct Run {
        let task: SchedulerStateMachine.TaskID
        let generation: UInt64
    }

    /// A worker's state, guarded by the pool's lock (`task` is the loop's only).
    final class Worker: @unchecked Sendable {
        var current: Run?
        /// Set by ``cancelRuns()`` with the lock held, when it picks this worker to cancel: the
        /// worker then ends after its run even if it read `Task.isCancelled` before the cancel
        /// (else it could park, cancelled, and start a later run already cancelled).
        var cancelled = false
        var task: Task<Void, Never>?
    }

    private struct State {
        var queue = RunQueue()
        var parked: [(UnsafeContinuation<Run?, Never>, Worker)] = []
        var workers: [ObjectIdentifier: Worker] = [:]
        /// Workers executing a run.
        var busy = 0
        /// Workers the loop was asked for (or created) that have not taken their first run yet.
        var starting = 0
        var closed = false
    }

    private let state = Mutex(State())
    let mailbox: Mailbox
    private let maxBusyStart: Int
    private let maxParked: Int
    /// Set while runs are queued: ``LoopExecutor`` then watches for idle threads.
    let waitingRuns = Atomic<Int>(0)

    init(mailbox: Mailbox, threads: Int) {
        self.mailbox = mailbox
        maxBusyStart = threads
        maxParked = threads + 1
    }

    enum Submission {
        case handed(UnsafeContinuation<Run?, Never>, Run)
        case queued(startWorker: Bool)
    }

    /// The loop starts `run`: a parked worker takes it, or it waits in the queue; when
    /// `startWorker`, the loop starts a worker (``start(_:)``).
    func submit(_ run: Run) -> Submission {
        state.withLock { state in
            if let (continuation, worker) = state.parked.popLast() {
                worker.current = run
                state.busy += 1
                return .handed(continuation, run)
            }
            state.queue.append(run)
            waitingRuns.store(state.queue.count, ordering: .relaxed)
            if state.busy + state.starting < maxBusyStart {
                state.starting += 1
                return .queued(startWorker: true)
            }
            return .queued(startWorker: false)
        }
    }

    /// An idle executor thread saw queued runs: true if the loop should start a worker (none is
    /// starting already). The caller posts ``Mailbox/Message/needWorker``.
    func claimWorkerStart() -> Bool {
        state.withLock { state in
            guard !state.closed, state.queue.count > 0, state.starting == 0 else { return false }
            state.starting += 1
            return true
        }
    }

    /// The loop handles a `needWorker` message: whether the start claimed is still wanted.
    func workerStartStillWanted() -> Bool {
        state.withLock { state in
            if state.queue.count > 0 && !state.closed { return true }
            state.starting -= 1
            return false
        }
    }

    /// Called by the loop (its Swift task), so the worker inherits its task-local values and
    /// priority; `execute` runs one run, on the worker's executor without a hop
    /// (nonisolated(nonsending): no executor-preference check on the way in and out). A
    /// worker's post of its run's result defers the loop's wake-up (``LoopExecutor``): if it
    /// then goes on with another run instead of parking, it flushes it.
    func start(executor: LoopExecutor, _ execute: @escaping Execute) {
        let worker = Worker()
        state.withLock { $0.workers[ObjectIdentifier(worker)] = worker }
        worker.task = Task(executorPreference: executor) { [self] in
            var next = takeFirst(worker)
            while true {
                if next == nil {
                    next = await withUnsafeContinuation { continuation in park(worker, continuation) }
                }
                guard let run = next else { return }
                await execute(run)
                guard let following = finished(worker, cancelled: Task.isCancelled) else { return }
                next = following
                if next != nil { executor.flushDeferred() }
            }
        }
    }

    private func takeFirst(_ worker: Worker) -> Run? {
        state.withLock { state in
            state.starting -= 1
            return take(worker, &state)
        }
    }

    private func take(_ worker: Worker, _ state: inout State) -> Run? {
        guard let run = state.queue.popFirst() else { return nil }
        waitingRuns.store(state.queue.count, ordering: .relaxed)
        worker.current = run
        state.busy += 1
        return run
    }

    /// After a run: `.some(run)` the next queued run, `.some(nil)` none (the worker parks), or
    /// nil: the worker was cancelled and ends.
    private func finished(_ worker: Worker, cancelled: Bool) -> Run?? {
        state.withLock { state in
            worker.current = nil
            state.busy -= 1
            if cancelled || worker.cancelled {
                state.workers[ObjectIdentifier(worker)] = nil
                return nil
            }
            return .some(take(worker, &state))
        }
    }

    private func park(_ worker: Worker, _ continuation: UnsafeContinuation<Run?, Never>) {
        let run: Run?? = state.withLock { state in
            if let run = take(worker, &state) { return run }
            if state.closed || state.parked.count >= maxParked {
                state.workers[ObjectIdentifier(worker)] = nil
                return .some(nil)
            }
            state.parked.append((continuation, worker))
            return nil
        }
        if let run { continuation.resume(returning: run) }
    }

    /// The run of the loop ended: every worker executing a run of `generation` or before is
    /// cancelled, and the queued runs are taken back; returns their tasks.
    func cancelRuns() -> [SchedulerStateMachine.TaskID] {
        let (tasks, workers) = state.withLock { state in
            var tasks: [SchedulerStateMachine.TaskID] = []
            while let run = state.queue.popFirst() { tasks.append(run.task) }
            waitingRuns.store(0, ordering: .relaxed)
            let busy = state.workers.values.filter { $0.current != nil }
            for worker in busy { worker.cancelled = true }
            return (tasks, busy)
        }
        for worker in workers { worker.task?.cancel() }
        return tasks
    }

    /// The scheduler is gone: parked workers end, and busy ones after their run.
    func close() {
        let parked = state.withLock { state in
            state.closed = true
            defer { state.parked = [] }
            return state.parked
        }
        for (continuation, worker) in parked {
            state.withLock { _ = $0.workers.removeValue(forKey: ObjectIdentifier(worker)) }
            continuation.resume(returning: nil)
        }
    }

    /// For tests: workers alive, parked.
    var counts: (alive: Int, parked: Int) {
        state.withLock { ($0.workers.count, $0.parked.count) }
    }
}

/// A first-in first-out ring of runs that grows by doubling.
private struct RunQueue {
    private var slots: [RunPool.Run?] = Array(repeating: nil, count: 16)
    private var head = 0
    private(set) var count = 0

    mutating func append(_ run: RunPool.Run) {
        if count == slots.count {
            var grown = [RunPool.Run?](repeating: nil, count: slots.count * 2)
            for offset in 0..<count { grown[offset] = slots[(head + offset) & (slots.count - 1)] }
            slots = grown
            head = 0
        }
        slots[(head + count) & (slots.count - 1)] = run
        count += 1
    }

    mutating func popFirst() -> RunPool.Run? {
        guard count > 0 else { return nil }
        let run = slots[head]
        slots[head] = nil
        head = (head + 1) & (slots.count - 1)
        count -= 1
        return run
    }
}
