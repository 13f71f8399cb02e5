import CSmartPollOptional
import Glibc

/// HTTP transfers with libcurl's multi-socket interface, driven by the supervisor's own
/// ``EventLoop``: no thread of curl's, no blocking call.
///
/// The wiring, and what it guarantees:
/// - curl says which of its sockets to watch for what (`CURLMOPT_SOCKETFUNCTION`): the driver
///   registers, re-watches or deregisters exactly those descriptors with the loop. curl reports
///   `CURL_POLL_REMOVE` before it closes a socket, so the loop never holds a closed descriptor;
///   a late event for a removed socket carries a stale ``EventLoop/Registration`` and is dropped.
/// - curl says when it next wants to be called without readiness (`CURLMOPT_TIMERFUNCTION`):
///   the driver keeps one loop timer for it. curl's own timeouts (connect, `CURLOPT_TIMEOUT_MS`)
///   therefore fire on the loop's clock, even when the peer is frozen and no byte ever arrives.
/// - On readiness or that timer, one `curl_multi_socket_action` for that socket, then the reply
///   bytes of streams are handed over and finished transfers completed (`curl_multi_info_read`),
///   at most ``completionsPerTurn`` of them a turn; the rest are carried to the next turn with
///   ``EventLoop/callNextTurn(_:)``. curl reads at most its buffer size (16 KiB) a call and a
///   bounded number of calls per action, so a turn's work is bounded.
/// - Callbacks of the caller (completions, stream data) run on the loop's thread, outside any
///   curl callback, so they may start and cancel transfers freely; a completion is never called
///   from inside ``start(url:body:timeoutMilliseconds:stream:completion:)``.
/// - Connections stay in the multi handle's cache: consecutive requests to one endpoint reuse a
///   keep-alive HTTP/1.1 connection (with `TCP_NODELAY`); easy handles are pooled.
///
/// - Important: Not thread-safe: the loop's thread only, like the loop.
final class CurlMultiDriver {
    /// The outcome of a finished transfer.
    struct Completion {
        /// curl's result: `CURLE_OK` when an HTTP reply (of any status) arrived whole.
        let result: CURLcode
        /// The HTTP status (0 when no reply arrived).
        let status: Int
        /// The reply's body (what a stream's handler left of it, for a stream).
        let body: [UInt8]

        /// curl's text for ``result``.
        var resultText: String { String(cString: sp_curl_easy_strerror(result)) }
    }

    /// Identifies a transfer, for ``cancel(_:)``.
    struct TransferID: Hashable {
        fileprivate let value: UInt64
    }

    /// Transfers whose completion is called in one turn of the loop, at most.
    static let completionsPerTurn = 64
    /// The largest reply body kept (a stream's unconsumed bytes included): beyond it the
    /// transfer fails with `CURLE_WRITE_ERROR`.
    static let maximumBodyBytes = 64 << 20
    private static let pooledHandles = 8

    private final class Transfer {
        let identifier: UInt64
        let easy: UnsafeMutableRawPointer
        var received: [UInt8] = []
        /// Consumes what it can of the received bytes (a stream's complete messages).
        let stream: ((inout [UInt8]) -> Void)?
        let completion: (Completion) -> Void

        init(
            identifier: UInt64, easy: UnsafeMutableRawPointer, stream: ((inout [UInt8]) -> Void)?,
            completion: @escaping (Completion) -> Void
        ) {
            self.identifier = identifier
            self.easy = easy
            self.stream = stream
            self.completion = completion
        }
    }

    private let loop: EventLoop
    private let multi: UnsafeMutableRawPointer
    private let headers: UnsafeMutablePointer<curl_slist>?
    private var transfers: [UInt64: Transfer] = [:]
    private var streamsWithData: [Transfer] = []
    private var sockets: [Int32: EventLoop.Registration] = [:]
    private var timer: EventLoop.TimerID?
    private var idleHandles: [UnsafeMutableRawPointer] = []
    private var lastIdentifier: UInt64 = 0
    private var drainScheduled = false

