import SmartPollProtocol

/// The last stderr lines of a task's runs (task key `log_lines`), kept for `logs`: a ring that
/// holds at most ``capacity`` lines and overwrites the oldest; not persisted. It gets exactly the
/// lines the rate limit (`log_rate`, `log_burst`) lets through, each at most 4 KiB, so its memory
/// is bounded by `capacity` × (4 KiB + about 48 bytes).
///
/// One buffer per task, shared by its runs (reference semantics, like ``StderrRateLimiter``);
/// ``listener`` hears every line appended (the supervisor streams them to `logs -f` clients).
///
/// - Important: The loop's thread only.
/// - Complexity: ``append(time:run:line:)`` O(1) (the storage grows to ``capacity`` once);
///   ``lines(last:)`` O(n) in the lines returned.
final class TaskLogBuffer {
    /// The most lines kept; 0 keeps none (the listener still hears them).
    let capacity: Int
    private var storage: [LogsReply.Line] = []
    /// Where the next line goes once the storage is full (the oldest line).
    private var next = 0
    /// Called with each line appended, kept or not.
    var listener: ((LogsReply.Line) -> Void)?

    init(capacity: Int) {
        self.capacity = capacity
    }

    /// How many lines it holds.
    var count: Int { storage.count }

    /// Keeps a line, dropping the oldest when full, and tells the listener.
    func append(time: Timestamp, run: Int, line: String) {
        let entry = LogsReply.Line(time: time, run: run, line: line)
        if capacity > 0 {
            if storage.count < capacity {
                storage.append(entry)
            } else {
                storage[next] = entry
                next = next + 1 == capacity ? 0 : next + 1
            }
        }
        listener?(entry)
    }

    /// The last `limit` lines (nil: all), oldest first.
    func lines(last limit: Int?) -> [LogsReply.Line] {
        let taken = min(limit ?? storage.count, storage.count)
        var result: [LogsReply.Line] = []
        result.reserveCapacity(taken)
        // Oldest at `next` once full (then `next` wraps), at 0 before.
        let oldest = storage.count < capacity ? 0 : next
        for offset in (storage.count - taken)..<storage.count {
            result.append(storage[(oldest + offset) % storage.count])
        }
        return result
    }

    /// A buffer of `capacity` lines holding this one's last lines, for a changed `log_lines`.
    func resized(to capacity: Int) -> TaskLogBuffer {
        let buffer = TaskLogBuffer(capacity: capacity)
        for line in lines(last: capacity) where capacity > 0 {
            buffer.append(time: line.time, run: line.run, line: line.line)
        }
        buffer.listener = listener
        return buffer
    }
}
