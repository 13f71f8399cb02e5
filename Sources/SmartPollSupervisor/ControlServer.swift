import CSmartPollPosix
import Glibc
import SmartPollProtocol

/// The control socket: accepts clients, checks their credentials, and drives one
/// ``ClientConnectionStateMachine`` per client on the event loop, carrying out its actions (the
/// system calls, the loop's interest and timers) and handing each request to ``handler``
/// (SPEC sections 5 and 8).
///
/// A slow or silent client never delays another: sockets are non-blocking; once a client's
/// queued output passes ``pauseInputAbove``, its requests already read wait and its input is
/// not read, so a client pipelining without reading stalls only itself, with at most that much
/// plus one reply queued; a client whose queued output has not moved for ``sendTimeout`` is
/// disconnected; and a watcher, whose events do not wait for requests, is disconnected when
/// it holds more than ``maximumOutput``.
///
/// No client holds the loop for long: a turn takes at most
/// ``ClientConnectionStateMachine/requestsPerTurn`` of a client's requests, and a big `result`
/// or `results` reply is encoded in slices as the socket drains (``SlicedReply``), its outputs
/// a snapshot taken when the request was answered.
///
/// A refused peer (`permission_denied`, `busy`) gets its error line; then its writing side is
/// shut down and what it sends is read and dropped for at most ``lingerTime`` and
/// ``lingerBytes`` before the descriptor is closed, so that a client that writes its request
/// before it reads sees the reply rather than EPIPE or ECONNRESET. At most ``maximumLingering``
/// peers linger at once (more are closed at once, as before); lingering peers do not count
/// toward ``maximumConnections``.
final class ControlServer {
    /// Answers one request; call `respond` exactly once, now or later.
    typealias Handler = (_ request: Request, _ client: ClientConnection, _ respond: @escaping (Response) -> Void) ->
        Void

    /// What answers a request: a reply, or a reply its handler writes a slice at a time as the
    /// socket drains (`metrics`, whose text is rendered as it goes).
    enum Response {
        case reply(Reply)
        case slices(any ClientOutputQueue.Slices)
    }

    let loop: EventLoop
    let listener: Int32
    /// Limits for new connections and lines; a reload may change them.
    var maximumConnections: Int
    var maximumLineLength: Int
    /// The most event output a watcher may hold without reading it.
    let maximumOutput = 16 << 20
    let pauseInputAbove = 1 << 20
    /// How long queued output may wait without the client taking any of it; a reload may change
    /// it (for every client, from its next check).
    var sendTimeout: Duration = .seconds(30)
    var log: SupervisorLog?
    var handler: Handler = { request, _, respond in
        respond(.reply(Reply(to: request, body: .failure(ProtocolError(.internal, "not ready")))))
    }
    /// Whether a peer may use the socket (SO_PEERCRED): its uid and gid.
    var isAuthorized: (UInt32, UInt32) -> Bool = { _, _ in true }
    /// Whether new requests are refused with `shutting_down`.
    var isShuttingDown = false
    /// Called when a connection was accepted or closed (the metrics' `smartpoll_clients`).
    var clientsChanged: (() -> Void)?

    private(set) var clients: [Int32: ClientConnection] = [:]
    private var nextClientID = 0

    /// How long a refused peer's input is read and dropped before its descriptor is closed.
    static let lingerTime: Duration = .seconds(1)
    /// The most bytes read from a refused peer: a request line at the default limit and more.
    static let lingerBytes = 2 << 20
    /// The most refused peers lingering at once.
    static let maximumLingering = 64

    /// A refused peer whose input is read and dropped until it ends or a bound is reached.
    private struct Lingering {
        let generation: Int
        var discarded: Int
        var timer: EventLoop.TimerID?
    }

    private var lingering: [Int32: Lingering] = [:]
    private var lingerGeneration = 0

    init(
        loop: EventLoop, listener: Int32, maximumConnections: Int, maximumLineLength: Int,
        sendTimeout: Duration = .seconds(30)
    ) throws(SupervisorError) {
        self.loop = loop
        self.listener = listener
        self.maximumConnections = maximumConnections
        self.maximumLineLength = maximumLineLength
        self.sendTimeout = sendTimeout
        try loop.register(listener, for: .readable) { [weak self] _ in self?.acceptClients() }
    }

    // MARK: Watchers

