/// Checks on JSON source text that json-c accepts but must not: it runs after
/// json-c parsed the text successfully, so the structure is known to be sound.
///
/// - Integer literals outside `Int64`: json-c silently clamps them
///   (`99999999999999999999` becomes `INT64_MAX`, or a `uint64` that reads back
///   clamped), so a request could carry a value it never sent.
/// - Single-quoted strings in strict mode (json-c's strict mode accepts them as keys).
/// - Object keys containing the escape `\u0000`: json-c stores keys as C
///   strings, so `"cmd\u0000x"` would silently become `"cmd"`.
/// - Lone surrogate escapes (`"\ud800"`, or a low one with no high one before it) in any
///   string: json-c makes them U+FFFD, so a request would carry text it never sent.
///
/// - Complexity: One pass over the bytes, no allocation.
enum JSONSourceCheck {
    static func check(_ bytes: UnsafeRawBufferPointer, mode: JSONParser.Mode) throws(ProtocolError) {
        let count = bytes.count
        var index = 0
        while index < count {
            let byte = bytes[index]
            switch byte {
            case UInt8(ascii: "'") where mode == .strict:
                // json-c's strict mode still accepts single-quoted keys.
                throw .badRequest("invalid JSON at byte \(index): strings must use double quotes")
            case UInt8(ascii: "\""), UInt8(ascii: "'"):
                let start = index
                var hasNulEscape = false
                index += 1
                while index < count, bytes[index] != byte {
                    guard bytes[index] == UInt8(ascii: "\\") else {
                        index += 1
                        continue
                    }
                    guard index + 1 < count, bytes[index + 1] == UInt8(ascii: "u"),
                        let unit = hexUnit(bytes, at: index + 2)
                    else {
                        index += 2
                        continue
                    }
                    if unit == 0 { hasNulEscape = true }
                    if unit & 0xFC00 == 0xD800, index + 7 < count, bytes[index + 6] == UInt8(ascii: "\\"),
                        bytes[index + 7] == UInt8(ascii: "u"), let low = hexUnit(bytes, at: index + 8),
                        low & 0xFC00 == 0xDC00
                    {
                        index += 12
                        continue
                    }
                    if unit & 0xF800 == 0xD800 {
                        // json-c turns it into U+FFFD: the request would carry text it never sent
                        // (an id echoed as another), so refuse it as RFC 8259 allows.
                        let escape = String(
                            decoding: UnsafeRawBufferPointer(rebasing: bytes[index..<index + 6]), as: UTF8.self)
                        throw .badRequest(
                            "invalid JSON at byte \(index): lone surrogate \(escape) (a \\u escape of U+D800 to "
                                + "U+DFFF must be a high surrogate followed by a low one)")
                    }
                    index += 6
                }
                index += 1
                if hasNulEscape, isFollowedByColon(bytes, from: index, mode: mode) {
                    throw .badRequest("invalid JSON at byte \(start): object key contains a NUL character (\\u0000)")
                }
            case UInt8(ascii: "/") where mode == .lenient && index + 1 < count:
                index = skipComment(bytes, at: index)
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                let start = index
                var isInteger = true
                while index < count, isNumberByte(bytes[index]) {
                    switch bytes[index] {
                    case UInt8(ascii: "."), UInt8(ascii: "e"), UInt8(ascii: "E"), UInt8(ascii: "+"):
                        isInteger = false
                    default:
                        break
                    }
                    index += 1
                }
                if isInteger, !integerLiteralFitsInt64(bytes, start..<index) {
                    let literal = String(
                        decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<min(index, start + 40)]), as: UTF8.self
                    )
                    throw .badRequest(
                        "invalid JSON at byte \(start): integer \(literal) is out of range (a 64-bit signed integer)")
                }
            default:
                index += 1
            }
        }
    }

    /// The value of the four hex digits at `index`, or nil when there are not four there.
    private static func hexUnit(_ bytes: UnsafeRawBufferPointer, at index: Int) -> UInt16? {
        guard index + 4 <= bytes.count else { return nil }
        var value: UInt16 = 0
        for offset in 0..<4 {
            let byte = bytes[index + offset]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: return nil
            }
            value = value << 4 | UInt16(digit)
        }
        return value
    }

    private static func isNumberByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "+"),
            UInt8(ascii: "."), UInt8(ascii: "e"), UInt8(ascii: "E"):
            return true
        default:
            return false
        }
    }

    /// Whether the next significant byte at or after `index` is `:`.
    private static func isFollowedByColon(
        _ bytes: UnsafeRawBufferPointer, from index: Int, mode: JSONParser.Mode
    ) -> Bool {
        let next = skipInsignificant(bytes, from: index, mode: mode)
        return next < bytes.count && bytes[next] == UInt8(ascii: ":")
    }

    /// The index of the first byte at or after `index` that is neither whitespace
    /// nor (when lenient) part of a comment; `bytes.count` when there is none.
    static func skipInsignificant(_ bytes: UnsafeRawBufferPointer, from index: Int, mode: JSONParser.Mode) -> Int {
        var index = index
        while index < bytes.count {
            switch bytes[index] {
            case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\n"), UInt8(ascii: "\r"):
                index += 1
            case UInt8(ascii: "/") where mode == .lenient:
                let next = skipComment(bytes, at: index)
                if next == index + 1 { return index }
                index = next
            default:
                return index
            }
        }
        return index
    }

    /// The index after the comment starting at `index` (`//` to end of line, or
    /// `/* ... */`), or `index + 1` when no comment starts there.
    static func skipComment(_ bytes: UnsafeRawBufferPointer, at index: Int) -> Int {
        guard index + 1 < bytes.count else { return index + 1 }
        var cursor = index + 2
        if bytes[index + 1] == UInt8(ascii: "/") {
            while cursor < bytes.count, bytes[cursor] != UInt8(ascii: "\n") { cursor += 1 }
            return cursor
        }
        if bytes[index + 1] == UInt8(ascii: "*") {
            while cursor + 1 < bytes.count,
                !(bytes[cursor] == UInt8(ascii: "*") && bytes[cursor + 1] == UInt8(ascii: "/"))
            {
                cursor += 1
            }
            return min(cursor + 2, bytes.count)
        }
        return index + 1
    }

    /// Whether `-?[0-9]+` in `range` lies within `Int64` (leading zeros allowed:
    /// json-c's lenient mode accepts them).
    private static func integerLiteralFitsInt64(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> Bool {
        var start = range.lowerBound
        let negative = start < range.upperBound && bytes[start] == UInt8(ascii: "-")
        if negative { start += 1 }
        while start < range.upperBound - 1, bytes[start] == UInt8(ascii: "0") { start += 1 }
        let digitCount = range.upperBound - start
        if digitCount < 19 { return true }
        if digitCount > 19 { return false }
        let limit = negative ? "9223372036854775808" : "9223372036854775807"
        for (offset, limitDigit) in limit.utf8.enumerated() {
            let digit = bytes[start + offset]
            if digit != limitDigit { return digit < limitDigit }
        }
        return true
    }
}
