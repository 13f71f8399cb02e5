/// How a child process ended: an expected outcome, not an error.
public enum TerminationStatus: Hashable, Sendable, CustomStringConvertible {
    /// The process called `exit` with this code (0 is success).
    case exited(Int32)
    /// A signal with this number killed the process.
    case signaled(Int32)

    /// Whether the process exited with code 0.
    public var isSuccess: Bool { self == .exited(0) }

    public var description: String {
        switch self {
        case .exited(let code): "exited with code \(code)"
        case .signaled(let signal): "killed by signal \(signal)"
        }
    }
}
