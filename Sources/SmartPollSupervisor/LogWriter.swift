import Glibc
import SmartPoll

/// Writes the log's lines to a descriptor (the supervisor's stderr) from a bounded buffer, on a
/// thread of its own, so that the event loop never waits for the log's destination (SPEC
/// section 3: logging never blocks).
///
/// A thread rather than O_NONBLOCK on descriptor 2: O_NONBLOCK belongs to the open file
/// description, which the supervisor shares with whoever started it (a terminal's shell, the
/// pipe of a `| logger`), and they would then see EAGAIN themselves, even after the supervisor
/// is gone; nor can epoll watch a regular file or /dev/null. The thread makes plain blocking
/// writes to whatever descriptor 2 is, and only the thread ever waits for it.
///
/// When the destination does not read (a stuck journald, a terminal after Ctrl-S, a pipe
/// nobody reads), lines are buffered up to `capacity` bytes; past that, whole lines are
/// dropped and counted. Once the destination has taken a write again, one line reports how
/// many were dropped (as journald reports suppressed messages), made by `report`.
///
/// - Important: ``append(_:)`` never waits but for the buffer's lock, which the thread holds
///   only to hand over a batch (never while writing). Lines leave in the order they were
///   appended. Thread-safe.
/// - Complexity: ``append(_:)`` is O(line); the thread writes whole batches, one `write(2)` a
///   batch when the destination keeps up.
final class LogWriter: @unchecked Sendable {
    /// The supervisor's stderr; its thread starts at the first line.
    static let standardError = LogWriter(descriptor: 2)

    /// The bytes the buffer holds at most (the batch being written included): 1 MiB, about
    /// 8,000 lines of 128 bytes.
    static let defaultCapacity = 1 << 20

    let descriptor: Int32
    let capacity: Int
    // Everything below is guarded by `lock`.
    /// Makes the report of `count` dropped lines: one line, its newline included.
    private var report: @Sendable (Int) -> [UInt8]
    private let lock = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    /// Signalled when there is something to write, or the writer should stop.
    private let work = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    /// Signalled when the buffer is empty and nothing is being written.
    private let idle = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var pending: [UInt8] = []
    /// The batch the thread is writing, outside the lock.
    private var writingCount = 0
    private var droppedLines = 0
    /// Every line dropped since the writer was made, reported or not.
    private var droppedSinceStart = 0
    private var started = false
    private var stopping = false
    private var thread = pthread_t()