    /// - Throws: when libcurl cannot be loaded (not installed) or initialised (out of memory).
    init(loop: EventLoop) throws(SupervisorError) {
        try Self.loadCurl()
        guard let multi = sp_curl_multi_init() else {
            throw SupervisorError.systemCall("curl_multi_init", errno: ENOMEM)
        }
        self.loop = loop
        self.multi = multi
        // etcd's gateway reads JSON; no `Expect: 100-continue` round trip before a large body.
        var list = sp_curl_slist_append(nil, "Content-Type: application/json")
        list = sp_curl_slist_append(list, "Expect:")
        headers = list
        let user = Unmanaged.passUnretained(self).toOpaque()
        _ = sp_curl_multi_set_callbacks(multi, CurlMultiDriver.socketFunction, CurlMultiDriver.timerFunction, user)
    }

    /// Loads libcurl (once for the process; CSmartPollOptional says why it is not linked).
    ///
    /// - Throws: `.systemCallFailed` naming the library and Debian's package for it.
    static func loadCurl() throws(SupervisorError) {
        guard let reason = sp_curl_load() else { return }
        throw SupervisorError(
            code: .systemCallFailed,
            message: "the cluster's etcd client needs libcurl (Debian's libcurl4), which cannot be loaded: "
                + String(cString: reason))
    }

    deinit {
        for transfer in transfers.values {
            sp_curl_multi_remove_handle(multi, transfer.easy)
            sp_curl_easy_cleanup(transfer.easy)
        }
        for easy in idleHandles { sp_curl_easy_cleanup(easy) }
        // No callback into a half-deinitialised driver while curl closes its connections.
        _ = sp_curl_multi_set_callbacks(multi, nil, nil, nil)
        for registration in sockets.values { loop.deregisterForeign(registration) }
        // curl_multi_cleanup closes the cached connections through closeFunction: nothing is left
        // to deregister then.
        sockets = [:]
        if let timer { loop.cancel(timer) }
        sp_curl_multi_cleanup(multi)
        sp_curl_slist_free_all(headers)
    }

    /// Starts a POST of `body` to `url`.
    ///
    /// - Parameters:
    ///   - timeoutMilliseconds: the limit on the whole transfer, connect included (0: none, for a
    ///     stream; its connect is then limited to `connectTimeoutMilliseconds`).
    ///   - stream: when given, called on the loop's thread with the bytes received so far each
    ///     time some arrive; it removes what it consumed.
    ///   - completion: called once on the loop's thread, never from inside this call, unless the
    ///     transfer is cancelled first.
    @discardableResult
    func start(
        url: String, body: [UInt8], timeoutMilliseconds: Int, connectTimeoutMilliseconds: Int = 1_000,
        stream: ((inout [UInt8]) -> Void)? = nil, completion: @escaping (Completion) -> Void
    ) -> TransferID {
        lastIdentifier += 1
        let identifier = lastIdentifier
        guard let easy = idleHandles.popLast() ?? sp_curl_easy_init() else {
            fail(completion, CURLE_OUT_OF_MEMORY)
            return TransferID(value: identifier)
        }
        let transfer = Transfer(identifier: identifier, easy: easy, stream: stream, completion: completion)
        let user = Unmanaged.passUnretained(transfer).toOpaque()
        let connectLimit =
            timeoutMilliseconds > 0 ? min(connectTimeoutMilliseconds, timeoutMilliseconds) : connectTimeoutMilliseconds
        // Never empty (an empty body would be a NULL pointer, which curl reads as "no body").
        let payload = body.isEmpty ? [UInt8(0)] : body
        let prepared = payload.withUnsafeBufferPointer { bytes in
            bytes.withMemoryRebound(to: CChar.self) { text in
                sp_curl_easy_prepare_post(
                    easy, url, text.baseAddress, body.count, headers, timeoutMilliseconds, connectLimit,
                    CurlMultiDriver.writeFunction, user, CurlMultiDriver.closeFunction,
                    Unmanaged.passUnretained(self).toOpaque())
            }
        }
        guard prepared == CURLE_OK else {
            recycle(easy)
            fail(completion, prepared)
            return TransferID(value: identifier)
        }
        transfers[identifier] = transfer
        // Adding sets curl's timer to 0: the transfer begins in the loop's next wake-up.
        guard sp_curl_multi_add_handle(multi, easy) == CURLM_OK else {
            transfers[identifier] = nil
            recycle(easy)
            fail(completion, CURLE_FAILED_INIT)
            return TransferID(value: identifier)
        }
        return TransferID(value: identifier)
    }

