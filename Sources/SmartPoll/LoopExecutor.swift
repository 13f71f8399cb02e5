import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The task executor of every ``Scheduler``'s loop and of the runs it starts: one thread per
/// core, shared by the schedulers of the process, with one queue.
///
/// Why not the global executor: a task's cycle is two hand-offs, the loop starting stage one
/// and stage one's end waking the loop. On the global executor each is a job given to another
/// thread of the pool, whose wake-up (a futex, a context switch) costs more than the rest of
/// the cycle. Here the two hand-offs that the loop makes itself (``Scheduler`` starting a run
/// while it is about to wait for its mailbox; a run's end posted as the last thing its job
/// does) are *deferred*: the job goes into the queue without waking another worker, since the
/// worker that queued it is about to be free and will take it next. A one-task cycle thus stays
/// on one thread with no system call (Go's scheduler keeps the goroutine that a goroutine just
/// readied in its processor's `runnext` slot for the same reason). Any other job, and a deferred
/// one that finds the queue not empty, wakes an idle worker as usual, and a worker that takes a
/// job and leaves more behind wakes the next idle one, so runs still spread over the cores.
///
/// - Important: A deferred job waits at most until the job that queued it suspends or ends:
///   for the loop that is its next wait for the mailbox, or ``flushDeferred()`` when it finds
///   messages already there and goes on without waiting.
final class LoopExecutor: TaskExecutor, @unchecked Sendable {
    static let shared = LoopExecutor(threads: LoopExecutor.cores())

    /// What a worker thread knows about itself, reached through a thread-specific key (a
    /// pointer, not a class: no exclusivity checks on the hot path).
    private struct Worker {
        /// Set around a hand-off that the current job makes just before it suspends or ends.
        var deferring = false
        /// A job was queued while deferring and no worker was woken for it.
        var deferred = false
        /// How many jobs this thread has begun: a job is a stretch of a task between two
        /// suspensions, so code that reads the same stamp twice did not suspend in between
        /// (``jobStamp``).
        var jobs: UInt64 = 0
    }

    private let lock: UnsafeMutablePointer<pthread_mutex_t>
    private let wakeup: UnsafeMutablePointer<pthread_cond_t>
    /// A `let`: a class's stored `var` is read with a dynamic exclusivity check
    /// (swift_beginAccess), and this one is read on every hand-off.
    private let key: pthread_key_t
    /// Guarded by `lock`; behind a pointer, so that its accesses pay no dynamic exclusivity check.
    private let state: UnsafeMutablePointer<(queue: JobQueue, idle: Int)>

    /// The number of worker threads.
    let threadCount: Int

    private init(threads: Int) {
        threadCount = threads
        state = .allocate(capacity: 1)
        state.initialize(to: (JobQueue(), 0))
        lock = .allocate(capacity: 1)
        lock.initialize(to: pthread_mutex_t())
        pthread_mutex_init(lock, nil)
        wakeup = .allocate(capacity: 1)
        wakeup.initialize(to: pthread_cond_t())
        pthread_cond_init(wakeup, nil)
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        self.key = key
        for _ in 0..<threads {
            let context = Unmanaged.passRetained(self).toOpaque()
            var thread = pthread_t()
            let created = pthread_create(
                &thread, nil,
                { context in
                    let executor = Unmanaged<LoopExecutor>.fromOpaque(context!).takeRetainedValue()
                    executor.work()
                }, context)
            precondition(created == 0, "LoopExecutor: pthread_create failed (\(created))")
            pthread_detach(thread)
        }
    }