    init(
        descriptor: Int32, capacity: Int = LogWriter.defaultCapacity,
        report: @escaping @Sendable (Int) -> [UInt8] = LogWriter.plainReport
    ) {
        self.descriptor = descriptor
        self.capacity = capacity
        self.report = report
        pthread_mutex_init(lock, nil)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        // Waits with a deadline (flush) measure monotonic time, whatever the wall clock does.
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(work, &attributes)
        pthread_cond_init(idle, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        stop()
        pthread_cond_destroy(work)
        pthread_cond_destroy(idle)
        pthread_mutex_destroy(lock)
        work.deallocate()
        idle.deallocate()
        lock.deallocate()
    }

    /// Makes the report of dropped lines with `report` from now on (the log's format).
    func setReport(_ report: @escaping @Sendable (Int) -> [UInt8]) {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        self.report = report
    }

    /// The report without a formatter: `N log lines dropped (...)`.
    static let plainReport: @Sendable (Int) -> [UInt8] = { count in
        Array("\(count) log lines dropped (the log's destination was not reading)\n".utf8)
    }

    /// Queues one line (its newline included), or drops and counts it when the buffer has no
    /// room for it.
    ///
    /// - Returns: whether the line was queued.
    @discardableResult
    func append(_ line: [UInt8]) -> Bool {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        guard !stopping, pending.count + writingCount + line.count <= capacity else {
            droppedLines += 1
            droppedSinceStart += 1
            return false
        }
        if !started { start() }
        let wasEmpty = pending.isEmpty
        pending.append(contentsOf: line)
        if wasEmpty { pthread_cond_signal(work) }
        return true
    }

    /// Lines dropped and not reported yet.
    var unreportedDrops: Int {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        return droppedLines
    }

    /// Lines dropped since the writer was made (the metrics' `smartpoll_log_lines_dropped_total`).
    var droppedLineCount: Int {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        return droppedSinceStart
    }

    /// Bytes queued or being written.
    var bufferedByteCount: Int {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        return pending.count + writingCount
    }

    /// Waits until everything queued has been written, at most `timeout` (at exit: a log that
    /// does not drain may delay the exit by that much, never more).
    ///
    /// - Returns: whether the buffer emptied in time.
    @discardableResult
    func flush(within timeout: Duration) -> Bool {
        var deadline = timespec()
        clock_gettime(CLOCK_MONOTONIC, &deadline)
        // At most an hour: the sum cannot overflow, and no caller waits longer.
        let total = Int64(deadline.tv_nsec) + min(timeout.nanosecondsClamped, 3_600_000_000_000)
        deadline.tv_sec += Int(total / 1_000_000_000)
        deadline.tv_nsec = Int(total % 1_000_000_000)
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        while pending.count + writingCount > 0 {
            if pthread_cond_timedwait(idle, lock, &deadline) == ETIMEDOUT { break }
        }
        return pending.count + writingCount == 0
    }

    /// Stops the thread once it has written its current batch (what is still queued is
    /// dropped), and waits for it. For tests; the supervisor's writer lives as long as it.
    func stop() {
        pthread_mutex_lock(lock)
        let wasStarted = started
        stopping = true
        pthread_cond_signal(work)
        pthread_mutex_unlock(lock)
        if wasStarted { pthread_join(thread, nil) }
        pthread_mutex_lock(lock)
        started = false
        pthread_mutex_unlock(lock)
    }

    /// Starts the thread with every signal blocked in it (its mask is inherited from the
    /// creating thread for the moment of creation): the supervisor takes its signals through a
    /// signalfd, which only works while no thread accepts them. Called with the lock held.
    private func start() {
        var all = sigset_t()
        var previous = sigset_t()
        sigfillset(&all)
        pthread_sigmask(SIG_BLOCK, &all, &previous)
        defer { pthread_sigmask(SIG_SETMASK, &previous, nil) }
        let context = Unmanaged.passRetained(self).toOpaque()
        let result = pthread_create(
            &thread, nil,
            { context in
                let writer = Unmanaged<LogWriter>.fromOpaque(context!).takeRetainedValue()
                writer.writeUntilStopped()
                return nil
            }, context)
        if result == 0 {
            started = true
        } else {
            // No thread: the lines stay queued until the buffer is full, then are counted.
            Unmanaged<LogWriter>.fromOpaque(context).release()
        }
    }

    /// The thread: takes the whole queue as one batch, writes it outside the lock, and once the
    /// destination has taken it, queues the report of the lines dropped meanwhile.
    private func writeUntilStopped() {
        var batch: [UInt8] = []
        pthread_mutex_lock(lock)
        while true {
            while pending.isEmpty && !stopping { pthread_cond_wait(work, lock) }
            if stopping { break }
            swap(&batch, &pending)
            writingCount = batch.count
            pthread_mutex_unlock(lock)
            writeAll(batch)
            batch.removeAll(keepingCapacity: true)
            pthread_mutex_lock(lock)
            writingCount = 0
            if droppedLines > 0 {
                pending.append(contentsOf: report(droppedLines))
                droppedLines = 0
            }
            if pending.isEmpty { pthread_cond_broadcast(idle) }
        }
        pthread_mutex_unlock(lock)
        // Wakes a flush waiting for lines that will never be written now.
        pthread_mutex_lock(lock)
        pthread_cond_broadcast(idle)
        pthread_mutex_unlock(lock)
    }

    /// Writes `bytes` whole, waiting as long as the destination does; gives up on a broken one
    /// (EPIPE, EIO: a log nobody can read any more is dropped, not retried).
    private func writeAll(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = write(descriptor, buffer.baseAddress! + offset, buffer.count - offset)
                if written > 0 {
                    offset += written
                } else if written < 0 && errno == EINTR {
                    continue
                } else if written < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                    // Someone else set O_NONBLOCK on the shared description: wait for room.
                    var poller = pollfd(fd: descriptor, events: Int16(POLLOUT), revents: 0)
                    _ = poll(&poller, 1, 100)
                } else {
                    return
                }
            }
        }
    }
}
