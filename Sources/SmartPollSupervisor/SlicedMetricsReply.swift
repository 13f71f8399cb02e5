import SmartPollProtocol

/// The `metrics` reply, its text rendered and encoded a slice at a time as the socket drains:
/// 10,000 tasks are about 25 MB of text, which one turn of the loop must not render.
///
/// The slices, put end to end, are exactly the bytes of the ``Reply`` whose body is
/// `.metrics(MetricsReply(text:))` of the whole text (``MetricsReply/encodedHead(id:)``, the
/// text's pieces escaped, ``MetricsReply/encodedTail``).
///
/// - Important: It renders the snapshot taken when the request was answered: runs that end
///   meanwhile do not change a reply under way.
struct SlicedMetricsReply: ClientOutputQueue.Slices {
    private let id: JSONValue
    private var text: MetricsText
    private var headWritten = false
    private(set) var isFinished = false

    init(id: JSONValue, snapshot: MetricsSnapshot) {
        self.id = id
        text = MetricsText(snapshot)
    }

    mutating func encodeSlice(into output: inout [UInt8], budget: Int) {
        guard !isFinished else { return }
        if !headWritten {
            output += MetricsReply.encodedHead(id: id)
            headWritten = true
        }
        var piece: [UInt8] = []
        piece.reserveCapacity(min(budget, 1 << 20) + 4_096)
        text.write(into: &piece, budget: budget)
        piece.withUnsafeBufferPointer { MetricsReply.appendEscaped($0, to: &output) }
        if text.isFinished {
            output += MetricsReply.encodedTail
            isFinished = true
        }
    }
}
