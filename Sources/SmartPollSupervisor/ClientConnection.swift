import CSmartPollPosix
import SmartPollProtocol
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// One client of the control socket: its framer, its ordered reply slots and its output
/// buffer. Replies leave in request order even when one is answered later (`run --wait`).
final class ClientConnection {
    let id: Int
    let descriptor: Int32
    let peerUserID: UInt32
    let peerProcessID: Int32
    var framer: LineFramer
    /// Set once `watch` was answered: the connection is an event stream, input is ignored.
    var watchFilter: Set<String>?
    var isWatching = false
    /// Set once the peer ended its side (`shutdown(SHUT_WR)`, as `nc -N` does): no more
    /// requests, but the replies still owed (and, for a watcher, events) are sent; the
    /// connection is closed once they have all left.
    var isInputClosed = false
    private(set) var isClosed = false

    private var nextRequestSlot = 0
    private var nextReplySlot = 0
    private var heldReplies: [Int: [UInt8]] = [:]
    private var output: [UInt8] = []
    private var outputStart = 0
    /// While above zero, queued output waits for ``endBatch()`` instead of leaving at once: the
    /// replies to a burst of pipelined requests leave in one `send`.
    private var batchDepth = 0
    private var flushDeferred = false
    /// What the event loop watches the descriptor for (registered as readable).
    var interest: EventLoop.Events = .readable
    /// When the client last took queued output, or output began to wait (monotonic ns).
    private(set) var lastOutputProgress: Int64 = 0
    /// Fires when queued output may have waited too long (see ``ControlServer/sendTimeout``).
    var stallTimer: EventLoop.TimerID?
    fileprivate weak var server: ControlServer?

    init(id: Int, descriptor: Int32, peerUserID: UInt32, peerProcessID: Int32, maximumLineLength: Int, server: ControlServer) {
        self.id = id
        self.descriptor = descriptor
        self.peerUserID = peerUserID
        self.peerProcessID = peerProcessID
        framer = LineFramer(maximumLineLength: maximumLineLength)
        self.server = server
    }

    /// Bytes queued but not yet taken by the kernel.
    var pendingOutput: Int { output.count - outputStart }

    /// Whether a request was taken whose reply has not been queued yet.
    var hasOutstandingReplies: Bool { nextReplySlot < nextRequestSlot }

    /// Reserves the reply position of the next request.
    func takeSlot() -> Int {
        defer { nextRequestSlot += 1 }
        return nextRequestSlot
    }

    /// Fills a reply slot; replies are written in slot order.
    func reply(_ reply: Reply, slot: Int) {
        guard !isClosed else { return }
        guard slot == nextReplySlot else {
            heldReplies[slot] = reply.encodedLine()
            return
        }
        // The usual case: the reply that is due next, written straight into the output buffer.
        nextReplySlot += 1
        reply.encodeLine(into: &output)
        while !heldReplies.isEmpty, let bytes = heldReplies.removeValue(forKey: nextReplySlot) {
            nextReplySlot += 1
            output.append(contentsOf: bytes)
        }
        outputQueued()
    }

    /// Queues one event line for a watching client; the events of one wake-up of the loop
    /// leave together, in one write, once it has handled them all.
    func send(event line: [UInt8], loop: EventLoop) {
        guard !isClosed, isWatching else { return }
        if !eventBatchOpen {
            eventBatchOpen = true
            beginBatch()
            loop.deferUntilIdle { [self] in
                eventBatchOpen = false
                endBatch()
            }
        }
        enqueue(line)
    }

    private var eventBatchOpen = false
    /// Whether output was left waiting by the previous flush.
    private var wasWaiting = false

    private func enqueue(_ bytes: [UInt8]) {
        output.append(contentsOf: bytes)
        outputQueued()
    }

    private func outputQueued() {
        if batchDepth > 0 {
            flushDeferred = true
            return
        }
        flush()
        server?.outputChanged(self)
    }

    /// Holds output back until the matching ``endBatch()``.
    func beginBatch() {
        batchDepth += 1
    }

    /// Sends what was queued since ``beginBatch()``.
    func endBatch() {
        batchDepth -= 1
        guard batchDepth == 0, flushDeferred, !isClosed else { return }
        flushDeferred = false
        flush()
        server?.outputChanged(self)
    }

    /// Writes as much queued output as the socket takes. Returns false when the peer is gone.
    @discardableResult
    func flush() -> Bool {
        defer {
            // Output that begins to wait now starts the clock of the send timeout; every byte
            // the client takes restarts it.
            let waiting = outputStart < output.count
            if waiting && !wasWaiting { lastOutputProgress = sp_monotonic_ns() }
            wasWaiting = waiting
        }
        while outputStart < output.count {
            let sent = output.withUnsafeBytes { buffer in
                sp_send(descriptor, buffer.baseAddress! + outputStart, buffer.count - outputStart)
            }
            if sent < 0 {
                if errno == EAGAIN || errno == EWOULDBLOCK { break }
                server?.close(self)
                return false
            }
            outputStart += sent
            if sent > 0 { lastOutputProgress = sp_monotonic_ns() }
        }
        if outputStart == output.count {
            output.removeAll(keepingCapacity: output.capacity <= 65_536)
            outputStart = 0
        } else if outputStart > 65_536 && outputStart * 2 > output.count {
            output.removeFirst(outputStart)
            outputStart = 0
        }
        return true
    }

    func markClosed() {
        isClosed = true
        output = []
        heldReplies = [:]
    }
}
