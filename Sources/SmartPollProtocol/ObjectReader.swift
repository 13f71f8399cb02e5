/// Reads the members of a JSON object, with errors that name the field.
///
/// Type errors are ``ErrorCode/badRequest`` (`field "task": expected a string,
/// got 5`); a bad duration or time is ``ErrorCode/invalidArgument``.
/// For optional members, `null` means the same as a missing member.
struct ObjectReader {
    let object: JSONObject
    /// Prefix of field names in messages, such as `tasks[0].`; empty at the top.
    let path: String

    init(_ object: JSONObject, path: String = "") {
        self.object = object
        self.path = path
    }

    func fieldName(_ key: String) -> String { path + key }

    private func mistyped(_ key: String, _ expected: String, _ value: JSONValue) -> ProtocolError {
        ProtocolError.badRequest("expected \(expected), got \(value.shortDescription)").inField(fieldName(key))
    }

    func missing(_ key: String) -> ProtocolError {
        .badRequest("missing field \"\(fieldName(key))\"")
    }

    /// The member, or `nil` when it is missing or `null`.
    func optionalValue(_ key: String) -> JSONValue? {
        guard let value = object[key], !value.isNull else { return nil }
        return value
    }

    func value(_ key: String) throws(ProtocolError) -> JSONValue {
        guard let value = object[key] else { throw missing(key) }
        return value
    }

    func string(_ key: String) throws(ProtocolError) -> String {
        let value = try value(key)
        guard case .string(let text) = value else { throw mistyped(key, "a string", value) }
        return text
    }

    func optionalString(_ key: String) throws(ProtocolError) -> String? {
        guard let value = optionalValue(key) else { return nil }
        guard case .string(let text) = value else { throw mistyped(key, "a string or null", value) }
        return text
    }

    func bool(_ key: String) throws(ProtocolError) -> Bool {
        let value = try value(key)
        guard case .bool(let flag) = value else { throw mistyped(key, "true or false", value) }
        return flag
    }

    func bool(_ key: String, default defaultValue: Bool) throws(ProtocolError) -> Bool {
        guard let value = optionalValue(key) else { return defaultValue }
        guard case .bool(let flag) = value else { throw mistyped(key, "true or false", value) }
        return flag
    }

    func int(_ key: String) throws(ProtocolError) -> Int {
        let value = try value(key)
        guard case .int(let number) = value else { throw mistyped(key, "an integer", value) }
        return Int(number)
    }

    func optionalInt(_ key: String) throws(ProtocolError) -> Int? {
        guard let value = optionalValue(key) else { return nil }
        guard case .int(let number) = value else { throw mistyped(key, "an integer or null", value) }
        return Int(number)
    }

    /// A number, integer or fractional.
    func double(_ key: String) throws(ProtocolError) -> Double {
        let value = try value(key)
        guard let number = value.doubleValue else { throw mistyped(key, "a number", value) }
        return number
    }

    /// A number, or nil when the key is absent or null.
    func optionalDouble(_ key: String) throws(ProtocolError) -> Double? {
        guard let value = optionalValue(key) else { return nil }
        guard let number = value.doubleValue else { throw mistyped(key, "a number or null", value) }
        return number
    }

    func timestamp(_ key: String) throws(ProtocolError) -> Timestamp {
        let value = try value(key)
        guard case .string(let text) = value else { throw mistyped(key, "a time string", value) }
        do {
            return try Timestamp.parse(text)
        } catch {
            throw error.inField(fieldName(key))
        }
    }

    func optionalTimestamp(_ key: String) throws(ProtocolError) -> Timestamp? {
        guard let value = optionalValue(key) else { return nil }
        guard case .string = value else { throw mistyped(key, "a time string or null", value) }
        return try timestamp(key)
    }

    func optionalStringArray(_ key: String) throws(ProtocolError) -> [String]? {
        guard let value = optionalValue(key) else { return nil }
        guard case .array(let elements) = value else { throw mistyped(key, "an array of strings", value) }
        var strings: [String] = []
        strings.reserveCapacity(elements.count)
        for (index, element) in elements.enumerated() {
            guard case .string(let text) = element else {
                throw ProtocolError.badRequest("expected a string, got \(element.shortDescription)")
                    .inField("\(fieldName(key))[\(index)]")
            }
            strings.append(text)
        }
        return strings
    }

    func object(_ key: String) throws(ProtocolError) -> ObjectReader {
        let value = try value(key)
        guard case .object(let member) = value else { throw mistyped(key, "an object", value) }
        return ObjectReader(member, path: fieldName(key) + ".")
    }

    func optionalObject(_ key: String) throws(ProtocolError) -> ObjectReader? {
        guard let value = optionalValue(key) else { return nil }
        guard case .object(let member) = value else { throw mistyped(key, "an object or null", value) }
        return ObjectReader(member, path: fieldName(key) + ".")
    }

    /// Throws for the first member whose key is not in `allowed`.
    func rejectUnknownKeys(allowed: [String], context: String) throws(ProtocolError) {
        for pair in object.pairs where !allowed.contains(pair.key) {
            throw .badRequest("unknown field \(JSONValue.string(fieldName(pair.key)).shortDescription) \(context)")
        }
    }
}
