/// Writes compact JSON text into a byte buffer, member by member, so that
/// replies and events are encoded in their fixed key order without building a
/// ``JSONValue`` tree first.
///
/// The writer does not check structure: callers open and close what they write.
/// Commas are inserted automatically between members and elements.
struct JSONWriter {
    private(set) var bytes: [UInt8]
    /// Whether the next member or element of the innermost container needs a comma.
    private var needsComma = false

    init(capacity: Int = 128) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    /// Continues `buffer`, which it takes over (no copy): ``takeBytes()`` hands it back.
    init(adopting buffer: inout [UInt8]) {
        bytes = []
        swap(&bytes, &buffer)
    }

    /// The bytes written, leaving the writer empty.
    mutating func takeBytes() -> [UInt8] {
        var taken: [UInt8] = []
        swap(&taken, &bytes)
        return taken
    }

    /// Ends a line: a newline byte.
    mutating func newline() {
        bytes.append(10)
        needsComma = false
    }

    /// The text written so far.
    var text: String { String(decoding: bytes, as: UTF8.self) }

    private mutating func separate() {
        if needsComma { bytes.append(UInt8(ascii: ",")) }
        needsComma = true
    }

    mutating func beginObject() {
        separate()
        bytes.append(UInt8(ascii: "{"))
        needsComma = false
    }

    mutating func endObject() {
        bytes.append(UInt8(ascii: "}"))
        needsComma = true
    }

    mutating func beginArray() {
        separate()
        bytes.append(UInt8(ascii: "["))
        needsComma = false
    }

    mutating func endArray() {
        bytes.append(UInt8(ascii: "]"))
        needsComma = true
    }

    /// Writes `"key":`; the value written next belongs to it.
    mutating func key(_ key: String) {
        separate()
        writeEscaped(key)
        bytes.append(UInt8(ascii: ":"))
        needsComma = false
    }

    mutating func null() {
        separate()
        bytes.append(contentsOf: "null".utf8)
    }

    mutating func bool(_ value: Bool) {
        separate()
        bytes.append(contentsOf: (value ? "true" : "false").utf8)
    }

    mutating func int(_ value: Int64) {
        separate()
        writeDecimal(value)
    }

    mutating func int(_ value: Int) { int(Int64(value)) }

    /// Writes the shortest text that reads back as the same `Double`;
    /// a non-finite value (which JSON cannot express) is written as `null`.
    mutating func double(_ value: Double) {
        separate()
        if value.isFinite {
            // Swift's description is the shortest round-trip form and always valid JSON
            // for finite values ("1.5", "100.0", "1e-07", "1e+16", "-0.0").
            bytes.append(contentsOf: value.description.utf8)
        } else {
            bytes.append(contentsOf: "null".utf8)
        }
    }

    mutating func string(_ value: String) {
        separate()
        writeEscaped(value)
    }

    mutating func value(_ value: JSONValue) {
        switch value {
        case .null: null()
        case .bool(let flag): bool(flag)
        case .int(let number): int(number)
        case .double(let number): double(number)
        case .string(let text): string(text)
        case .array(let elements):
            beginArray()
            for element in elements { self.value(element) }
            endArray()
        case .object(let object):
            beginObject()
            for pair in object.pairs {
                key(pair.key)
                self.value(pair.value)
            }
            endObject()
        }
    }

    // Convenience for the many optional members of replies: nil is written as null.

    mutating func string(_ value: String?) {
        if let value { string(value) } else { null() }
    }

    mutating func int(_ value: Int?) {
        if let value { int(value) } else { null() }
    }

    mutating func timestamp(_ value: Timestamp?) {
        if let value { string(value.formatted()) } else { null() }
    }

    /// The members every run outcome shares (`run` replies, `task_finished`, `last`), in SPEC
    /// order: `exit_code`, `signal`, `timed_out`, `succeeded`.
    mutating func outcomeMembers(exitCode: Int?, signal: Int?, timedOut: Bool, succeeded: Bool) {
        key("exit_code")
        int(exitCode)
        key("signal")
        int(signal)
        key("timed_out")
        bool(timedOut)
        key("succeeded")
        bool(succeeded)
    }

    private mutating func writeDecimal(_ value: Int64) {
        // String(Int64) stays in a small (inline) string for every Int64: no allocation.
        bytes.append(contentsOf: String(value).utf8)
    }

    private static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    /// Runs of bytes that need no escape are copied whole; this is the hot path of every
    /// reply (a `status` of 100 tasks writes over a thousand strings).
    private mutating func writeEscaped(_ text: String) {
        bytes.append(UInt8(ascii: "\""))
        var text = text
        text.withUTF8 { utf8 in
            var runStart = 0
            for index in 0..<utf8.count {
                let byte = utf8[index]
                if byte >= 0x20 && byte != UInt8(ascii: "\"") && byte != UInt8(ascii: "\\") && byte != 0x7F {
                    continue
                }
                bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart..<index]))
                writeEscape(byte)
                runStart = index + 1
            }
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart...]))
        }
        bytes.append(UInt8(ascii: "\""))
    }

    private mutating func writeEscape(_ byte: UInt8) {
        bytes.append(UInt8(ascii: "\\"))
        switch byte {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"): bytes.append(byte)
        case 0x0A: bytes.append(UInt8(ascii: "n"))
        case 0x0D: bytes.append(UInt8(ascii: "r"))
        case 0x09: bytes.append(UInt8(ascii: "t"))
        case 0x08: bytes.append(UInt8(ascii: "b"))
        case 0x0C: bytes.append(UInt8(ascii: "f"))
        default:
            bytes.append(contentsOf: "u00".utf8)
            bytes.append(JSONWriter.hexDigits[Int(byte >> 4)])
            bytes.append(JSONWriter.hexDigits[Int(byte & 0x0F)])
        }
    }
}
