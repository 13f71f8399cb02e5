import CSmartPollPosix
import SmartPollProtocol
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The control socket: accepts clients, checks their credentials, frames their lines and hands
/// each decoded request to the supervisor, all on the event loop (SPEC sections 5 and 8).
///
/// A slow or silent client never delays another: sockets are non-blocking; once a client's
/// queued output passes ``pauseInputAbove``, its requests already read wait and its input is
/// not read, so a client pipelining without reading stalls only itself, with at most that much
/// plus one reply queued; a client whose queued output has not moved for ``sendTimeout`` is
/// disconnected; and a watcher, whose events do not wait for requests, is disconnected when
/// its queue passes ``maximumOutput``.
final class ControlServer {
    /// Answers one request; call `respond` exactly once, now or later.
    typealias Handler = (_ request: Request, _ client: ClientConnection, _ respond: @escaping (Reply) -> Void) -> Void

    let loop: EventLoop
    let listener: Int32
    /// Limits for new connections and lines; a reload may change them.
    var maximumConnections: Int
    var maximumLineLength: Int
    /// The most event output queued for a watcher that does not read.
    let maximumOutput = 16 << 20
    let pauseInputAbove = 1 << 20
    /// How long queued output may wait without the client taking any of it; a reload may change it.
    var sendTimeout: Duration = .seconds(30)
    var log: SupervisorLog?
    var handler: Handler = { request, _, respond in
        respond(Reply(to: request, body: .failure(ProtocolError(.internal, "not ready"))))
    }
    /// Whether a peer may use the socket (SO_PEERCRED): its uid and gid.
    var isAuthorized: (UInt32, UInt32) -> Bool = { _, _ in true }
    /// Whether new requests are refused with `shutting_down`.
    var isShuttingDown = false

    private(set) var clients: [Int32: ClientConnection] = [:]
    private var nextClientID = 0

    init(loop: EventLoop, listener: Int32, maximumConnections: Int, maximumLineLength: Int, sendTimeout: Duration = .seconds(30)) throws(SupervisorError) {
        self.loop = loop
        self.listener = listener
        self.maximumConnections = maximumConnections
        self.maximumLineLength = maximumLineLength
        self.sendTimeout = sendTimeout
        try loop.register(listener, for: .readable) { [weak self] _ in self?.acceptClients() }
    }

    /// Every client that asked to `watch`.
    var watchers: some Sequence<ClientConnection> {
        clients.values.lazy.filter(\.isWatching)
    }

    private func acceptClients() {
        while true {
            var uid: uid_t = 0, gid: gid_t = 0, pid: pid_t = 0
            let descriptor = sp_accept(listener, &uid, &gid, &pid)
            if descriptor < 0 {
                if errno == EMFILE || errno == ENFILE {
                    // Out of descriptors: the listener would stay readable and spin the loop.
                    // Stop accepting for a moment; established clients are served meanwhile.
                    loop.watch(listener, for: [])
                    loop.schedule(after: .milliseconds(100)) { [weak self] in
                        guard let self else { return }
                        self.loop.watch(self.listener, for: .readable)
                    }
                }
                return  // EAGAIN, or a peer that left before we could look
            }
            nextClientID += 1
            let client = ClientConnection(
                id: nextClientID, descriptor: descriptor, peerUserID: uid, peerProcessID: pid,
                maximumLineLength: maximumLineLength, server: self)
            guard isAuthorized(uid, gid) else {
                refuse(client, ProtocolError(.permissionDenied, "uid \(uid) may not use this socket"))
                continue
            }
            guard clients.count < maximumConnections else {
                refuse(client, ProtocolError(.busy, "too many connections (at most \(maximumConnections)); try again later"))
                continue
            }
            do {
                try loop.register(descriptor, for: .readable) { [weak self, unowned client] events in
                    self?.serviceClient(client, events)
                }
            } catch {
                Glibc.close(descriptor)
                continue
            }
            clients[descriptor] = client
        }
    }

    /// One error line, best effort, then the connection is closed.
    private func refuse(_ client: ClientConnection, _ error: ProtocolError) {
        let line = Reply(id: .null, body: .failure(error)).encodedLine()
        _ = line.withUnsafeBytes { sp_send(client.descriptor, $0.baseAddress, $0.count) }
        Glibc.close(client.descriptor)
    }

    private func serviceClient(_ client: ClientConnection, _ events: EventLoop.Events) {
        if events.contains(.writable) {
            guard client.flush() else { return }
            // Requests read earlier and held while the output was above the line go first.
            dispatchFrames(client)
            outputChanged(client)
        }
        guard !client.isClosed else { return }
        if client.isInputClosed {
            // Readable is no longer asked for, so a hang-up here is EPOLLHUP: the peer is gone.
            if events.contains(.hangup) || events.contains(.error) { close(client) }
            return
        }
        guard events.contains(.readable) || events.contains(.hangup) || events.contains(.error) else { return }
        // Held requests first; more input only once they are all answered.
        guard !client.framer.hasFrames else { return }
        let count = read(client.descriptor, loop.readBuffer.baseAddress, loop.readBuffer.count)
        if count == 0 && (client.isWatching || client.hasOutstandingReplies || client.pendingOutput > 0) {
            // End of the peer's input, not of the connection: it still reads what it is owed.
            client.isInputClosed = true
            outputChanged(client)
            return
        }
        if count == 0 || (count < 0 && errno != EAGAIN && errno != EINTR) {
            close(client)
            return
        }
        guard count > 0 else { return }
        if client.isWatching { return }
        client.framer.append(UnsafeRawBufferPointer(rebasing: loop.readBuffer[..<count]))
        dispatchFrames(client)
    }

