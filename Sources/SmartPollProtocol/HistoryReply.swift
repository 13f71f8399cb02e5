/// The reply to `history`: `{"id":..,"ok":true,"task":"w1","history":[{...},...]}`, the task's
/// kept runs, newest first.
public struct HistoryReply: Sendable, Hashable {
    public var task: String
    /// Newest first.
    public var entries: [Entry]

    /// One finished run: the members of `status`'s `last` but `stderr_tail`, then `changed`,
    /// `output_bytes` and `stderr_last`.
    ///
    /// `{"run":N,"started":T,"ended":T,"duration_ms":F,"exit_code":0,"signal":null,
    /// "timed_out":false,"succeeded":true,"error":null,"cpu_ms":F,"changed":true,
    /// "output_bytes":N,"stderr_last":"..."|null}`
    public struct Entry: Sendable, Hashable {
        /// The run as `last` has it; its ``LastRun/stderrTail`` is empty (a history keeps only
        /// ``stderrLast``).
        public var run: LastRun
        /// Whether the run changed the task's result (as `on_change` and `task_finished` mean
        /// it): false for a failed run.
        public var changed: Bool
        /// The bytes of the run's stdout kept (at most `capture`); 0 for a command that never
        /// started.
        public var outputBytes: Int
        /// The last non-empty line of the run's stderr, at most ``stderrLastLimit`` bytes (cut
        /// on a UTF-8 boundary); nil when it wrote none.
        public var stderrLast: String?

        /// The most bytes of ``stderrLast``.
        public static let stderrLastLimit = 256

        public init(run: LastRun, changed: Bool, outputBytes: Int, stderrLast: String?) {
            self.run = run
            self.changed = changed
            self.outputBytes = outputBytes
            self.stderrLast = stderrLast
        }

        /// The last non-empty line of `tail` (a run's stderr tail), its first
        /// ``stderrLastLimit`` bytes at most, cut before a character that would not fit; nil
        /// when there is none.
        ///
        /// - Complexity: O(length of the last line) (the tail is at most 4 KiB).
        public static func lastLine(of tail: String) -> String? {
            let bytes = tail.utf8
            var end = bytes.endIndex
            while end > bytes.startIndex {
                let before = bytes.index(before: end)
                let byte = bytes[before]
                guard byte == UInt8(ascii: "\n") || byte == UInt8(ascii: "\r") else { break }
                end = before
            }
            guard end > bytes.startIndex else { return nil }
            var start = end
            while start > bytes.startIndex {
                let before = bytes.index(before: start)
                if bytes[before] == UInt8(ascii: "\n") { break }
                start = before
            }
            if let limit = bytes.index(start, offsetBy: stderrLastLimit, limitedBy: end), limit < end {
                end = limit
                // Back to the first byte of the character at the cut (continuation bytes are 10xxxxxx).
                while end > start && bytes[end] & 0xC0 == 0x80 { end = bytes.index(before: end) }
            }
            // The tail is valid UTF-8 (invalid bytes were replaced) and both ends are on a
            // character's first byte: the slice is whole characters, copied once.
            return String(Substring(bytes[start..<end]))
        }

        func write(to writer: inout JSONWriter) {
            writer.beginObject()
            run.writeMembers(to: &writer, stderrTail: false)
            writer.key("changed")
            writer.bool(changed)
            writer.key("output_bytes")
            writer.int(outputBytes)
            writer.key("stderr_last")
            writer.string(stderrLast)
            writer.endObject()
        }

        static func decode(_ reader: ObjectReader) throws(ProtocolError) -> Entry {
            Entry(
                run: try LastRun.decode(reader, stderrTail: false), changed: try reader.bool("changed"),
                outputBytes: try reader.int("output_bytes"), stderrLast: try reader.optionalString("stderr_last"))
        }
    }

    public init(task: String, entries: [Entry]) {
        self.task = task
        self.entries = entries
    }

    func writeMembers(to writer: inout JSONWriter) {
        writeMembersBeforeEntries(to: &writer)
        for entry in entries { entry.write(to: &writer) }
        writer.endArray()
    }

    /// `"task":T,"history":[`: what comes before the entries (``SlicedStatusReply`` slices them too).
    func writeMembersBeforeEntries(to writer: inout JSONWriter) {
        writer.key("task")
        writer.string(task)
        writer.key("history")
        writer.beginArray()
    }

    static func decode(_ reader: ObjectReader) throws(ProtocolError) -> HistoryReply {
        let value = try reader.value("history")
        guard case .array(let elements) = value else {
            throw ProtocolError.badRequest("expected an array, got \(value.shortDescription)")
                .inField(reader.fieldName("history"))
        }
        var entries: [Entry] = []
        entries.reserveCapacity(elements.count)
        for (index, element) in elements.enumerated() {
            guard case .object(let object) = element else {
                throw ProtocolError.badRequest("expected an object, got \(element.shortDescription)")
                    .inField("\(reader.fieldName("history"))[\(index)]")
            }
            entries.append(try Entry.decode(ObjectReader(object, path: "\(reader.fieldName("history"))[\(index)].")))
        }
        return HistoryReply(task: try reader.string("task"), entries: entries)
    }
}
