/// A task's `status` row and its JSON text, encoded once and kept while the row stays the same:
/// a `status` of 100 tasks then copies 100 rows' bytes instead of formatting them (the times,
/// the counters and the keys were nine tenths of the reply's cost).
///
/// A class, so that a reply holds its rows for a retain each, not a copy of every field.
///
/// - Important: `encoded` is always ``TaskStatus``'s own encoding of `status`: the only way to
///   make a record is to encode a row, and neither changes after.
/// - Complexity: ``updated(to:)`` is one comparison of two rows when nothing changed, one
///   encoding of the row otherwise.
public final class TaskStatusRecord: Sendable {
    /// The row the text shows.
    public let status: TaskStatus
    /// `status` as ``TaskStatus`` writes it in a reply: `{"name":...}`, no separator around it.
    let encoded: [UInt8]

    /// Encodes `status`.
    public init(_ status: TaskStatus) {
        var writer = JSONWriter(capacity: 320 + (status.last?.stderrTail.utf8.count ?? 0))
        status.write(to: &writer)
        self.status = status
        encoded = Array(writer.bytes)
    }

    /// This record when it shows `status` already (every field equal), else `status` encoded
    /// afresh: the text is invalidated exactly when something the row shows changed.
    public func updated(to status: TaskStatus) -> TaskStatusRecord {
        status == self.status ? self : TaskStatusRecord(status)
    }

    /// The row's JSON text.
    public var text: String { String(decoding: encoded, as: UTF8.self) }
}
