/// A JSON value as the protocol sees it.
///
/// Integers and fractional numbers are distinct: a literal without `.`, `e` or `E`
/// is ``int(_:)`` (always within `Int64`; ``JSONParser`` rejects larger literals),
/// anything else is ``double(_:)`` (always finite).
/// Objects keep their keys in insertion order (see ``JSONObject``).
///
/// - Important: Equality is structural and order-sensitive for objects, and
///   `.int(1) != .double(1.0)`.
public enum JSONValue: Sendable, Hashable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)

    /// The string, if this is a string.
    public var stringValue: String? {
        if case .string(let value) = self { return value }
        return nil
    }

    /// The integer, if this is an integer (a fractional number gives `nil`).
    public var int64Value: Int64? {
        if case .int(let value) = self { return value }
        return nil
    }

    /// The number as a `Double`, if this is an integer or a fractional number.
    public var doubleValue: Double? {
        switch self {
        case .int(let value): return Double(value)
        case .double(let value): return value
        default: return nil
        }
    }

    /// The Boolean, if this is `true` or `false`.
    public var boolValue: Bool? {
        if case .bool(let value) = self { return value }
        return nil
    }

    /// The object, if this is an object.
    public var objectValue: JSONObject? {
        if case .object(let value) = self { return value }
        return nil
    }

    /// The elements, if this is an array.
    public var arrayValue: [JSONValue]? {
        if case .array(let value) = self { return value }
        return nil
    }

    /// Whether this is `null`.
    public var isNull: Bool {
        if case .null = self { return true }
        return false
    }

    /// Whether this is a scalar (null, Boolean, number or string): what a request `id` may be.
    public var isScalar: Bool {
        switch self {
        case .array, .object: return false
        case .null, .bool, .int, .double, .string: return true
        }
    }

    /// A short description of the value for error messages: `true`, `5`,
    /// `"abc"` (long strings shortened), `an array`, `an object`, `null`.
    public var shortDescription: String {
        switch self {
        case .null: return "null"
        case .bool(let value): return value ? "true" : "false"
        case .int, .double: return serialized()
        case .string(let value):
            if value.utf8.count <= 40 { return JSONValue.string(value).serialized() }
            return JSONValue.string(String(value.prefix(37)) + "...").serialized()
        case .array: return "an array"
        case .object: return "an object"
        }
    }
}

extension JSONValue: ExpressibleByNilLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral, ExpressibleByStringLiteral,
    ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral
{
    public init(nilLiteral: ()) { self = .null }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(integerLiteral value: Int64) { self = .int(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
    public init(stringLiteral value: String) { self = .string(value) }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self = .object(JSONObject(elements.map { (key: $0.0, value: $0.1) }))
    }
}
