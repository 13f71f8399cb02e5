/// A `status` reply of many tasks (or a `logs` reply of many lines), encoded a few rows at a time as the socket drains instead of
/// all at once: 5,000 tasks with 4 KiB stderr tails are 20 MB of JSON, seconds of one turn of
/// the loop in a debug build.
///
/// The slices, put end to end, are exactly the bytes of ``Reply/encodeLine(into:)``.
///
/// - Important: The reply is the snapshot the supervisor made when the request was answered
///   (rows are values; their stderr tails copy-on-write strings): O(tasks) to take, O(bytes)
///   to encode over all its slices.
/// - Complexity: each ``encodeSlice(into:budget:)`` encodes rows until `budget` bytes are
///   written: O(`budget`) plus one row (at most about 30 KiB, a tail of 4 KiB escaped).
public struct SlicedStatusReply: Sendable {
    /// Replies estimated smaller are encoded at once, as before.
    public static let minimumEstimatedBytes = 64 << 10

    private let id: JSONValue
    private let content: Content
    private var phase: Phase

    /// What the rows are: a status's tasks, or a `logs` reply's lines.
    private enum Content: Sendable {
        case status(StatusReply)
        case logs(LogsReply)
        case history(HistoryReply)

        var rowCount: Int {
            switch self {
            case .status(let status): status.taskCount
            case .logs(let logs): logs.lines.count
            case .history(let history): history.entries.count
            }
        }
    }

    private enum Phase: Sendable {
        case head
        /// Writing the row at this index next.
        case row(Int)
        case finished
    }

    /// The reply in slices, or nil when it is no `status` reply or is estimated under
    /// `minimumEstimatedBytes` (about 300 bytes a task plus its stderr tail).
    public init?(_ reply: Reply, minimumEstimatedBytes: Int = SlicedStatusReply.minimumEstimatedBytes) {
        var estimate = 0
        switch reply.body {
        case .status(let status):
            estimate = status.rowsSizeEstimate(upTo: minimumEstimatedBytes)
            content = .status(status)
        case .logs(let logs):
            for line in logs.lines {
                estimate += 60 + line.line.utf8.count
                if estimate >= minimumEstimatedBytes { break }
            }
            content = .logs(logs)
        case .history(let history):
            for entry in history.entries {
                estimate += 300 + (entry.stderrLast?.utf8.count ?? 0) + (entry.run.error?.utf8.count ?? 0)
                if estimate >= minimumEstimatedBytes { break }
            }
            content = .history(history)
        default:
            return nil
        }
        guard estimate >= minimumEstimatedBytes else { return nil }
        id = reply.id
        phase = .head
    }

    /// Whether every byte of the reply, newline included, was written.
    public var isFinished: Bool {
        if case .finished = phase { return true }
        return false
    }

    /// Appends the next slice to `output`: rows until about `budget` bytes are written, at least
    /// one step. Does nothing once finished.
    public mutating func encodeSlice(into output: inout [UInt8], budget: Int) {
        let start = output.count
        repeat {
            var writer = JSONWriter(capacity: 4096)
            switch phase {
            case .finished:
                return
            case .head:
                writer.beginObject()
                writer.key("id")
                writer.value(id)
                writer.key("ok")
                writer.bool(true)
                switch content {
                case .status(let status): status.writeMembersBeforeTasks(to: &writer)
                case .logs(let logs): logs.writeMembersBeforeLines(to: &writer)
                case .history(let history): history.writeMembersBeforeEntries(to: &writer)
                }
                writer.append(to: &output)
                phase = .row(0)
            case .row(let index) where index < content.rowCount:
                if index > 0 { writer.raw(UInt8(ascii: ",")) }
                switch content {
                case .status(let status): status.writeTask(index, to: &writer)
                case .logs(let logs): logs.writeLine(index, to: &writer)
                case .history(let history): history.entries[index].write(to: &writer)
                }
                writer.append(to: &output)
                phase = .row(index + 1)
            case .row:
                switch content {
                case .status(let status): status.writeMembersAfterTasks(to: &writer)
                case .logs, .history: writer.endArray()
                }
                writer.endObject()
                writer.append(to: &output)
                output.append(10)
                phase = .finished
            }
        } while output.count - start < budget
    }
}
