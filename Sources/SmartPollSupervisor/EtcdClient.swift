import CSmartPollOptional
import SmartPollProtocol

/// An etcd v3 client over etcd's JSON gateway (HTTP/1.1 on the client URLs, on by default since
/// etcd 3.4), driven by the supervisor's ``EventLoop`` through ``CurlMultiDriver``.
///
/// Every call returns at once; its completion is called later on the loop's thread with a
/// `Result`, never from inside the call. Each reply carries the store's revision of its header.
/// Bodies are written through the protocol module's writer (``JSONValue/serialized()``) and read
/// with its json-c parser.
///
/// Endpoints: calls go to the endpoint that last worked; one that cannot be connected to
/// (refused, unresolved) is skipped for the next, each endpoint tried once a
/// call. A request that reached an endpoint is never sent again elsewhere (a put may have been
/// applied): its timeout is the caller's ``EtcdError/timeout``, and the next call starts at the
/// next endpoint.
///
/// What etcd 3.4.23's gateway sends, measured with curl:
/// - `/v3/lease/keepalive` with `{"ID": "N"}`: one line `{"result": {"header": {...}, "ID": "N",
///   "TTL": "5"}}`, then the stream ends; a lease that is gone gets no `TTL` (0).
/// - `/v3/watch` with `{"create_request": {...}}`: one JSON object a line (`\n`-terminated),
///   each `{"result": {...}}`: first `"created": true`, then `"events"` (a put has no `type`, a
///   delete `"type": "DELETE"` and a `kv` of key and `mod_revision` only); a compacted start
///   revision: `"canceled": true, "compact_revision": "N"`. An error inside a stream:
///   `{"error": {"grpc_code": N, "http_code": N, "message": "..."}}`.
/// - Errors of unary calls: HTTP 4xx/5xx with `{"error": "...", "message": "...", "code": N}`.
///
/// - Important: Not thread-safe: the loop's thread only. Releasing the client drops the calls in
///   flight: their completions are never called. A watch has no time limit, so one on a frozen
///   member (SIGSTOP, a partition that keeps the TCP connection) stays silent rather than failing:
///   its owner learns of it through its lease keep-alives, which do time out.
final class EtcdClient {
    /// A watch in progress, until ``cancel()`` or its stream ends.
    final class Watch {
        fileprivate weak var client: EtcdClient?
        fileprivate var transfer: CurlMultiDriver.TransferID?
        fileprivate var canceled = false

        /// Ends the watch: its handler is not called again.
        func cancel() {
            canceled = true
            if let transfer { client?.driver.cancel(transfer) }
            transfer = nil
        }
    }

    let endpoints: [String]
    let requestTimeout: Duration
    private let driver: CurlMultiDriver
    /// The endpoint calls go to first: the last one that could be connected to.
    private(set) var preferredEndpoint = 0

