/// A request of the control protocol: `{"id": <scalar>, "cmd": "<name>", ...arguments}`.
///
/// Decoding rules (the error codes are SPEC section 5's):
/// - not JSON, not an object, a missing or mistyped field, an `id` that is an
///   array or object, or a key that is neither `id`, `cmd` nor an argument of
///   the command: ``ErrorCode/badRequest`` (unknown keys are rejected so that a
///   typo such as `"soner"` is not silently ignored);
/// - a `cmd` that names no command: ``ErrorCode/unknownCommand``;
/// - a bad duration or time, both or neither of `after` and `at`, `sooner`
///   without a positive `after` or a time: ``ErrorCode/invalidArgument``.
///
/// Optional arguments (`tasks`, `data`, `wait`, `sooner`) may be `null`, which
/// means the same as leaving them out. Duplicate keys: the last one wins (json-c).
public struct Request: Sendable, Hashable {
    /// The client's id, echoed in the reply; any scalar. `nil` when the request
    /// had none (the reply then carries `"id":null`).
    public var id: JSONValue?
    /// What the client asks for.
    public var command: Command

    public init(id: JSONValue? = nil, command: Command) {
        precondition(id?.isScalar ?? true, "a request id must be a scalar")
        self.id = id
        self.command = command
    }

    /// Decodes one request line (without its newline), strictly.
    ///
    /// - Parameter defaultTask: The task to assume when a command that takes a
    ///   task has no `task` member (task directives); `nil` makes it required.
    @inlinable
    public static func decode(
        _ line: some Collection<UInt8>, defaultTask: String? = nil
    ) -> Result<Request, RequestDecodeFailure> {
        if let request = line.withContiguousStorageIfAvailable({ decodeCommonShape(UnsafeRawBufferPointer($0)) }),
            let request
        {
            return .success(request)
        }
        return decodeParsed(line, defaultTask: defaultTask)
    }

    /// ``decode(_:defaultTask:)`` through json-c always, without the fast path of
    /// ``decodeCommonShape(_:)`` (the tests compare both).
    @inlinable
    static func decodeParsed(
        _ line: some Collection<UInt8>, defaultTask: String? = nil
    ) -> Result<Request, RequestDecodeFailure> {
        let value: JSONValue
        do {
            value = try JSONParser.parse(line, mode: .strict)
        } catch {
            return .failure(RequestDecodeFailure(error: error, id: nil))
        }
        return decode(value, defaultTask: defaultTask)
    }

    /// The request of `line` when it has exactly one of the shapes clients send most, compact and
    /// in ``encoded()``'s order: `{"cmd":"NAME"}` or `{"id":INTEGER,"cmd":"NAME"}` with NAME
    /// `ping`, `status`, `results` or `metrics` (no argument) and INTEGER at most 18 digits, no
    /// leading zero, no `-0`; `nil` for anything else, which goes through json-c. Such a line is
    /// valid JSON whose decoding can only succeed, so both ways give the same request: this one
    /// skips the tokener (with its locale switch), the tree and its conversion, about two thirds
    /// of a `ping`'s instructions in the supervisor.
    ///
    /// - Complexity: O(line), at most 46 bytes read.
    @usableFromInline
    static func decodeCommonShape(_ line: UnsafeRawBufferPointer) -> Request? {
        let count = line.count
        guard count >= 14, count <= 46, line[0] == UInt8(ascii: "{"), line[count - 1] == UInt8(ascii: "}")
        else { return nil }
        var position = 1
        func skip(_ literal: StaticString) -> Bool {
            let length = literal.utf8CodeUnitCount
            guard position + length <= count else { return false }
            for offset in 0..<length where line[position + offset] != literal.utf8Start[offset] { return false }
            position += length
            return true
        }
        var id: JSONValue?
        if skip("\"id\":") {
            let negative = position < count && line[position] == UInt8(ascii: "-")
            if negative { position += 1 }
            let first = position
            var value: Int64 = 0
            while position < count, position - first < 18, line[position] &- UInt8(ascii: "0") < 10 {
                value = value * 10 + Int64(line[position] &- UInt8(ascii: "0"))
                position += 1
            }
            let digits = position - first
            // "0" alone but no other leading zero, no "-0" (json-c may read it as a double).
            guard digits >= 1, digits <= 18, line[first] != UInt8(ascii: "0") || (digits == 1 && !negative),
                skip(",")
            else { return nil }
            id = .int(negative ? -value : value)
        }
        guard skip("\"cmd\":\"") else { return nil }
        let command: Command
        if skip("ping") {
            command = .ping
        } else if skip("status") {
            command = .status(tasks: nil)
        } else if skip("results") {
            command = .results
        } else if skip("metrics") {
            command = .metrics
        } else {
            return nil
        }
        guard skip("\"}"), position == count else { return nil }
        return Request(id: id, command: command)
    }

    /// Decodes one request line given as text.
    public static func decode(_ line: String, defaultTask: String? = nil) -> Result<Request, RequestDecodeFailure> {
        decode(line.utf8, defaultTask: defaultTask)
    }

    /// Decodes a request from a parsed JSON value.
    public static func decode(_ value: JSONValue, defaultTask: String? = nil) -> Result<Request, RequestDecodeFailure> {
        guard case .object(let object) = value else {
            return .failure(
                RequestDecodeFailure(
                    error: .badRequest("a request must be a JSON object, got \(value.shortDescription)"), id: nil))
        }
        var id: JSONValue?
        if let rawId = object["id"] {
            guard rawId.isScalar else {
                return .failure(
                    RequestDecodeFailure(
                        error: .badRequest(
                            "field \"id\": expected a string, number, Boolean or null, got \(rawId.shortDescription)"),
                        id: nil))
            }
            id = rawId
        }
        do {
            let command = try Command.decode(ObjectReader(object), defaultTask: defaultTask)
            return .success(Request(id: id, command: command))
        } catch {
            return .failure(RequestDecodeFailure(error: error, id: id))
        }
    }

    /// The request as one line of compact JSON, without the newline: `id` first
    /// (left out when `nil`), then `cmd`, then the arguments in SPEC order; `nil`
    /// optional arguments are left out, Booleans always written, durations in
    /// ``DurationFormat`` canonical text, times with three fraction digits or, when they are
    /// not a whole millisecond, nine. `decode(encoded())` gives back this request (durations
    /// and times at nanosecond precision).
    public func encoded() -> String {
        var writer = JSONWriter(capacity: 96)
        writer.beginObject()
        if let id {
            writer.key("id")
            writer.value(id)
        }
        command.writeMembers(to: &writer)
        writer.endObject()
        return writer.text
    }
}