    /// Stops a transfer that has not completed; its completion is never called. Does nothing
    /// otherwise.
    func cancel(_ transfer: TransferID) {
        guard let transfer = transfers.removeValue(forKey: transfer.value) else { return }
        sp_curl_multi_remove_handle(multi, transfer.easy)
        streamsWithData.removeAll { $0 === transfer }
        recycle(transfer.easy)
    }

    /// Transfers started and not completed or cancelled.
    var activeTransfers: Int { transfers.count }

    /// The connections completed transfers opened, in all (a reused keep-alive connection
    /// counts none).
    private(set) var connectionsOpened = 0

    private func fail(_ completion: @escaping (Completion) -> Void, _ result: CURLcode) {
        loop.callNextTurn { completion(Completion(result: result, status: 0, body: [])) }
    }

    private func recycle(_ easy: UnsafeMutableRawPointer) {
        if idleHandles.count < CurlMultiDriver.pooledHandles {
            // Options back to defaults; the connection cache is the multi handle's, not this one's.
            sp_curl_easy_reset(easy)
            idleHandles.append(easy)
        } else {
            sp_curl_easy_cleanup(easy)
        }
    }

    // MARK: curl's callbacks (inside curl: they only record)

    private static let socketFunction: curl_socket_callback = { _, socket, what, user, _ in
        guard let user else { return 0 }
        Unmanaged<CurlMultiDriver>.fromOpaque(user).takeUnretainedValue().socketChanged(socket, what)
        return 0
    }

    private static let timerFunction: curl_multi_timer_callback = { _, milliseconds, user in
        guard let user else { return 0 }
        Unmanaged<CurlMultiDriver>.fromOpaque(user).takeUnretainedValue().timerChanged(milliseconds)
        return 0
    }

    /// curl closes a socket: it leaves the loop first. curl says `CURL_POLL_REMOVE` before it
    /// closes a socket only while the closing handle is in the multi handle; a connection closed
    /// from its cache may come after (or not at all), when the descriptor is closed or reused.
    private static let closeFunction: curl_closesocket_callback = { user, socket in
        if let user { Unmanaged<CurlMultiDriver>.fromOpaque(user).takeUnretainedValue().socketClosing(socket) }
        return close(socket)
    }

    private static let writeFunction: curl_write_callback = { data, size, count, user in
        let length = size * count
        guard let user, let data else { return length }
        let transfer = Unmanaged<Transfer>.fromOpaque(user).takeUnretainedValue()
        // Beyond the bound, a short count makes curl fail the transfer (CURLE_WRITE_ERROR).
        guard transfer.received.count + length <= CurlMultiDriver.maximumBodyBytes else { return 0 }
        data.withMemoryRebound(to: UInt8.self, capacity: length) {
            transfer.received.append(contentsOf: UnsafeBufferPointer(start: $0, count: length))
        }
        return length
    }

    private func socketClosing(_ socket: Int32) {
        if let registration = sockets.removeValue(forKey: socket) { loop.deregisterForeign(registration) }
    }

