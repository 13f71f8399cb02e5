import SmartPollProtocol

/// A key path in a configuration file, printed as operators write it: `tasks.weather1.every`,
/// with a name that holds a dot or space quoted (`tasks."a.b".every`), and `command[2]` for
/// array elements.
struct ConfigurationPath: CustomStringConvertible, Sendable {
    private var text: String

    static let root = ConfigurationPath(text: "")

    func key(_ name: String) -> ConfigurationPath {
        let plain =
            !name.isEmpty
            && name.utf8.allSatisfy { byte in
                byte > 0x20 && byte < 0x7F && byte != UInt8(ascii: ".") && byte != UInt8(ascii: "\"")
                    && byte != UInt8(ascii: "[")
            }
        let component = plain ? name : JSONValue.string(name).serialized()
        return ConfigurationPath(text: text.isEmpty ? component : text + "." + component)
    }

    func index(_ position: Int) -> ConfigurationPath {
        ConfigurationPath(text: text + "[\(position)]")
    }

    var description: String { text.isEmpty ? "(top level)" : text }
}

/// Reads typed values out of a parsed configuration and collects every problem, each as
/// `FILE: KEY.PATH: reason`, so that one `--check` reports them all.
struct ConfigurationReader {
    let file: String
    private(set) var problems: [String] = []

    init(file: String) {
        self.file = file
    }

    mutating func problem(_ path: ConfigurationPath, _ reason: String) {
        problems.append("\(file): \(path): \(reason)")
    }

    /// Reports every key of `object` that is not in `known`, with the known ones listed.
    mutating func rejectUnknownKeys(_ object: JSONObject, at path: ConfigurationPath, known: [String]) {
        for key in object.keys where !known.contains(key) {
            let suggestion = Suggestion.closest(to: key, among: known).map { " (did you mean \"\($0)\"?)" } ?? ""
            problem(path.key(key), "unknown key\(suggestion); expected one of \(known.joined(separator: ", "))")
        }
    }

    mutating func object(_ value: JSONValue, at path: ConfigurationPath) -> JSONObject? {
        guard case .object(let object) = value else {
            problem(path, "expected an object, got \(value.shortDescription)")
            return nil
        }
        return object
    }

    /// A string without NUL bytes (they cannot reach a C API); `nonEmpty` rejects "".
    mutating func string(_ value: JSONValue, at path: ConfigurationPath, nonEmpty: Bool = false) -> String? {
        guard case .string(let text) = value else {
            problem(path, "expected a string, got \(value.shortDescription)")
            return nil
        }
        if nonEmpty && text.isEmpty {
            problem(path, "must not be empty")
            return nil
        }
        if text.utf8.contains(0) {
            problem(path, "must not contain a NUL character")
            return nil
        }
        return text
    }

    mutating func stringArray(_ value: JSONValue, at path: ConfigurationPath, nonEmpty: Bool) -> [String]? {
        guard case .array(let elements) = value else {
            problem(path, "expected an array of strings, got \(value.shortDescription)")
            return nil
        }
        if nonEmpty && elements.isEmpty {
            problem(path, "must not be empty")
            return nil
        }
        var strings: [String] = []
        var valid = true
        for (position, element) in elements.enumerated() {
            if let text = string(element, at: path.index(position)) { strings.append(text) } else { valid = false }
        }
        return valid ? strings : nil
    }

    /// A whole number in `range`.
    mutating func integer(_ value: JSONValue, at path: ConfigurationPath, in range: ClosedRange<Int64>) -> Int? {
        guard case .int(let number) = value else {
            problem(path, "expected a whole number, got \(value.shortDescription)")
            return nil
        }
        guard range.contains(number) else {
            let upper = range.upperBound == .max ? "" : " and at most \(range.upperBound)"
            problem(path, "must be at least \(range.lowerBound)\(upper), got \(number)")
            return nil
        }
        return Int(number)
    }

    mutating func number(_ value: JSONValue, at path: ConfigurationPath, atLeast minimum: Double) -> Double? {
        guard let number = value.doubleValue else {
            problem(path, "expected a number, got \(value.shortDescription)")
            return nil
        }
        guard number >= minimum, number.isFinite else {
            problem(path, "must be at least \(minimum), got \(value.shortDescription)")
            return nil
        }
        return number
    }

    enum DurationRule {
        case positive, nonNegative, any

        var phrase: String {
            switch self {
            case .positive: return "greater than zero"
            case .nonNegative: return "zero or more"
            case .any: return ""
            }
        }
    }

    /// A duration: a string such as `"1m30s"` or a number of seconds.
    mutating func duration(_ value: JSONValue, at path: ConfigurationPath, _ rule: DurationRule) -> Duration? {
        let duration: Duration
        do {
            duration = try DurationFormat.decode(value)
        } catch {
            problem(
                path,
                error.message + " (durations look like \"250ms\", \"10s\", \"1m30s\", \"2h\", or a number of seconds)")
            return nil
        }
        let valid: Bool
        switch rule {
        case .positive: valid = duration > .zero
        case .nonNegative: valid = duration >= .zero
        case .any: valid = true
        }
        guard valid else {
            problem(path, "must be \(rule.phrase), got \(DurationFormat.format(duration))")
            return nil
        }
        return duration
    }

    /// A task or hook name: 1 to 128 characters from letters, digits and `_ - . : @`, so that
    /// names are safe in tables, log lines, environment values and shell completions.
    mutating func name(_ name: String, at path: ConfigurationPath) -> Bool {
        let allowed =
            !name.isEmpty && name.utf8.count <= 128
            && name.utf8.allSatisfy { byte in
                (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z"))
                    || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
                    || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
                    || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-") || byte == UInt8(ascii: ".")
                    || byte == UInt8(ascii: ":") || byte == UInt8(ascii: "@")
            }
        if !allowed {
            problem(path, "invalid name; use 1 to 128 letters, digits and _ - . : @")
        }
        return allowed
    }

    /// An `env` object: names without `=` or NUL, string values, in file order.
    mutating func environment(_ value: JSONValue, at path: ConfigurationPath) -> [EnvironmentVariable]? {
        guard let object = object(value, at: path) else { return nil }
        var variables: [EnvironmentVariable] = []
        for (name, value) in object.pairs {
            let variablePath = path.key(name)
            if name.isEmpty || name.contains("=") || name.utf8.contains(0) {
                problem(variablePath, "invalid environment variable name (empty, or holds = or NUL)")
                continue
            }
            if let text = string(value, at: variablePath) {
                variables.append(EnvironmentVariable(name: name, value: text))
            }
        }
        return variables
    }
}
