/// A JSON object: key/value pairs in insertion order.
///
/// Order matters because the protocol's replies have a fixed key order and
/// configuration errors should be reported in file order.
///
/// - Important: Keys are unique. The parser keeps the last value of a key that
///   appears twice (json-c's behaviour), at the position of its first appearance;
///   ``subscript(_:)`` replaces in place; ``append(_:_:)`` does not check.
/// - Complexity: Lookup by key is O(n); objects of the protocol are small. Iterate
///   ``pairs`` for large objects.
public struct JSONObject: Sendable, Hashable {
    /// The members, in order.
    public var pairs: [(key: String, value: JSONValue)]

    /// An empty object.
    public init() { pairs = [] }

    /// An object with these members in this order.
    public init(_ pairs: [(key: String, value: JSONValue)]) { self.pairs = pairs }

    /// An object with these members in this order: `JSONObject(["a": 1, "b": true])`.
    public init(_ pairs: KeyValuePairs<String, JSONValue>) {
        self.pairs = pairs.map { (key: $0.key, value: $0.value) }
    }

    /// The keys, in order.
    public var keys: [String] { pairs.map { $0.key } }

    /// The number of members.
    public var count: Int { pairs.count }

    /// Whether there are no members.
    public var isEmpty: Bool { pairs.isEmpty }

    /// The value for `key`; setting replaces the value in place or appends a new
    /// member, setting `nil` removes the member.
    public subscript(key: String) -> JSONValue? {
        get {
            for pair in pairs where pair.key == key { return pair.value }
            return nil
        }
        set {
            if let index = pairs.firstIndex(where: { $0.key == key }) {
                if let newValue { pairs[index].value = newValue } else { pairs.remove(at: index) }
            } else if let newValue {
                pairs.append((key: key, value: newValue))
            }
        }
    }

    /// Appends a member without checking for an existing one with the same key.
    public mutating func append(_ key: String, _ value: JSONValue) {
        pairs.append((key: key, value: value))
    }

    public static func == (left: JSONObject, right: JSONObject) -> Bool {
        guard left.pairs.count == right.pairs.count else { return false }
        for (l, r) in zip(left.pairs, right.pairs) where l.key != r.key || l.value != r.value {
            return false
        }
        return true
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(pairs.count)
        for pair in pairs {
            hasher.combine(pair.key)
            hasher.combine(pair.value)
        }
    }
}

extension JSONObject: ExpressibleByDictionaryLiteral {
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        pairs = elements.map { (key: $0.0, value: $0.1) }
    }
}
