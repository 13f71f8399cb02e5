import Glibc

/// The one error type of the `SmartPollSupervisor` module: an extensible code a caller can
/// branch on and a message in plain sentences for the operator, for example
/// `cannot run "/nonexistent": No such file or directory`.
public struct SupervisorError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What went wrong, as an extensible set of codes.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }

        /// No configuration file was given or found (exit status 78, EX_CONFIG).
        public static let configurationNotFound = Code("configurationNotFound")
        /// The configuration file could not be read, or is invalid (exit status 78).
        public static let invalidConfiguration = Code("invalidConfiguration")
        /// A child process could not be started: the program is missing or not
        /// executable, the request is malformed, or a resource ran out.
        public static let spawnFailed = Code("spawnFailed")
        /// A system call on a descriptor or process the supervisor owns failed
        /// (creating a pipe, waiting for or signalling a child, binding the socket).
        public static let systemCallFailed = Code("systemCallFailed")
        /// The command line is wrong (exit status 64, EX_USAGE).
        public static let usage = Code("usage")
        /// etcd could not be reached or refused a request (a cluster member's state store).
        public static let etcdFailed = Code("etcdFailed")
        /// A write to etcd was refused because its guard on the leadership key failed: this member
        /// no longer leads (the refused transaction changed nothing; the write is not retried).
        public static let leadershipLost = Code("leadershipLost")

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

    public var description: String { "\(code): \(message)" }

    /// `.systemCallFailed` with `call: strerror(errno)` as the message.
    static func systemCall(_ call: String, errno code: Int32) -> SupervisorError {
        SupervisorError(code: .systemCallFailed, message: "\(call): \(errorText(code))")
    }

    /// The C library's text for an errno value, such as `No such file or directory`.
    static func errorText(_ code: Int32) -> String {
        guard let text = strerror(code) else { return "error \(code)" }
        return String(cString: text)
    }
}
