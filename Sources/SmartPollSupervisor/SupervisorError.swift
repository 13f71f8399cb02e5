/// The one error type of the `SmartPollSupervisor` module: a code a caller can branch on and a
/// message in plain sentences for the operator.
public struct SupervisorError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What went wrong, as an extensible set of codes.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        static func named(_ name: String) -> Code { Code(name) }

        /// No configuration file was given or found (exit status 78, EX_CONFIG).
        public static let configurationNotFound = Code("configurationNotFound")
        /// The configuration file could not be read, or is invalid (exit status 78).
        public static let invalidConfiguration = Code("invalidConfiguration")
        /// A task's process could not be started.
        public static let spawnFailed = Code("spawnFailed")

        public var description: String { name }
    }

    public var code: Code
    /// One line per problem; a configuration error lists every problem found, each as
    /// `FILE: KEY.PATH: reason`.
    public var message: String

    public init(code: Code, message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}

extension SupervisorError.Code {
    /// A system call failed where the supervisor cannot go on without it.
    public static let system = SupervisorError.Code.named("system")
}

extension SupervisorError {
    /// `epoll_wait: Bad file descriptor`.
    static func system(_ call: String, _ number: Int32) -> SupervisorError {
        SupervisorError(code: .system, message: "\(call): \(ConfigurationFile.errorText(number))")
    }
}