    /// Makes `client` a stream of events (after its `watch` request was answered): only events
    /// of the tasks in `filter`, when given, and those of no task. Requests it sent after `watch`
    /// are dropped.
    func startWatching(_ client: ClientConnection, filter: Set<String>?) {
        client.watchFilter = filter
        perform(client.machine.watchStarted(), for: client)
    }

    /// Makes `client` a stream of `task`'s `task_log` events only (after its `logs` request with
    /// `follow` was answered); bounded like any watcher (``maximumWatcherOutput``).
    func startFollowingLogs(_ client: ClientConnection, task: String) {
        client.logFollowTask = task
        perform(client.machine.watchStarted(), for: client)
    }

    /// Queues a stderr line of `task` as a `task_log` event for the clients following its logs,
    /// encoded once and only when one does.
    ///
    /// - Complexity: O(clients); no allocation when none follows `task`.
    func broadcastLog(task: String, _ line: LogsReply.Line) {
        var encoded: [UInt8]?
        for client in clients.values where client.logFollowTask == task && client.machine.isWatching {
            if encoded == nil {
                encoded = Event(time: line.time, kind: .taskLog(task: task, run: line.run, line: line.line))
                    .encodedLine()
            }
            perform(client.machine.eventReady(encoded!), for: client)
        }
    }

    /// Queues `event` for every watcher it concerns, encoded once; the events of one wake-up of
    /// the loop leave together, in one send per watcher. Log followers get none of them.
    func broadcast(_ event: Event) {
        var line: [UInt8]?
        for client in clients.values where client.machine.isWatching && client.logFollowTask == nil {
            if let filter = client.watchFilter, let task = event.task, !filter.contains(task) { continue }
            if line == nil { line = event.encodedLine() }
            perform(client.machine.eventReady(line!), for: client)
        }
    }

    // MARK: Accepting

    private func acceptClients() {
        while true {
            var uid: uid_t = 0
            var gid: gid_t = 0
            var pid: pid_t = 0
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
            guard isAuthorized(uid, gid) else {
                refuse(descriptor, ProtocolError(.permissionDenied, "uid \(uid) may not use this socket"))
                continue
            }
            guard clients.count < maximumConnections else {
                refuse(
                    descriptor,
                    ProtocolError(
                        .busy, "too many connections (at most \(maximumConnections)); try again later"))
                continue
            }
            nextClientID += 1
            let machine = ClientConnectionStateMachine(
                maximumLineLength: maximumLineLength, pauseInputAbove: pauseInputAbove,
                maximumWatcherOutput: maximumOutput)
            let client = ClientConnection(
                id: nextClientID, descriptor: descriptor, peerUserID: uid, peerProcessID: pid, machine: machine)
            do {
                // Readable, as a new machine assumes: it asks only for changes.
                try loop.register(descriptor, for: .readable) { [weak self, unowned client] events in
                    self?.serviceClient(client, events)
                }
            } catch {
                Glibc.close(descriptor)
                continue
            }
            clients[descriptor] = client
            clientsChanged?()
        }
    }

    /// One error line, best effort; then the linger (see the type's notes), or, when too many
    /// peers linger already, the connection is closed at once.
    private func refuse(_ descriptor: Int32, _ error: ProtocolError) {
        let line = Reply(id: .null, body: .failure(error)).encodedLine()
        _ = line.withUnsafeBytes { sp_send(descriptor, $0.baseAddress, $0.count) }
        // Closing with unread input would reset the connection, and the client could lose the
        // reply (ECONNRESET) or never read it (EPIPE on its write): read its input out first.
        guard lingering.count < Self.maximumLingering, Glibc.shutdown(descriptor, Int32(SHUT_WR)) == 0 else {
            Glibc.close(descriptor)
            return
        }
        do {
            try loop.register(descriptor, for: .readable) { [weak self] _ in self?.drainRefused(descriptor) }
        } catch {
            Glibc.close(descriptor)
            return
        }
        lingerGeneration += 1
        let generation = lingerGeneration
        lingering[descriptor] = Lingering(generation: generation, discarded: 0)
        lingering[descriptor]?.timer = loop.schedule(after: Self.lingerTime) { [weak self] in
            guard let self, self.lingering[descriptor]?.generation == generation else { return }
            self.lingering[descriptor]?.timer = nil
            self.endLinger(descriptor)
        }
    }

