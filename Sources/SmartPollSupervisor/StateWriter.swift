import CSmartPollPosix
import Glibc
import SmartPollSystem
import Synchronization

/// The thread that does the `state_dir`'s file I/O (journal appends and their fsync, result
/// files, snapshots, renames, unlinks), so that the loop never waits for the disk: the loop
/// hands it a ``Job`` (Sendable values), and hears of its end through an eventfd the loop
/// watches.
///
/// - Important: One job at a time: the loop submits the next only after the last one's
///   ``Completion`` (it gathers what changes meanwhile into the next job). The ``StateStore`` is
///   the thread's alone from ``init`` until ``stop()`` returns.
final class StateWriter {
    struct Job: Sendable {
        var number: Int
        var changes: StateStore.Changes
    }

    struct Completion: Sendable {
        var number: Int
        /// Why the write failed; nil when the changes are durable.
        var failure: SupervisorError?
        /// Lines for the log (a compaction that failed, an entry removed from a temporary name).
        var notes: [String]
    }

    private struct Mailbox: Sendable {
        var job: Job?
        var completions: [Completion] = []
        var stopping = false
    }

    /// What the thread and the loop share: the store (the thread's), the eventfds, the mailbox.
    private final class Shared: Sendable {
        let store: StateStore
        let pid: Int32
        /// Signalled by the loop when there is a job or the thread must stop.
        let wake: Int32
        /// Signalled by the thread when a completion is in the mailbox.
        let done: Int32
        let mailbox = Mutex(Mailbox())

        init(store: StateStore, pid: Int32, wake: Int32, done: Int32) {
            self.store = store
            self.pid = pid
            self.wake = wake
            self.done = done
        }

        /// The thread's body: waits for a job, does it, reports it; until told to stop.
        func serve() {
            while true {
                var entry = pollfd(fd: wake, events: Int16(POLLIN), revents: 0)
                // The thread blocks every signal (see start(): they go to the loop's
                // signalfd); EINTR would only repeat the wait.
                _ = poll(&entry, 1, -1)
                _ = sp_eventfd_drain(wake)
                while true {
                    let (job, stopping) = mailbox.withLock { mailbox in
                        defer { mailbox.job = nil }
                        return (mailbox.job, mailbox.stopping)
                    }
                    guard let job else {
                        if stopping { return }
                        break
                    }
                    var failure: SupervisorError?
                    do {
                        try store.write(job.changes, pid: pid)
                    } catch {
                        failure = error
                    }
                    let completion = Completion(number: job.number, failure: failure, notes: store.takeNotes())
                    mailbox.withLock { $0.completions.append(completion) }
                    _ = sp_eventfd_signal(done)
                    // After the completion: the replies waiting for this write go now; changes
                    // made meanwhile wait for the compaction (its notes go with the next write).
                    if failure == nil { store.compactIfDue(pid: pid) }
                }
            }
        }
    }

    private let shared: Shared
    private let loop: EventLoop
    private var thread = pthread_t()
    private var running = false
    private let onCompletion: (Completion) -> Void

    /// Starts the thread; `onCompletion` is called on the loop's thread for each job done.
    ///
    /// - Throws: when the eventfds, their registration or the thread cannot be made.
    init(
        store: StateStore, loop: EventLoop, pid: Int32, onCompletion: @escaping (Completion) -> Void
    ) throws(SupervisorError) {
        let wake: Int32
        let done: Int32
        do throws(Errno) {
            wake = try SystemCall.checking { sp_eventfd_create() }
            do throws(Errno) {
                done = try SystemCall.checking { sp_eventfd_create() }
            } catch {
                SystemCall.close(wake)
                throw error
            }
        } catch {
            throw SupervisorError.systemCall("eventfd", errno: error.rawValue)
        }
        shared = Shared(store: store, pid: pid, wake: wake, done: done)
        self.loop = loop
        self.onCompletion = onCompletion
        do {
            try loop.register(done, for: .readable) { [unowned self] _ in self.deliver() }
        } catch {
            SystemCall.close(wake)
            SystemCall.close(done)
            throw error
        }
        let box = Unmanaged.passRetained(shared).toOpaque()
        // The thread starts with every signal blocked (it inherits this mask): signals are the
        // loop's, through its signalfd.
        var all = sigset_t()
        var previous = sigset_t()
        sigfillset(&all)
        pthread_sigmask(SIG_BLOCK, &all, &previous)
        defer { pthread_sigmask(SIG_SETMASK, &previous, nil) }
        let result = pthread_create(
            &thread, nil,
            { raw in
                Unmanaged<Shared>.fromOpaque(raw!).takeRetainedValue().serve()
                return nil
            }, box)
        guard result == 0 else {
            Unmanaged<Shared>.fromOpaque(box).release()
            loop.deregister(done)
            SystemCall.close(wake)
            SystemCall.close(done)
            throw SupervisorError.systemCall("pthread_create", errno: result)
        }
        running = true
    }

    deinit {
        if running { _ = stop() }
    }

    /// Hands `job` to the thread. Only one job is outstanding at a time (see the type's note).
    func submit(_ job: Job) {
        shared.mailbox.withLock { $0.job = job }
        _ = sp_eventfd_signal(shared.wake)
    }

    private func deliver() {
        _ = sp_eventfd_drain(shared.done)
        let completions = shared.mailbox.withLock { mailbox in
            defer { mailbox.completions = [] }
            return mailbox.completions
        }
        for completion in completions { onCompletion(completion) }
    }

    /// Lets the thread finish the job it has, ends it, and returns the completions the loop has
    /// not heard of yet. Blocks until then: for shutdown, when the loop serves no more.
    func stop() -> [Completion] {
        guard running else { return [] }
        running = false
        shared.mailbox.withLock { $0.stopping = true }
        _ = sp_eventfd_signal(shared.wake)
        _ = pthread_join(thread, nil)
        loop.deregister(shared.done)
        SystemCall.close(shared.wake)
        SystemCall.close(shared.done)
        return shared.mailbox.withLock { mailbox in
            defer { mailbox.completions = [] }
            return mailbox.completions
        }
    }
}
