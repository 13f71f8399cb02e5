/// The one error type of the `SmartPoll` module, for the mistakes a caller can recover from.
/// Errors thrown by tasks and hooks are passed through unchanged.
public struct SchedulerError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What went wrong, as an extensible set of codes.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }

        /// `run()` was called while another call to `run()` on the same scheduler is in progress.
        public static let alreadyRunning = Code("alreadyRunning")
        /// The scheduler was built without tasks, or with an invalid task name.
        public static let invalidConfiguration = Code("invalidConfiguration")

        public var description: String { name }
    }

    public var code: Code
    public var message: String

    public init(code: Code, message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }
}