    private static func cores() -> Int {
        max(2, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let worker = currentWorker()
        pthread_mutex_lock(lock)
        state.pointee.queue.append(job)
        var wake = state.pointee.idle > 0
        if wake, let worker, worker.pointee.deferring, state.pointee.queue.count == 1 {
            wake = false
            worker.pointee.deferred = true
        }
        pthread_mutex_unlock(lock)
        if wake { pthread_cond_signal(wakeup) }
    }

    /// Runs `body`, deferring the wake-up for a job it queues (see the type's notes): call it
    /// only around a hand-off after which the current job suspends or ends at once, or call
    /// ``flushDeferred()`` when it goes on instead. Outside this executor's threads it is `body()`.
    @inline(__always)
    func deferringWakes<Result>(_ body: () throws -> Result) rethrows -> Result {
        guard let worker = currentWorker() else { return try body() }
        worker.pointee.deferring = true
        defer { worker.pointee.deferring = false }
        return try body()
    }

    /// Wakes an idle worker for a job whose wake-up was deferred, if it is still queued: the job
    /// that deferred it did not suspend after all.
    func flushDeferred() {
        guard let worker = currentWorker(), worker.pointee.deferred else { return }
        worker.pointee.deferred = false
        pthread_mutex_lock(lock)
        let wake = state.pointee.idle > 0 && state.pointee.queue.count > 0
        pthread_mutex_unlock(lock)
        if wake { pthread_cond_signal(wakeup) }
    }

    /// Which job of which thread of this executor the caller runs in, or nil outside its
    /// threads: equal stamps mean that the caller has not suspended since the first was taken
    /// (a resumption is a new job). ``SchedulerControl/now`` keeps its reading while the stamp
    /// stays the same.
    @inline(__always)
    func jobStamp() -> JobStamp? {
        guard let worker = currentWorker() else { return nil }
        return JobStamp(thread: UnsafeRawPointer(worker), job: worker.pointee.jobs)
    }

    struct JobStamp: Equatable {
        let thread: UnsafeRawPointer
        let job: UInt64
    }

    /// How many workers wait for a job (for tests).
    var idleCount: Int {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        return state.pointee.idle
    }

    @inline(__always)
    private func currentWorker() -> UnsafeMutablePointer<Worker>? {
        pthread_getspecific(key)?.assumingMemoryBound(to: Worker.self)
    }

    /// The run pools of the live schedulers, watched by idle threads (``RunPool``).
    private let pools = Mutex<[ObjectIdentifier: RunPool]>([:])

    func register(_ pool: RunPool) {
        pools.withLock { $0[ObjectIdentifier(pool)] = pool }
    }

    func unregister(_ pool: RunPool) {
        pools.withLock { $0[ObjectIdentifier(pool)] = nil }
    }

    /// An idle thread's check: a pool with queued runs (its workers all busy, some suspended
    /// in their stage one) asks its loop for another worker. True if one was asked for.
    func needsWorker() -> Bool {
        var asked = false
        let pools = self.pools.withLock { Array($0.values) }
        for pool in pools where pool.waitingRuns.load(ordering: .relaxed) > 0 {
            if pool.claimWorkerStart() {
                pool.mailbox.post(.needWorker)
                asked = true
            }
        }
        return asked
    }

    private func work() -> Never {
        let worker = UnsafeMutablePointer<Worker>.allocate(capacity: 1)
        worker.initialize(to: Worker())
        pthread_setspecific(key, worker)
        let executor = asUnownedTaskExecutor()
        pthread_mutex_lock(lock)
        while true {
            guard let job = state.pointee.queue.popFirst() else {
                pthread_mutex_unlock(lock)
                let asked = needsWorker()
                pthread_mutex_lock(lock)
                // A job queued while the lock was released found no idle worker to wake.
                if asked || state.pointee.queue.count > 0 { continue }
                state.pointee.idle += 1
                pthread_cond_wait(wakeup, lock)
                state.pointee.idle -= 1
                continue
            }
            let more = state.pointee.idle > 0 && state.pointee.queue.count > 0
            pthread_mutex_unlock(lock)
            worker.pointee.deferred = false
            worker.pointee.jobs &+= 1
            if more { pthread_cond_signal(wakeup) }
            job.runSynchronously(on: executor)
            pthread_mutex_lock(lock)
        }
    }
}

/// A first-in first-out ring of jobs that grows by doubling.
private struct JobQueue {
    private var slots: [UnownedJob?] = Array(repeating: nil, count: 256)
    private var head = 0
    private(set) var count = 0

    mutating func append(_ job: UnownedJob) {
        if count == slots.count {
            var grown = [UnownedJob?](repeating: nil, count: slots.count * 2)
            for offset in 0..<count { grown[offset] = slots[(head + offset) % slots.count] }
            slots = grown
            head = 0
        }
        slots[(head + count) & (slots.count - 1)] = job
        count += 1
    }

    mutating func popFirst() -> UnownedJob? {
        guard count > 0 else { return nil }
        let job = slots[head]
        slots[head] = nil
        head = (head + 1) & (slots.count - 1)
        count -= 1
        return job
    }
}
