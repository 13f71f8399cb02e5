/// A task's `status` row and its JSON text, encoded once and kept while the row stays the same:
/// a `status` of 100 tasks then copies 100 rows' bytes instead of formatting them (the times,
/// the counters and the keys were nine tenths of the reply's cost).
///
/// A class, so that a reply holds its rows for a retain each, not a copy of every field.
///
/// - Important: `encoded`, when there is one, is always ``TaskStatus``'s own encoding of
///   `status`: the only way to give a record text is to encode its row, and neither changes after.
/// - Complexity: ``updated(to:)`` is one comparison of two rows when nothing changed, one
///   encoding of the row otherwise.
public final class TaskStatusRecord: Sendable {
    /// The row the text shows.
    public let status: TaskStatus
    /// `status` as ``TaskStatus`` writes it in a reply: `{"name":...}`, no separator around it;
    /// nil for a row left to be formatted when the reply is written.
    let encoded: [UInt8]?

    /// Encodes `status`.
    public init(_ status: TaskStatus) {
        var writer = JSONWriter(capacity: 320 + (status.last?.stderrTail.utf8.count ?? 0))
        status.write(to: &writer)
        self.status = status
        encoded = Array(writer.bytes)
    }

    /// `status` without its text: formatted when the reply is written, as a row of values is
    /// (in slices, for a big reply). For the rows beyond what one request may encode at once.
    public init(unencoded status: TaskStatus) {
        self.status = status
        encoded = nil
    }

    /// Whether the record carries its row's text.
    public var isEncoded: Bool { encoded != nil }

    /// How many bytes the text takes (0 without it).
    public var encodedCount: Int { encoded?.count ?? 0 }

    /// This record when it shows `status` already (every field equal), else `status` encoded
    /// afresh: the text is invalidated exactly when something the row shows changed. (A record
    /// without text stays one.)
    public func updated(to status: TaskStatus) -> TaskStatusRecord {
        status == self.status ? self : TaskStatusRecord(status)
    }

    /// The row's JSON text, kept or formatted now.
    public var text: String {
        if let encoded { return String(decoding: encoded, as: UTF8.self) }
        var writer = JSONWriter()
        status.write(to: &writer)
        return writer.text
    }

    /// The row in a reply: its text copied, or formatted when it has none.
    func write(to writer: inout JSONWriter) {
        if let encoded {
            writer.encodedValue(encoded)
        } else {
            status.write(to: &writer)
        }
    }
}

/// Records with text and that text joined, comma between rows: what a `status` reply of these
/// rows writes between `[` and `]`. A supervisor keeps one for the last reply, so that a
/// `status` that finds every row as it was copies the rows' text in one piece (one reference
/// to hold and one copy, instead of one of each a row).
public final class TaskStatusRecordList: Sendable {
    public let records: [TaskStatusRecord]
    /// The records' text, joined by commas.
    let joined: [UInt8]

    /// The list of `records`; `nil` when one of them has no text.
    ///
    /// - Complexity: O(bytes of the records' text).
    public init?(_ records: [TaskStatusRecord]) {
        var joined: [UInt8] = []
        joined.reserveCapacity(records.reduce(0) { $0 + $1.encodedCount + 1 })
        for record in records {
            guard let encoded = record.encoded else { return nil }
            if !joined.isEmpty { joined.append(UInt8(ascii: ",")) }
            joined.append(contentsOf: encoded)
        }
        self.records = records
        self.joined = joined
    }

    /// Bytes of the joined text.
    public var byteCount: Int { joined.count }
}