    /// Reads once from a lingering peer and drops the bytes; ends the linger at its end of
    /// input, an error, or ``lingerBytes``.
    private func drainRefused(_ descriptor: Int32) {
        guard lingering[descriptor] != nil else { return }
        let count = Glibc.read(descriptor, loop.readBuffer.baseAddress, loop.readBuffer.count)
        if count > 0 {
            lingering[descriptor]?.discarded += count
            if let entry = lingering[descriptor], entry.discarded < Self.lingerBytes { return }
        } else if count < 0 && (errno == EAGAIN || errno == EINTR) {
            return
        }
        endLinger(descriptor)
    }

    private func endLinger(_ descriptor: Int32) {
        guard let entry = lingering.removeValue(forKey: descriptor) else { return }
        if let timer = entry.timer { loop.cancel(timer) }
        loop.forget(descriptor)
        Glibc.close(descriptor)
    }

    // MARK: Driving the machines

    private func serviceClient(_ client: ClientConnection, _ events: EventLoop.Events) {
        if events.contains(.writable) {
            guard flush(client) else { return }
            perform(client.machine.flushEnded(), for: client)
        }
        let hungUp = events.contains(.hangup) || events.contains(.error)
        if events.contains(.readable) || hungUp {
            perform(client.machine.inputReady(hangUp: hungUp), for: client)
        }
    }

    /// Carries out an action of `client`'s machine, and the actions that follow from it (one
    /// after the other, not nested: a long chain needs no stack).
    private func perform(_ first: ClientConnectionStateMachine.Action, for client: ClientConnection) {
        var action = first
        while true {
            switch action {
            case .none:
                return
            case .read:
                guard let next = read(client) else { return }
                action = next
            case .dispatch:
                action = dispatchRequests(client)
            case .flush:
                guard flush(client) else { return }
                action = client.machine.flushEnded()
            case .flushWhenIdle:
                loop.deferUntilIdle { [weak self] in
                    self?.perform(client.machine.eventBatchEnded(), for: client)
                }
                return
            case .continueNextTurn:
                loop.callNextTurn { [weak self, weak client] in
                    guard let self, let client else { return }
                    self.perform(client.machine.nextTurnStarted(), for: client)
                }
                action = client.machine.nextTurnRequested()
            case .setInterest(let interest):
                var events: EventLoop.Events = []
                if interest.contains(.readable) { events.insert(.readable) }
                if interest.contains(.writable) { events.insert(.writable) }
                loop.watch(client.descriptor, for: events)
                return
            case .armStallTimer(let deadline):
                client.stallTimer = loop.schedule(at: deadline) { [weak self, weak client] in
                    guard let self, let client else { return }
                    client.stallTimer = nil
                    let timeout = self.sendTimeout.nanosecondsClamped
                    self.perform(client.machine.stallTimerFired(now: self.loop.now, sendTimeout: timeout), for: client)
                }
                return
            case .close(let reason):
                finishClosing(client, reason)
                return
            }
        }
    }

    /// Reads once; returns what follows, or nil when the read would block.
    private func read(_ client: ClientConnection) -> ClientConnectionStateMachine.Action? {
        let count = Glibc.read(client.descriptor, loop.readBuffer.baseAddress, loop.readBuffer.count)
        if count > 0 {
            return client.machine.bytesRead(UnsafeRawBufferPointer(rebasing: loop.readBuffer[..<count]))
        } else if count == 0 {
            return client.machine.endOfInput()
        } else if errno == EAGAIN || errno == EINTR {
            return nil
        }
        return client.machine.readFailed()
    }

    /// Answers the requests framed so far, in order, while the client's queued output stays
    /// under ``pauseInputAbove`` and no sliced reply is being written, at most
    /// ``ClientConnectionStateMachine/requestsPerTurn`` of them: one read can hold thousands of
    /// requests, or a thousand whose replies are large (`result` of a 1 MiB output), and they
    /// must neither pile up in memory nor keep the loop from timers and other clients. The rest
    /// wait in the framer until the output drains or the next turn. The replies of one batch
    /// leave together, in one send.
    private func dispatchRequests(_ client: ClientConnection) -> ClientConnectionStateMachine.Action {
        client.machine.beginBatch()
        while let frame = client.machine.nextFrame() {
            switch frame {
            case .request(let line, let slot):
                answerRequest(self, line, slot: slot, from: client)
            case .tooLarge(let length, let slot):
                let message =
                    "request line longer than \(client.machine.maximumLineLength) bytes (\(length) seen); "
                    + "closing the connection"
                reply(Reply(id: .null, body: .failure(ProtocolError(.tooLarge, message))), slot: slot, to: client)
            }
        }
        return client.machine.endBatch()
    }

