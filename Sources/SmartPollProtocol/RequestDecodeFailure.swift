/// Why a request line could not be decoded, with what is needed to answer it.
///
/// The error reply echoes ``id`` (`null` when the id could not be read: the line
/// was not JSON, not an object, or its `id` was not a scalar).
public struct RequestDecodeFailure: Error, Sendable, Hashable {
    /// The error to send back.
    public var error: ProtocolError
    /// The request's id, when it could be read.
    public var id: JSONValue?

    public init(error: ProtocolError, id: JSONValue?) {
        self.error = error
        self.id = id
    }

    /// The error reply for this failure.
    public var reply: Reply { Reply(id: id ?? .null, body: .failure(error)) }
}
