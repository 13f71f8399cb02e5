/// How a child process ended: an expected outcome, not an error.
public enum TerminationStatus: Hashable, Sendable, CustomStringConvertible {
    /// The process called `exit` with this code (0 is success).
    case exited(Int32)
    /// A signal with this number killed the process.
    case signaled(Int32)

    /// Whether the process exited with code 0.
    public var isSuccess: Bool { self == .exited(0) }

    /// The exit code, or nil when a signal ended the process.
    public var exitCode: Int? {
        if case .exited(let code) = self { return Int(code) }
        return nil
    }

    /// The signal that ended the process, or nil when it exited.
    public var signal: Int? {
        if case .signaled(let number) = self { return Int(number) }
        return nil
    }

    public var description: String {
        switch self {
        case .exited(let code): "exited with code \(code)"
        case .signaled(let signal): "killed by signal \(signal)"
        }
    }
}
