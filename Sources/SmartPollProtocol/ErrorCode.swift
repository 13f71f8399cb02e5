/// The error codes of the control protocol (SPEC section 5), as they appear in
/// `{"ok":false,"error":{"code":...}}`.
///
/// - Important: The raw values are part of the wire contract and never change.
public enum ErrorCode: String, Sendable, Hashable, CaseIterable {
    /// Not JSON, not an object, or a missing, mistyped or unknown field.
    case badRequest = "bad_request"
    /// The `cmd` names no command of the protocol.
    case unknownCommand = "unknown_command"
    /// The request names a task the supervisor does not have.
    case unknownTask = "unknown_task"
    /// The request names an event hook the supervisor does not have.
    case unknownHook = "unknown_hook"
    /// A field has the right type but an unacceptable value (a bad duration or time,
    /// `after` together with `at`, ...).
    case invalidArgument = "invalid_argument"
    /// The loop's state forbids the request.
    case notRunning = "not_running"
    /// The task is paused: `run` cannot start it (resume it first).
    case paused = "paused"
    /// A standby member of a cluster refuses a command that changes the loop's state; the
    /// message (and the error's `leader`) names the leader.
    case notLeader = "not_leader"
    /// A line or a value exceeds a limit.
    case tooLarge = "too_large"
    /// The peer is not allowed to talk to the supervisor.
    case permissionDenied = "permission_denied"
    /// The connection limit is reached.
    case busy = "busy"
    /// The supervisor is shutting down.
    case shuttingDown = "shutting_down"
    /// A bug or an unexpected failure inside the supervisor.
    case `internal` = "internal"
}
