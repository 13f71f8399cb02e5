/// What one client of the control socket is owed, as bytes in the order they must leave: the
/// replies in request order (a reply that is ready before an earlier one waits for it), then
/// events. A value with no I/O: the owner sends ``withUnsentBytes(_:)`` and reports how much
/// left with ``consume(_:)``.
///
/// Invariants:
/// - `nextReplySlot <= nextRequestSlot`; a slot in `heldReplies` is in `nextReplySlot + 1 ..<
///   nextRequestSlot` (the slot that is due is never held: it goes straight to `bytes`);
/// - `eventsBehindReplies` is empty unless a reply is owed: events never overtake a reply.
///
/// A reply may also come as ``Slices`` (a big `results`): when its slot is due it becomes the
/// queue's producer, and ``refill(below:budget:)`` encodes its next slice only once the unsent
/// bytes fall under a low-water mark, so a big reply is never encoded whole and what is queued
/// of it stays small; the replies and events behind it wait until its last slice.
///
/// - Complexity: the reply that is due is encoded in place, without a copy; a held reply costs one
///   copy (held slices cost nothing until due). Sent bytes are dropped when everything has left,
///   or moved once they are more than 64 KiB and half the buffer, so each byte is moved O(1)
///   times on average.
struct ClientOutputQueue {
    /// A value that writes itself as one line of output (a reply; plain bytes in tests).
    protocol Line {
        /// Appends the line and its newline to `output`.
        func encodeLine(into output: inout [UInt8])
    }

    /// A line written a slice at a time (a big reply; plain bytes in tests).
    protocol Slices {
        /// Whether the whole line, newline included, was written.
        var isFinished: Bool { get }
        /// Appends about `budget` more bytes of the line to `output` (at least one step).
        mutating func encodeSlice(into output: inout [UInt8], budget: Int)
    }

    private enum HeldReply {
        case line([UInt8])
        case slices(any Slices)
    }

    private var bytes: [UInt8] = []
    /// The first byte of `bytes` not sent yet.
    private var start = 0
    private var nextRequestSlot = 0
    /// The slot due next; while `producer` is set, the slot it is writing.
    private var nextReplySlot = 0
    private var heldReplies: [Int: HeldReply] = [:]
    private var heldReplyBytes = 0
    private var eventsBehindReplies: [UInt8] = []
    /// The sliced reply of slot `nextReplySlot`, partly written.
    private var producer: (any Slices)?

    /// Bytes ready to be sent.
    var unsentCount: Int { bytes.count - start }

    /// Everything held for the client: bytes ready to be sent, replies waiting for an earlier
    /// one, and events waiting for the replies.
    var heldCount: Int { unsentCount + heldReplyBytes + eventsBehindReplies.count }

    /// Whether a slot was reserved whose reply has not been filled yet.
    var owesReplies: Bool { nextReplySlot < nextRequestSlot }

    /// Reserves the reply position of the next request; slots count up from 0.
    mutating func reserveSlot() -> Int {
        defer { nextRequestSlot += 1 }
        return nextRequestSlot
    }

    /// Whether a sliced reply is being written: more of it comes with ``refill(below:budget:)``.
    var isProducing: Bool { producer != nil }

    /// Fills a reply slot with `reply`. - Precondition: `slot` was reserved and not filled yet.
    mutating func fill(slot: Int, with reply: some Line) {
        precondition(slot >= nextReplySlot && slot < nextRequestSlot, "reply slot \(slot) is not owed")
        guard slot == nextReplySlot, producer == nil else {
            var line: [UInt8] = []
            reply.encodeLine(into: &line)
            heldReplyBytes += line.count
            heldReplies[slot] = .line(line)
            return
        }
        // The usual case: the reply that is due, encoded straight into the buffer.
        nextReplySlot += 1
        reply.encodeLine(into: &bytes)
        releaseHeldReplies()
    }

    /// Fills a reply slot with a reply written in slices, from ``refill(below:budget:)`` when it
    /// is due. - Precondition: `slot` was reserved and not filled yet.
    mutating func fill(slot: Int, with slices: some Slices) {
        precondition(slot >= nextReplySlot && slot < nextRequestSlot, "reply slot \(slot) is not owed")
        guard slot == nextReplySlot, producer == nil else {
            heldReplies[slot] = .slices(slices)
            return
        }
        producer = slices
    }

    /// Writes slices of the reply being produced while fewer than `lowWater` bytes are unsent,
    /// `budget` bytes a slice, at most `maximumSlices` slices. Returns how many it wrote.
    mutating func refill(below lowWater: Int, budget: Int, maximumSlices: Int) -> Int {
        var written = 0
        while written < maximumSlices, unsentCount < lowWater, var slices = producer {
            producer = nil  // so that the slices are uniquely referenced while they write
            slices.encodeSlice(into: &bytes, budget: budget)
            written += 1
            if slices.isFinished {
                nextReplySlot += 1
                releaseHeldReplies()
            } else {
                producer = slices
            }
        }
        return written
    }

    /// Moves the replies held for the slots now due, in order, up to the next sliced one; then,
    /// when no reply is owed, the events behind them.
    private mutating func releaseHeldReplies() {
        while !heldReplies.isEmpty, let held = heldReplies.removeValue(forKey: nextReplySlot) {
            switch held {
            case .line(let line):
                nextReplySlot += 1
                heldReplyBytes -= line.count
                bytes.append(contentsOf: line)
            case .slices(let slices):
                producer = slices
                return
            }
        }
        if !owesReplies && !eventsBehindReplies.isEmpty {
            bytes.append(contentsOf: eventsBehindReplies)
            eventsBehindReplies = []
        }
    }

    /// Appends an event line, after every reply still owed.
    mutating func appendEvent(_ line: [UInt8]) {
        if owesReplies {
            eventsBehindReplies.append(contentsOf: line)
        } else {
            bytes.append(contentsOf: line)
        }
    }

    /// Calls `body` with the bytes ready to be sent (possibly empty).
    func withUnsentBytes<Result>(_ body: (UnsafeRawBufferPointer) throws -> Result) rethrows -> Result {
        try bytes.withUnsafeBytes { buffer in
            try body(UnsafeRawBufferPointer(rebasing: buffer[start...]))
        }
    }

    /// Drops `count` sent bytes from the front. Once everything has left, the buffer is emptied
    /// (keeping up to 64 KiB of capacity for the next replies).
    /// - Precondition: `0 <= count <= unsentCount`.
    mutating func consume(_ count: Int) {
        precondition(count >= 0 && count <= unsentCount, "consumed more than was unsent")
        start += count
        if start == bytes.count {
            bytes.removeAll(keepingCapacity: bytes.capacity <= 65_536)
            start = 0
        }
    }

    /// Moves the unsent bytes to the front when the sent ones are over 64 KiB and more than half
    /// the buffer: a client that reads slowly must not pin what it already took.
    mutating func compact() {
        guard start > 65_536 && start * 2 > bytes.count else { return }
        bytes.removeFirst(start)
        start = 0
    }

    /// Forgets everything queued and held, for a connection that closed: its memory goes at once,
    /// not when the last late reply arrives.
    mutating func discardAll() {
        bytes = []
        start = 0
        heldReplies = [:]
        heldReplyBytes = 0
        eventsBehindReplies = []
        producer = nil
    }
}
