import CSmartPollOptional
import Glibc

/// The metrics over HTTP (`metrics_listen`): `GET /metrics` (and `HEAD`) answered with the
/// Prometheus text of the last ``MetricsSnapshot`` the loop published; 404 for another path,
/// 405 for another method.
///
/// GNU libmicrohttpd serves it on a thread of its own (one thread serving every connection,
/// waiting with epoll), never on the loop's: a scrape, a slow scraper or a pile of idle connections
/// cannot delay the loop, and the loop never waits for the endpoint but for the lock that
/// guards the published snapshot, held only to swap or read a reference. The text is rendered
/// on the endpoint's thread, once a snapshot (scrapes of the same one share it).
///
/// - Important: The thread reads nothing of the loop's state: only snapshots, which are values.
///   At most ``connectionLimit`` connections at once (more wait in the listen queue until
///   one closes); one that sends nothing for ``connectionTimeout`` seconds is closed.
final class MetricsEndpoint: @unchecked Sendable {
    /// Where it listens, with the port the system picked for port 0.
    let address: MetricsListenAddress
    static let connectionLimit: UInt32 = 64
    /// Below Prometheus' default scrape interval and timeout's sum, so that idle connections
    /// held open to crowd scrapers out are closed before the next scrape gives up.
    static let connectionTimeout: UInt32 = 10

    private var daemon: OpaquePointer?
    private let lock = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    // Guarded by `lock`.
    private var snapshot: MetricsSnapshot
    private var generation: UInt64 = 0
    private var rendered: RenderedMetrics?

    /// Binds `address` and starts serving `snapshot` until the next ``publish(_:)``.
    ///
    /// - Important: Call it on the thread whose signal mask the endpoint's thread should inherit
    ///   (the supervisor's, with its shutdown signals blocked for its signalfd).
    init(listening address: MetricsListenAddress, snapshot: MetricsSnapshot) throws(SupervisorError) {
        self.snapshot = snapshot
        if let reason = sp_mhd_load() {
            lock.deallocate()
            throw SupervisorError(
                code: .systemCallFailed,
                message: "cannot serve metrics on \(address) (metrics_listen): it needs libmicrohttpd (Debian's "
                    + "libmicrohttpd12), which cannot be loaded: " + String(cString: reason))
        }
        pthread_mutex_init(lock, nil)
        let listener: Int32
        do {
            (listener, self.address) = try Self.listen(address)
        } catch {
            pthread_mutex_destroy(lock)
            lock.deallocate()
            throw error
        }
        daemon = sp_mhd_start(
            listener, Self.connectionLimit, Self.connectionTimeout, Self.handleRequest,
            Unmanaged.passUnretained(self).toOpaque())
        guard daemon != nil else {
            let reason = SupervisorError.errorText(errno)
            close(listener)
            throw SupervisorError(
                code: .systemCallFailed, message: "cannot serve metrics on \(address) (metrics_listen): \(reason)")
        }
    }

    deinit {
        stop()
        pthread_mutex_destroy(lock)
        lock.deallocate()
    }

    /// Stops the thread (waiting for it) and closes the listening socket and every connection.
    func stop() {
        guard let daemon else { return }
        sp_mhd_stop_daemon(daemon)
        self.daemon = nil
    }

    /// What scrapes get from now on. O(1): the text is rendered at the next scrape.
    func publish(_ snapshot: MetricsSnapshot) {
        pthread_mutex_lock(lock)
        self.snapshot = snapshot
        generation &+= 1
        pthread_mutex_unlock(lock)
    }

    /// The text of the last snapshot published, rendered at the first scrape that needs it. On
    /// the endpoint's thread only (its one thread renders; the lock is not held while it does).
    private func currentText() -> RenderedMetrics {
        pthread_mutex_lock(lock)
        let wanted = generation
        if let rendered, rendered.generation == wanted {
            pthread_mutex_unlock(lock)
            return rendered
        }
        let snapshot = self.snapshot
        pthread_mutex_unlock(lock)
        let text = RenderedMetrics(MetricsText.render(snapshot), generation: wanted)
        pthread_mutex_lock(lock)
        rendered = text
        pthread_mutex_unlock(lock)
        return text
    }

