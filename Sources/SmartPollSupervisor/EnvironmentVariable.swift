/// One `NAME=value` a configuration adds to a child's environment. Values may hold any text,
/// `=` and newlines included; names may not be empty or hold `=` or NUL.
public struct EnvironmentVariable: Sendable, Hashable {
    public var name: String
    public var value: String

    public init(name: String, value: String) {
        self.name = name
        self.value = value
    }
}
