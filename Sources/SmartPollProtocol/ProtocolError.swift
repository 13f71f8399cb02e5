/// The one error type of `SmartPollProtocol`: a wire error code and a message in
/// plain sentences that names the offending field or input, for example
/// `field "after": expected a duration string or number, got true`.
///
/// It is what an error reply carries (`{"code":...,"message":...}`), so every
/// failure of this module can be sent back to a client as is.
/// JSON syntax errors use ``ErrorCode/badRequest``.
public struct ProtocolError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The machine-readable code.
    public var code: ErrorCode
    /// A human-readable sentence, without a trailing newline.
    public var message: String
    /// With ``ErrorCode/notLeader``: the leading member's node name, when one is known (written
    /// as the error object's `leader`).
    public var leader: String?

    public init(_ code: ErrorCode, _ message: String) {
        self.code = code
        self.message = message
    }

    /// `not_leader`: a standby refuses a command that changes the loop's state.
    public static func notLeader(_ message: String, leader: String?) -> ProtocolError {
        var error = ProtocolError(.notLeader, message)
        error.leader = leader
        return error
    }

    public init(code: ErrorCode, message: String) {
        self.code = code
        self.message = message
    }

    /// `code: message`, the form `smartpollctl` prints after its own name.
    public var description: String { "\(code.rawValue): \(message)" }

    static func badRequest(_ message: String) -> ProtocolError {
        ProtocolError(.badRequest, message)
    }

    static func invalidArgument(_ message: String) -> ProtocolError {
        ProtocolError(.invalidArgument, message)
    }

    /// The same error with `field "name": ` in front of the message.
    func inField(_ name: String) -> ProtocolError {
        ProtocolError(code, "field \"\(name)\": \(message)")
    }
}

/// The error thrown by ``JSONParser``: the module has one error type, so this is
/// ``ProtocolError`` (always with code ``ErrorCode/badRequest``).
public typealias JSONParseError = ProtocolError
