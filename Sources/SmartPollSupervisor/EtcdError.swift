/// Why a call of ``EtcdClient`` failed.
enum EtcdError: Error, Equatable, CustomStringConvertible {
    /// No endpoint could be reached (connection refused, name not resolved, reset...): curl's text.
    case connection(String)
    /// The request took longer than the client's request timeout (a frozen or partitioned etcd).
    case timeout
    /// etcd (through its gateway) refused the request: gRPC `code` and its message, as in
    /// `{"error": "...", "code": N}`; `status` is the HTTP status (0 inside a stream).
    case gateway(code: Int, message: String, status: Int)
    /// An HTTP status other than 200 without a gateway error body.
    case httpStatus(Int)
    /// A reply that is not what the gateway sends.
    case malformedReply(String)
    /// A watch's stream ended (etcd closed it, or the connection dropped).
    case streamEnded

    /// gRPC's NOT_FOUND: a lease that no longer exists, for one.
    static let codeNotFound = 5
    /// gRPC's OUT_OF_RANGE: a revision compacted away.
    static let codeOutOfRange = 11

    var description: String {
        switch self {
        case .connection(let reason): "cannot reach etcd: \(reason)"
        case .timeout: "etcd did not answer in time"
        case .gateway(let code, let message, _): "etcd: \(message) (code \(code))"
        case .httpStatus(let status): "etcd's gateway answered HTTP \(status)"
        case .malformedReply(let reason): "unexpected reply from etcd: \(reason)"
        case .streamEnded: "etcd's watch stream ended"
        }
    }
}