    /// A TCP socket bound to `address`, listening, close-on-exec (no task inherits it).
    private static func listen(
        _ address: MetricsListenAddress
    ) throws(SupervisorError) -> (Int32, MetricsListenAddress) {
        func failure(_ what: String) -> SupervisorError {
            SupervisorError(
                code: .systemCallFailed,
                message:
                    "cannot serve metrics on \(address) (metrics_listen): \(what): \(SupervisorError.errorText(errno))"
            )
        }
        let descriptor = socket(
            address.isIPv6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw failure("socket") }
        var yes: Int32 = 1
        // A restart binds again while the last life's connections are in TIME_WAIT.
        _ = setsockopt(descriptor, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        let bound = address.withSocketAddress { bind(descriptor, $0, $1) } ?? -1
        guard bound == 0, Glibc.listen(descriptor, 64) == 0 else {
            let error = failure(bound == 0 ? "listen" : "bind")
            close(descriptor)
            throw error
        }
        var actual = address
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let named = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        if named == 0 {
            actual.port = withUnsafePointer(to: &storage) { pointer in
                address.isIPv6
                    ? pointer.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) {
                        UInt16(bigEndian: $0.pointee.sin6_port)
                    }
                    : pointer.withMemoryRebound(to: sockaddr_in.self, capacity: 1) {
                        UInt16(bigEndian: $0.pointee.sin_port)
                    }
            }
        }
        return (descriptor, actual)
    }

    // MARK: On the endpoint's thread

    private static let handleRequest: MHD_AccessHandlerCallback = {
        context, connection, url, method, _, _, _, requestContext in
        guard let context, let connection, let url, let method, let requestContext else { return MHD_Result.NO }
        let endpoint = Unmanaged<MetricsEndpoint>.fromOpaque(context).takeUnretainedValue()
        // Another method is answered at the first call: a body is not read, and the connection
        // is closed after the response (libmicrohttpd does both).
        guard strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0 else {
            return respond(
                connection, MHD_HTTP_METHOD_NOT_ALLOWED, text: "405 method not allowed: only GET and HEAD are served\n",
                headers: [("Allow", "GET, HEAD")])
        }
        // GET and HEAD at the second call, once the request is complete: a response queued
        // before that would close the connection, and a scraper keeps it alive between scrapes.
        // The request's own pointer (`req_cls`) marks that its headers were seen.
        if requestContext.pointee == nil {
            requestContext.pointee = context
            return MHD_Result.YES
        }
        guard strcmp(url, "/metrics") == 0 else {
            return respond(connection, MHD_HTTP_NOT_FOUND, text: "404 not found: the metrics are at /metrics\n")
        }
        let text = endpoint.currentText()
        // The response reads the rendered bytes in place; the free callback lets go of them.
        let retained = Unmanaged.passRetained(text).toOpaque()
        guard
            let response = sp_mhd_response_borrowing(
                text.count, text.bytes, { Unmanaged<RenderedMetrics>.fromOpaque($0!).release() }, retained)
        else {
            Unmanaged<RenderedMetrics>.fromOpaque(retained).release()
            return MHD_Result.NO
        }
        defer { sp_mhd_destroy_response(response) }
        _ = sp_mhd_add_response_header(response, "Content-Type", MetricsText.contentType)
        return sp_mhd_queue_response(connection, UInt32(MHD_HTTP_OK), response)
    }

    private static func respond(
        _ connection: OpaquePointer, _ status: Int32, text: String, headers: [(String, String)] = []
    ) -> MHD_Result {
        var text = text
        return text.withUTF8 { bytes in
            guard
                let response = sp_mhd_response_copying(bytes.count, bytes.baseAddress)
            else { return MHD_Result.NO }
            defer { sp_mhd_destroy_response(response) }
            _ = sp_mhd_add_response_header(response, "Content-Type", "text/plain; charset=utf-8")
            for (name, value) in headers { _ = sp_mhd_add_response_header(response, name, value) }
            return sp_mhd_queue_response(connection, UInt32(status), response)
        }
    }
}

/// A rendered text in memory of its own, which libmicrohttpd's responses read in place (each
/// holds a reference until it is sent).
private final class RenderedMetrics: @unchecked Sendable {
    let bytes: UnsafeMutableRawPointer
    let count: Int
    /// The snapshot it was rendered from.
    let generation: UInt64

    init(_ text: [UInt8], generation: UInt64) {
        count = text.count
        let bytes = UnsafeMutableRawPointer.allocate(byteCount: max(1, text.count), alignment: 1)
        text.withUnsafeBytes { if let base = $0.baseAddress { bytes.copyMemory(from: base, byteCount: $0.count) } }
        self.bytes = bytes
        self.generation = generation
    }

    deinit {
        bytes.deallocate()
    }
}
