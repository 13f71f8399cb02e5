import CJSONC

/// Parses JSON text with json-c into ``JSONValue``.
///
/// Two modes:
/// - ``Mode/strict``, for the wire: `JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8`.
///   No comments, no single quotes, no trailing commas, UTF-8 validated.
/// - ``Mode/lenient``, for configuration files: json-c's default grammar, which
///   adds `//` and `/* */` comments (and json-c's other relaxations: single-quoted
///   strings, trailing commas); UTF-8 is still validated.
///
/// In both modes, beyond json-c:
/// - anything but whitespace (or, when lenient, comments) after the value is rejected;
/// - integer literals outside `Int64` are rejected (json-c clamps them silently);
/// - non-finite numbers (`NaN`, `Infinity`, `1e400`) are rejected;
/// - strings must be valid UTF-8 (json-c's own check misses overlong forms and
///   encoded surrogates), and in strict mode double-quoted (json-c takes `'key'`);
/// - object keys containing `\u0000` are rejected (json-c would truncate them);
/// - lone surrogate escapes (`"\ud800"`) are rejected (json-c would make them U+FFFD);
/// - nesting deeper than ``maximumDepth`` is rejected.
///
/// Known leniencies of json-c's strict mode that are kept: a number may end in
/// `.` (`1.`) and strings may contain raw control characters (a raw newline
/// cannot reach the parser through the line framing anyway). A key that appears
/// twice keeps its last value.
///
/// Errors are ``ProtocolError`` with code ``ErrorCode/badRequest`` and a message
/// with the position and json-c's reason, for example
/// `invalid JSON at byte 8: unexpected character` (lenient mode gives line and column).
public enum JSONParser {
    /// The grammar to accept.
    public enum Mode: Sendable, Hashable {
        /// Standard JSON: the control protocol and task directives.
        case strict
        /// JSON with comments: configuration files.
        case lenient
    }

    /// The deepest nesting of arrays and objects accepted.
    public static let maximumDepth = 64

    /// Parses the whole of `bytes` as one JSON value.
    public static func parse(_ bytes: UnsafeRawBufferPointer, mode: Mode) throws(ProtocolError) -> JSONValue {
        guard let root = try parseToJSONC(bytes, mode: mode) else { return .null }
        return try root.value()
    }

    /// Parses the whole of `bytes` as one JSON value (without copying when the
    /// collection has contiguous storage, as `[UInt8]` and `ArraySlice` have).
    @inlinable
    public static func parse(_ bytes: some Collection<UInt8>, mode: Mode) throws(ProtocolError) -> JSONValue {
        try withContiguousBytes(bytes) { (buffer) throws(ProtocolError) -> JSONValue in
            try parse(buffer, mode: mode)
        }
    }

    /// Parses the whole of `text` as one JSON value.
    public static func parse(_ text: String, mode: Mode) throws(ProtocolError) -> JSONValue {
        try withContiguousBytes(of: text) { (buffer) throws(ProtocolError) -> JSONValue in
            try parse(buffer, mode: mode)
        }
    }

    /// Parses with json-c and applies the checks json-c lacks; `nil` is JSON `null`.
    static func parseToJSONC(_ bytes: UnsafeRawBufferPointer, mode: Mode) throws(ProtocolError) -> JSONCObject? {
        let count = bytes.count
        guard count < Int(Int32.max), let base = bytes.baseAddress else {
            if count == 0 {
                throw failure(bytes, offset: 0, mode: mode, reason: describe(json_tokener_error_parse_eof))
            }
            throw ProtocolError(.tooLarge, "JSON text of \(count) bytes is too large to parse")
        }
        guard let tokener = json_tokener_new_ex(Int32(maximumDepth)) else {
            throw ProtocolError(.internal, "json-c could not allocate a tokener")
        }
        defer { json_tokener_free(tokener) }
        var flags = JSON_TOKENER_VALIDATE_UTF8
        if mode == .strict { flags |= JSON_TOKENER_STRICT }
        json_tokener_set_flags(tokener, flags)

        var pointer = json_tokener_parse_ex(tokener, base.assumingMemoryBound(to: CChar.self), Int32(count))
        var error = json_tokener_get_error(tokener)
        var end = Int(json_tokener_get_parse_end(tokener))
        if error == json_tokener_continue {
            // A value with no end of its own (a top-level number) needs the final NUL,
            // which tells json-c that the input is complete.
            pointer = json_tokener_parse_ex(tokener, "", 1)
            error = json_tokener_get_error(tokener)
            end = count
        }
        guard error == json_tokener_success else {
            if let pointer { json_object_put(pointer) }
            throw failure(bytes, offset: end, mode: mode, reason: describe(error))
        }
        let root = pointer.map { JSONCObject(adopting: $0) }
        let trailing = JSONSourceCheck.skipInsignificant(bytes, from: end, mode: mode)
        guard trailing == count else {
            throw failure(bytes, offset: trailing, mode: mode, reason: "unexpected characters after the value")
        }
        try JSONSourceCheck.check(bytes, mode: mode)
        return root
    }

    private static func describe(_ error: json_tokener_error) -> String {
        guard let text = json_tokener_error_desc(error) else { return "unknown error" }
        return String(cString: text)
    }

    private static func failure(
        _ bytes: UnsafeRawBufferPointer, offset: Int, mode: Mode, reason: String
    ) -> ProtocolError {
        switch mode {
        case .strict:
            return .badRequest("invalid JSON at byte \(offset): \(reason)")
        case .lenient:
            var line = 1
            var column = 1
            for byte in bytes.prefix(offset) {
                if byte == UInt8(ascii: "\n") {
                    line += 1
                    column = 1
                } else if byte & 0xC0 != 0x80 {
                    column += 1
                }
            }
            return .badRequest("invalid JSON at line \(line), column \(column) (byte \(offset)): \(reason)")
        }
    }
}
