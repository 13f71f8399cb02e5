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
        heldReplies[slot] = Array(reply.encoded().utf8) + [10]
        while let bytes = heldReplies.removeValue(forKey: nextReplySlot) {
            nextReplySlot += 1
            enqueue(bytes)
        }
    }

    /// Writes one event line to a watching client.
    func send(event line: [UInt8]) {
        guard !isClosed, isWatching else { return }
        enqueue(line)
    }

    private func enqueue(_ bytes: [UInt8]) {
        output.append(contentsOf: bytes)
        flush()
        server?.outputChanged(self)
    }

    /// Writes as much queued output as the socket takes. Returns false when the peer is gone.
    @discardableResult
    func flush() -> Bool {
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