    fileprivate func dispatch(_ line: [UInt8], slot: Int, from client: ClientConnection) {
        switch Request.decode(line) {
        case .failure(let failure):
            reply(failure.reply, slot: slot, to: client)
        case .success(let request):
            if isShuttingDown {
                let error = ProtocolError(.shuttingDown, "the supervisor is shutting down")
                reply(Reply(to: request, body: .failure(error)), slot: slot, to: client)
                return
            }
            // A client that left is not kept alive for a reply that comes later (`run --wait`).
            handler(request, client) { [self, weak client] response in
                guard let client else { return }
                switch response {
                case .reply(let reply): self.reply(reply, slot: slot, to: client)
                case .slices(let slices):
                    self.perform(client.machine.replyReady(slot: slot, slices: slices), for: client)
                }
            }
        }
    }

    private func reply(_ reply: Reply, slot: Int, to client: ClientConnection) {
        if let slices = SlicedReply(reply) {
            perform(client.machine.replyReady(slot: slot, slices: slices), for: client)
        } else if let slices = SlicedStatusReply(reply) {
            perform(client.machine.replyReady(slot: slot, slices: slices), for: client)
        } else {
            perform(client.machine.replyReady(slot: slot, reply), for: client)
        }
    }

    /// Sends as much queued output as the socket takes. Returns false when the connection was
    /// closed (the peer is gone).
    private func flush(_ client: ClientConnection) -> Bool {
        let descriptor = client.descriptor
        while client.machine.prepareOutput() {
            let sent = client.machine.sendOutput { sp_send(descriptor, $0.baseAddress, $0.count) }
            if sent >= 0 {
                continue
            } else if errno == EAGAIN || errno == EWOULDBLOCK {
                let timeout = sendTimeout.nanosecondsClamped
                perform(client.machine.sendWouldBlock(now: loop.now, sendTimeout: timeout), for: client)
                return true
            } else {
                perform(client.machine.sendFailed(), for: client)
                return false
            }
        }
        return true
    }

    /// Releases what the server holds for a connection its machine closed.
    private func finishClosing(_ client: ClientConnection, _ reason: ClientConnectionStateMachine.CloseReason) {
        switch reason {
        case .watcherTooFarBehind(let held):
            let message = "a watcher is \(held >> 20) MiB of events behind; disconnecting it"
            log?.write(.warning, message, fields(of: client))
        case .stalled(let unsent, let waited):
            let duration = DurationFormat.format(.nanoseconds(waited))
            let message = "a client has read nothing of \(unsent) bytes owed for \(duration); disconnecting it"
            log?.write(.warning, message, fields(of: client))
        case .finished, .peerGone, .lineTooLarge, .serverClosing:
            break
        }
        if let timer = client.stallTimer { loop.cancel(timer) }
        client.stallTimer = nil
        loop.forget(client.descriptor)
        clients.removeValue(forKey: client.descriptor)
        clientsChanged?()
        Glibc.close(client.descriptor)
    }

    private func fields(of client: ClientConnection) -> [(String, String)] {
        [("client", "\(client.id)"), ("pid", "\(client.peerProcessID)")]
    }

    /// Sends each client what the socket takes of its output, closes every client, and stops
    /// accepting.
    func shutdown() {
        for client in Array(clients.values) where flush(client) {
            perform(client.machine.closeRequested(), for: client)
        }
        for descriptor in Array(lingering.keys) { endLinger(descriptor) }
        loop.deregister(listener)
    }
}

extension Reply: ClientOutputQueue.Line {}
extension SlicedReply: ClientOutputQueue.Slices {}
extension SlicedStatusReply: ClientOutputQueue.Slices {}

/// One request line answered: decoded, handled and its reply queued (or, for a big reply, its
/// slicing set up), not sent. The symbol is fixed so that `make bench-check` counts these calls
/// alone in a running supervisor (contrib/bench/count: supervisor_status100).
@_silgen_name("smartpoll_supervisor_request")
@inline(never)
private func answerRequest(_ server: ControlServer, _ line: [UInt8], slot: Int, from client: ClientConnection) {
    server.dispatch(line, slot: slot, from: client)
}