    private func socketChanged(_ socket: Int32, _ what: Int32) {
        // curl may have closed the socket already (its threaded resolver's socket pair, say):
        // the foreign variants tolerate that, and a number curl reuses is registered afresh.
        if what == CURL_POLL_REMOVE {
            if let registration = sockets.removeValue(forKey: socket) { loop.deregisterForeign(registration) }
            return
        }
        var interest: EventLoop.Events = []
        if what & CURL_POLL_IN != 0 { interest.insert(.readable) }
        if what & CURL_POLL_OUT != 0 { interest.insert(.writable) }
        if let registration = sockets[socket], loop.watchForeign(registration, for: interest) { return }
        do {
            // Weak: a client released from inside a completion (its owner stood down, a test
            // ended) must not leave the loop a handler into a freed driver.
            sockets[socket] = try loop.register(socket, for: interest) { [weak self] events in
                self?.socketReady(socket, events)
            }
        } catch {
            // epoll refused curl's socket (it cannot, for a socket): the transfer then ends at its
            // timeout, through curl's timer.
            sockets[socket] = nil
        }
    }

    private func timerChanged(_ milliseconds: Int) {
        if let timer { loop.cancel(timer) }
        timer = nil
        guard milliseconds >= 0 else { return }
        timer = loop.schedule(after: .milliseconds(milliseconds)) { [weak self] in
            guard let self else { return }
            self.timer = nil
            self.act(on: CURL_SOCKET_TIMEOUT, mask: 0)
        }
    }

    // MARK: Driving

    private func socketReady(_ socket: Int32, _ events: EventLoop.Events) {
        var mask: Int32 = 0
        if !events.isDisjoint(with: [.readable, .hangup]) { mask |= CURL_CSELECT_IN }
        if events.contains(.writable) { mask |= CURL_CSELECT_OUT }
        if events.contains(.error) { mask |= CURL_CSELECT_ERR }
        act(on: socket, mask: mask)
    }

    private func act(on socket: Int32, mask: Int32) {
        var running: Int32 = 0
        _ = sp_curl_multi_socket_action(multi, socket, mask, &running)
        deliverStreams()
        drainCompletions()
    }

    private func deliverStreams() {
        for transfer in transfers.values where transfer.stream != nil && !transfer.received.isEmpty {
            streamsWithData.append(transfer)
        }
        while let transfer = streamsWithData.popLast() {
            // A handler may cancel this transfer or another one: cancel takes it off the list.
            guard transfers[transfer.identifier] != nil, let stream = transfer.stream else { continue }
            stream(&transfer.received)
        }
    }

    private func drainCompletions() {
        var handled = 0
        var queued: Int32 = 0
        while handled < CurlMultiDriver.completionsPerTurn, let message = sp_curl_multi_info_read(multi, &queued) {
            guard message.pointee.msg == CURLMSG_DONE, let easy = message.pointee.easy_handle else { continue }
            let result = sp_curl_message_result(message)
            let status = sp_curl_easy_response_code(easy)
            connectionsOpened += sp_curl_easy_new_connections(easy)
            let user = sp_curl_easy_private(easy)
            sp_curl_multi_remove_handle(multi, easy)
            guard let user else {
                recycle(easy)
                continue
            }
            let transfer = Unmanaged<Transfer>.fromOpaque(user).takeUnretainedValue()
            transfers[transfer.identifier] = nil
            recycle(easy)
            handled += 1
            // A stream's last bytes first, then its end.
            if let stream = transfer.stream, !transfer.received.isEmpty { stream(&transfer.received) }
            transfer.completion(Completion(result: result, status: status, body: transfer.received))
        }
        if handled == CurlMultiDriver.completionsPerTurn, !drainScheduled {
            drainScheduled = true
            loop.callNextTurn { [weak self] in
                self?.drainScheduled = false
                self?.drainCompletions()
            }
        }
    }
}
