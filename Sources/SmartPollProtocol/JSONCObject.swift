import CJSONC

/// An owned reference to a json-c value (`json_object*`).
///
/// json-c values are reference counted: a value returned by the tokener belongs
/// to the caller, while a child returned by a lookup (`json_object_object_get_ex`,
/// `json_object_array_get_idx`) is *borrowed* from its parent and dies with it.
/// This class holds exactly one reference: ``init(adopting:)`` takes over an
/// owned one, ``init(retaining:)`` takes a new one (`json_object_get`) on a
/// borrowed pointer, and `deinit` gives it back (`json_object_put`). So a child
/// wrapped by ``member(_:)`` or ``element(at:)`` stays valid after its parent
/// wrapper is gone.
///
/// JSON `null` is a NULL pointer in json-c, so it has no wrapper: lookups return
/// `nil` for it, as they do for a missing member.
///
/// - Important: Not thread-safe (json-c's reference counts are not atomic unless
///   built so); keep an instance on one thread. Only this module uses json-c.
final class JSONCObject {
    let pointer: OpaquePointer

    /// Takes over a reference the caller owns.
    init(adopting pointer: OpaquePointer) {
        self.pointer = pointer
    }

    /// Takes a new reference on a borrowed pointer.
    init(retaining pointer: OpaquePointer) {
        json_object_get(pointer)
        self.pointer = pointer
    }

    deinit {
        json_object_put(pointer)
    }

    /// json-c's type of the value.
    var type: json_type { json_object_get_type(pointer) }

    /// The member named `key` of an object, retained; `nil` when missing, `null`,
    /// or when this is not an object.
    func member(_ key: String) -> JSONCObject? {
        guard json_object_is_type(pointer, json_type_object) != 0 else { return nil }
        var child: OpaquePointer?
        guard json_object_object_get_ex(pointer, key, &child) != 0, let child else { return nil }
        return JSONCObject(retaining: child)
    }

    /// The number of elements of an array (0 for anything else).
    var elementCount: Int {
        guard json_object_is_type(pointer, json_type_array) != 0 else { return 0 }
        return Int(json_object_array_length(pointer))
    }

    /// The element at `index` of an array, retained; `nil` for `null`, an index
    /// out of range, or when this is not an array.
    func element(at index: Int) -> JSONCObject? {
        guard index >= 0, index < elementCount,
            let child = json_object_array_get_idx(pointer, index)
        else { return nil }
        return JSONCObject(retaining: child)
    }

    /// The bytes of a string value, copied out with their length (so an embedded
    /// NUL from `\u0000` is kept); `nil` when this is not a string.
    var stringBytes: [UInt8]? {
        guard json_object_is_type(pointer, json_type_string) != 0 else { return nil }
        return JSONCObject.copyString(pointer)
    }

    /// The whole value converted to a ``JSONValue``.
    ///
    /// - Throws: ``ErrorCode/badRequest`` for a non-finite number (json-c accepts
    ///   `NaN`, `Infinity` and overflowing literals such as `1e400`).
    func value() throws(ProtocolError) -> JSONValue {
        try JSONCObject.convert(pointer)
    }

    private static func copyString(_ pointer: OpaquePointer) -> [UInt8] {
        let length = Int(json_object_get_string_len(pointer))
        guard length > 0, let start = json_object_get_string(pointer) else { return [] }
        return UnsafeRawBufferPointer(start: start, count: length).map { $0 }
    }

    private static let invalidUTF8 = ProtocolError.badRequest("invalid JSON: a string is not valid UTF-8")

    /// Converts a borrowed pointer (valid while its root is alive) recursively.
    /// Recursion depth is bounded by the tokener's depth limit.
    private static func convert(_ pointer: OpaquePointer?) throws(ProtocolError) -> JSONValue {
        guard let pointer else { return .null }
        switch json_object_get_type(pointer) {
        case json_type_null:
            return .null
        case json_type_boolean:
            return .bool(json_object_get_boolean(pointer) != 0)
        case json_type_int:
            // Range is checked on the source text by JSONSourceCheck: json-c clamps.
            return .int(json_object_get_int64(pointer))
        case json_type_double:
            let number = json_object_get_double(pointer)
            guard number.isFinite else {
                throw .badRequest("invalid JSON: number out of range (not a finite double)")
            }
            return .double(number)
        case json_type_string:
            let length = Int(json_object_get_string_len(pointer))
            guard length > 0, let start = json_object_get_string(pointer) else { return .string("") }
            let buffer = UnsafeRawBufferPointer(start: start, count: length)
            // json-c's JSON_TOKENER_VALIDATE_UTF8 misses overlong forms, encoded
            // surrogates and truncated sequences, so validate here (it is also the copy).
            guard let text = String(validating: buffer, as: UTF8.self) else { throw invalidUTF8 }
            return .string(text)
        case json_type_array:
            let count = Int(json_object_array_length(pointer))
            var elements: [JSONValue] = []
            elements.reserveCapacity(count)
            for index in 0..<count {
                elements.append(try convert(json_object_array_get_idx(pointer, index)))
            }
            return .array(elements)
        case json_type_object:
            var pairs: [(key: String, value: JSONValue)] = []
            pairs.reserveCapacity(Int(json_object_object_length(pointer)))
            var iterator = json_object_iter_begin(pointer)
            var end = json_object_iter_end(pointer)
            while json_object_iter_equal(&iterator, &end) == 0 {
                guard let name = String(validatingCString: json_object_iter_peek_name(&iterator)) else {
                    throw invalidUTF8
                }
                let child = json_object_iter_peek_value(&iterator)
                pairs.append((key: name, value: try convert(child)))
                json_object_iter_next(&iterator)
            }
            return .object(JSONObject(pairs))
        default:
            throw ProtocolError(.internal, "json-c returned a value of unknown type")
        }
    }
}
