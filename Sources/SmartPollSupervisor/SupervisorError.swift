import Glibc

/// The one error type of `SmartPollSupervisor`: an extensible code and a message
/// in plain sentences, for example `cannot run "/nonexistent": No such file or directory`.
public struct SupervisorError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What went wrong, as an extensible set of codes.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }

        /// A child process could not be started: the program is missing or not
        /// executable, the request is malformed, or a resource ran out.
        public static let spawnFailed = Code("spawnFailed")
        /// A system call on a descriptor or process the supervisor owns failed
        /// (creating a pipe, waiting for or signalling a child).
        public static let systemCallFailed = Code("systemCallFailed")

        public var description: String { name }
    }

    public var code: Code
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