    /// Answers the requests framed so far, in order, while the client's queued output stays
    /// under ``pauseInputAbove``: one read can hold a thousand requests whose replies are large
    /// (`result` of a 1 MiB output), and they must neither pile up in memory nor keep the loop
    /// from other clients. The rest wait in the framer until the output drains.
    private func dispatchFrames(_ client: ClientConnection) {
        guard client.framer.hasFrames else { return }
        client.beginBatch()
        defer { client.endBatch() }
        while !client.isClosed, !client.isWatching, client.pendingOutput <= pauseInputAbove, let frame = client.framer.next() {
            switch frame {
            case .line(let line):
                dispatch(line, from: client)
            case .tooLarge(let length):
                let slot = client.takeSlot()
                client.reply(Reply(id: .null, body: .failure(ProtocolError(
                    .tooLarge, "request line longer than \(maximumLineLength) bytes (\(length) seen); closing the connection"))),
                    slot: slot)
                _ = client.flush()
                close(client)
            }
        }
    }

    private func dispatch(_ line: [UInt8], from client: ClientConnection) {
        let slot = client.takeSlot()
        switch Request.decode(line) {
        case .failure(let failure):
            client.reply(failure.reply, slot: slot)
        case .success(let request):
            if isShuttingDown {
                client.reply(Reply(to: request, body: .failure(ProtocolError(.shuttingDown, "the supervisor is shutting down"))), slot: slot)
                return
            }
            handler(request, client) { [weak client] reply in client?.reply(reply, slot: slot) }
        }
    }

    /// Re-evaluates what to watch the client for after its output changed.
    func outputChanged(_ client: ClientConnection) {
        guard !client.isClosed else { return }
        if client.isWatching && client.pendingOutput > maximumOutput {
            log?.write(.warning, "a watcher is \(client.pendingOutput >> 20) MiB of events behind; disconnecting it",
                       [("client", "\(client.id)"), ("pid", "\(client.peerProcessID)")])
            close(client)
            return
        }
        if client.pendingOutput > 0 { armStallTimer(client) }
        if client.isInputClosed {
            if client.pendingOutput == 0 && !client.hasOutstandingReplies && !client.isWatching {
                close(client)
            } else {
                watch(client, for: client.pendingOutput > 0 ? .writable : [])
            }
            return
        }
        let paused = client.pendingOutput > pauseInputAbove || client.framer.hasFrames
        var interest: EventLoop.Events = paused ? [] : .readable
        if client.pendingOutput > 0 { interest.insert(.writable) }
        watch(client, for: interest)
    }

    /// Watches for output that waits ``sendTimeout`` without the client taking a byte of it.
    private func armStallTimer(_ client: ClientConnection) {
        guard client.stallTimer == nil else { return }
        let (deadline, overflow) = client.lastOutputProgress.addingReportingOverflow(sendTimeout.nanosecondsClamped)
        client.stallTimer = loop.schedule(at: overflow ? .max : deadline) { [weak self, weak client] in
            guard let self, let client else { return }
            client.stallTimer = nil
            guard !client.isClosed, client.pendingOutput > 0 else { return }
            let waited = self.loop.now - client.lastOutputProgress
            if waited >= self.sendTimeout.nanosecondsClamped {
                self.log?.write(.warning, "a client has read nothing of \(client.pendingOutput) bytes owed for \(DurationFormat.format(.nanoseconds(waited))); disconnecting it",
                                [("client", "\(client.id)"), ("pid", "\(client.peerProcessID)")])
                self.close(client)
            } else {
                self.armStallTimer(client)
            }
        }
    }

    /// Changes what the loop watches a client for, with a system call only when it changes.
    private func watch(_ client: ClientConnection, for interest: EventLoop.Events) {
        guard interest != client.interest else { return }
        client.interest = interest
        loop.watch(client.descriptor, for: interest)
    }

    func close(_ client: ClientConnection) {
        guard !client.isClosed else { return }
        if let timer = client.stallTimer { loop.cancel(timer) }
        client.stallTimer = nil
        client.markClosed()
        loop.forget(client.descriptor)
        clients.removeValue(forKey: client.descriptor)
        Glibc.close(client.descriptor)
    }

    /// Closes every client and stops accepting.
    func shutdown() {
        for client in Array(clients.values) {
            _ = client.flush()
            close(client)
        }
        loop.deregister(listener)
    }
}
