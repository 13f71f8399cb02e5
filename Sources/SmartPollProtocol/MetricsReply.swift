/// The reply to `metrics`: `{"id":..,"ok":true,"text":"..."}`, the supervisor's counters and
/// histograms in the Prometheus text exposition format (version 0.0.4), exactly the text its
/// HTTP endpoint serves (`metrics_listen`), newline-terminated.
public struct MetricsReply: Sendable, Hashable {
    public var text: String

    public init(text: String) {
        self.text = text
    }

    func writeMembers(to writer: inout JSONWriter) {
        writer.key("text")
        writer.string(text)
    }

    static func decode(_ reader: ObjectReader) throws(ProtocolError) -> MetricsReply {
        MetricsReply(text: try reader.string("text"))
    }

    // A text of thousands of tasks is megabytes: the supervisor produces it a piece at a time as
    // the socket drains. Head, the escaped pieces and tail, put end to end, are exactly the bytes
    // of `Reply(id: id, body: .metrics(MetricsReply(text: pieces joined))).encodeLine(into:)`.

    /// The reply's bytes before its text: `{"id":..,"ok":true,"text":"`.
    public static func encodedHead(id: JSONValue) -> [UInt8] {
        var writer = JSONWriter(capacity: 64)
        writer.beginObject()
        writer.key("id")
        writer.value(id)
        writer.key("ok")
        writer.bool(true)
        writer.key("text")
        writer.raw(UInt8(ascii: "\""))
        var output: [UInt8] = []
        writer.append(to: &output)
        return output
    }

    /// Appends a piece of the text (UTF-8, cut anywhere: only single ASCII bytes are escaped)
    /// as the reply's string holds it.
    public static func appendEscaped(_ piece: UnsafeBufferPointer<UInt8>, to output: inout [UInt8]) {
        var writer = JSONWriter(capacity: piece.count + piece.count / 8 + 16)
        writer.writeEscapedContent(piece)
        writer.append(to: &output)
    }

    /// The reply's bytes after its text, its newline included.
    public static let encodedTail: [UInt8] = Array("\"}\n".utf8)
}