    /// - Parameters:
    ///   - endpoints: client URLs (`http://host:port`), at least one.
    ///   - requestTimeout: the limit on each call, connect included; a watch's connect only.
    init(loop: EventLoop, endpoints: [String], requestTimeout: Duration = .seconds(2)) throws(SupervisorError) {
        precondition(!endpoints.isEmpty, "an etcd client needs an endpoint")
        self.endpoints = endpoints.map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 }
        self.requestTimeout = requestTimeout
        driver = try CurlMultiDriver(loop: loop)
    }

    /// The connections to etcd opened so far (keep-alive reuse keeps it low).
    var connectionsOpened: Int { driver.connectionsOpened }

    private var timeoutMilliseconds: Int {
        max(
            1,
            Int(
                requestTimeout.components.seconds * 1000 + requestTimeout.components.attoseconds / 1_000_000_000_000_000
            ))
    }

    // MARK: Key-value

    /// Sets `key` to `value` (attached to `lease` unless 0).
    func put(
        _ key: [UInt8], _ value: [UInt8], lease: Int64 = 0, previous: Bool = false,
        _ completion: @escaping (Result<Etcd.PutReply, EtcdError>) -> Void
    ) {
        call(
            "/v3/kv/put", Etcd.putBody(key: key, value: value, lease: lease, previous: previous), Etcd.putReply,
            completion)
    }

    func range(_ request: Etcd.RangeRequest, _ completion: @escaping (Result<Etcd.RangeReply, EtcdError>) -> Void) {
        call("/v3/kv/range", Etcd.rangeBody(request), Etcd.rangeReply, completion)
    }

    func deleteRange(
        _ keys: Etcd.KeyRange, previous: Bool = false,
        _ completion: @escaping (Result<Etcd.DeleteReply, EtcdError>) -> Void
    ) {
        call("/v3/kv/deleterange", Etcd.deleteBody(keys, previous: previous), Etcd.deleteReply, completion)
    }

    /// Runs `success` when every comparison holds, else `failure`, atomically.
    func txn(
        compare: [Etcd.Compare], success: [Etcd.Operation], failure: [Etcd.Operation] = [],
        _ completion: @escaping (Result<Etcd.TxnReply, EtcdError>) -> Void
    ) {
        let body: JSONObject = [
            "compare": .array(compare.map(Etcd.compareBody)),
            "success": .array(success.map(Etcd.operationBody)),
            "failure": .array(failure.map(Etcd.operationBody)),
        ]
        call("/v3/kv/txn", body, Etcd.txnReply, completion)
    }

    /// Drops the history before `revision` (physical: wait until the space is reclaimed).
    func compact(
        _ revision: Int64, physical: Bool = false,
        _ completion: @escaping (Result<Etcd.RevisionReply, EtcdError>) -> Void
    ) {
        var body: JSONObject = ["revision": Etcd.number(revision)]
        if physical { body.append("physical", .bool(true)) }
        call("/v3/kv/compaction", body, Self.revisionReply, completion)
    }

    // MARK: Leases

    /// A new lease of `ttl` seconds (etcd may grant more: the reply's TTL).
    func leaseGrant(ttl: Int64, _ completion: @escaping (Result<Etcd.LeaseReply, EtcdError>) -> Void) {
        call("/v3/lease/grant", ["TTL": Etcd.number(ttl)], Etcd.leaseReply, completion)
    }

    /// Renews lease `id` once: a reply with TTL 0 means the lease is gone (expired or revoked).
    func leaseKeepAlive(_ id: Int64, _ completion: @escaping (Result<Etcd.LeaseReply, EtcdError>) -> Void) {
        call("/v3/lease/keepalive", ["ID": Etcd.number(id)], Etcd.leaseReply, completion)
    }

    /// Ends lease `id` and deletes its keys; a lease that is gone: ``EtcdError/gateway(code:message:status:)``
    /// with code ``EtcdError/codeNotFound``.
    func leaseRevoke(_ id: Int64, _ completion: @escaping (Result<Etcd.RevisionReply, EtcdError>) -> Void) {
        call("/v3/lease/revoke", ["ID": Etcd.number(id)], Self.revisionReply, completion)
    }

    private static func revisionReply(_ object: JSONObject) throws(EtcdError) -> Etcd.RevisionReply {
        Etcd.RevisionReply(revision: try Etcd.headerRevision(object))
    }

    // MARK: Watch

    /// Watches `keys` from `startRevision` (0: from now on): `handler` gets each message (the
    /// first has `created`), then at most one failure, after which the watch is over (its stream
    /// ended: ``EtcdError/streamEnded``, a connection failure, or an error etcd sent). Nothing
    /// after ``Watch/cancel()``.
    @discardableResult
    func watch(
        _ keys: Etcd.KeyRange, startRevision: Int64 = 0, previous: Bool = false,
        _ handler: @escaping (Result<Etcd.WatchMessage, EtcdError>) -> Void
    ) -> Watch {
        var create = JSONObject()
        Etcd.keysMembers(keys, into: &create)
        if startRevision > 0 { create.append("start_revision", Etcd.number(startRevision)) }
        if previous { create.append("prev_kv", .bool(true)) }
        let body = Array((["create_request": .object(create)] as JSONValue).serialized().utf8)
        let watch = Watch()
        watch.client = self
        startWatch(watch, body: body, endpoint: preferredEndpoint, attemptsLeft: endpoints.count, handler)
        return watch
    }

    private func startWatch(
        _ watch: Watch, body: [UInt8], endpoint: Int, attemptsLeft: Int,
        _ handler: @escaping (Result<Etcd.WatchMessage, EtcdError>) -> Void
    ) {
        var finished = false
        let deliver: (Result<Etcd.WatchMessage, EtcdError>) -> Void = { [weak watch] result in
            guard let watch, !watch.canceled, !finished else { return }
            if case .failure = result {
                finished = true
                watch.cancel()
            }
            handler(result)
        }
        var connected = false
        watch.transfer = driver.start(
            url: endpoints[endpoint] + "/v3/watch", body: body, timeoutMilliseconds: 0,
            connectTimeoutMilliseconds: timeoutMilliseconds,
            stream: { received in
                connected = true
                // One JSON object a line; a partial line waits for the rest.
                var start = 0
                while let newline = received[start...].firstIndex(of: 10) {
                    let line = received[start..<newline]
                    start = newline + 1
                    deliver(Self.decodeWatchLine(line))
                }
                received.removeFirst(start)
            },
            completion: { [weak self] completion in
                guard let self, !watch.canceled else { return }
                if !connected, Self.isConnectFailure(completion.result), attemptsLeft > 1 {
                    let next = (endpoint + 1) % endpoints.count
                    preferredEndpoint = next
                    startWatch(watch, body: body, endpoint: next, attemptsLeft: attemptsLeft - 1, handler)
                    return
                }
                switch Self.failure(of: completion) {
                case .some(let error): deliver(.failure(error))
                case .none: deliver(.failure(.streamEnded))
                }
            })
    }

    private static func decodeWatchLine(_ line: ArraySlice<UInt8>) -> Result<Etcd.WatchMessage, EtcdError> {
        do throws(EtcdError) {
            let object = try parseObject(line)
            if let error = streamError(object) { return .failure(error) }
            guard let result = object["result"]?.objectValue else {
                return .failure(.malformedReply("a watch message without result"))
            }
            return .success(try Etcd.watchMessage(result))
        } catch {
            return .failure(error)
        }
    }

    // MARK: Calls

    private func call<Reply>(
        _ path: String, _ body: JSONObject, _ decode: @escaping (JSONObject) throws(EtcdError) -> Reply,
        _ completion: @escaping (Result<Reply, EtcdError>) -> Void
    ) {
        let bytes = Array(JSONValue.object(body).serialized().utf8)
        attempt(path, bytes, endpoint: preferredEndpoint, attemptsLeft: endpoints.count, decode, completion)
    }

    private func attempt<Reply>(
        _ path: String, _ body: [UInt8], endpoint: Int, attemptsLeft: Int,
        _ decode: @escaping (JSONObject) throws(EtcdError) -> Reply,
        _ completion: @escaping (Result<Reply, EtcdError>) -> Void
    ) {
        driver.start(
            url: endpoints[endpoint] + path, body: body, timeoutMilliseconds: timeoutMilliseconds,
            connectTimeoutMilliseconds: timeoutMilliseconds
        ) { [weak self] reply in
            guard let self else { return }
            if Self.isConnectFailure(reply.result), attemptsLeft > 1 {
                let next = (endpoint + 1) % endpoints.count
                preferredEndpoint = next
                attempt(path, body, endpoint: next, attemptsLeft: attemptsLeft - 1, decode, completion)
                return
            }
            if reply.result == CURLE_OPERATION_TIMEDOUT, endpoint == preferredEndpoint {
                // A frozen member: the next call tries another one.
                preferredEndpoint = (endpoint + 1) % endpoints.count
            }
            completion(Self.decodeReply(reply, decode))
        }
    }

    private static func decodeReply<Reply>(
        _ reply: CurlMultiDriver.Completion, _ decode: (JSONObject) throws(EtcdError) -> Reply
    ) -> Result<Reply, EtcdError> {
        if let error = failure(of: reply) { return .failure(error) }
        do throws(EtcdError) {
            var object = try parseObject(reply.body[...])
            if let error = streamError(object) { return .failure(error) }
            // The streaming calls (keep-alive) wrap their one message in "result".
            if let result = object["result"]?.objectValue { object = result }
            return .success(try decode(object))
        } catch {
            return .failure(error)
        }
    }

    /// The error of a transfer that did not bring a 200 reply, if so.
    private static func failure(of reply: CurlMultiDriver.Completion) -> EtcdError? {
        switch reply.result {
        case CURLE_OK: break
        case CURLE_OPERATION_TIMEDOUT: return .timeout
        default: return .connection(reply.resultText)
        }
        guard reply.status != 200 else { return nil }
        if let object = try? parseObject(reply.body[...]), let code = object["code"]?.int64Value {
            let message = object["message"]?.stringValue ?? object["error"]?.stringValue ?? ""
            return .gateway(code: Int(code), message: message, status: reply.status)
        }
        return .httpStatus(reply.status)
    }

    /// An error sent inside a stream: `{"error": {"grpc_code": N, "message": "..."}}`.
    private static func streamError(_ object: JSONObject) -> EtcdError? {
        guard let error = object["error"] else { return nil }
        if let detail = error.objectValue {
            return .gateway(
                code: Int(detail["grpc_code"]?.int64Value ?? 0), message: detail["message"]?.stringValue ?? "",
                status: Int(detail["http_code"]?.int64Value ?? 0))
        }
        return .gateway(
            code: Int(object["code"]?.int64Value ?? 0), message: error.stringValue ?? "", status: 0)
    }

    private static func parseObject(_ bytes: ArraySlice<UInt8>) throws(EtcdError) -> JSONObject {
        let value: JSONValue
        do throws(ProtocolError) {
            value = try JSONParser.parse(bytes, mode: .strict)
        } catch {
            throw .malformedReply("invalid JSON")
        }
        guard let object = value.objectValue else { throw .malformedReply("not an object") }
        return object
    }

    private static func isConnectFailure(_ result: CURLcode) -> Bool {
        result == CURLE_COULDNT_CONNECT || result == CURLE_COULDNT_RESOLVE_HOST
    }
}
