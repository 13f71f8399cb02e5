#if hasFeature(Embedded)
import CSmartPollPosix
#else
import Glibc
#endif

/// Splits a byte stream into newline-delimited lines (NDJSON framing).
///
/// Feed it whatever arrives with ``append(_:)``, then take frames with ``next()``
/// until it returns `nil`.
///
/// - Lines end with `\n`; a `\r` just before it is removed (`\r\n` is tolerated).
/// - Empty lines (also a lone `\r`) are skipped.
/// - A line longer than ``maximumLineLength`` (not counting its terminator) is
///   reported as ``Frame/tooLarge(length:)`` exactly once, as soon as the limit is
///   crossed, and is not buffered: the framer discards bytes up to the next `\n`
///   and then goes on with the following line. The reported length is the number
///   of bytes of that line seen when the limit was crossed (always greater than
///   the maximum, not the full length: the rest may never arrive).
/// - Bytes after the last `\n` stay buffered until more arrive; a partial line at
///   the end of the stream is never reported (see ``bufferedByteCount``).
///
/// - Complexity: Amortized O(n) in the bytes appended: each byte is scanned once,
///   however the stream is split. Memory is bounded by ``maximumLineLength`` plus
///   the complete lines not yet taken with ``next()``.
public struct LineFramer: Sendable {
    /// One unit of the stream.
    public enum Frame: Sendable, Hashable {
        /// A non-empty line, without its terminator.
        case line([UInt8])
        /// A line over the limit, reported once, its bytes dropped.
        case tooLarge(length: Int)
    }

    /// The longest line accepted, in bytes, without its terminator.
    public let maximumLineLength: Int

    /// The bytes of the line in progress (no `\n` seen yet).
    private var partial: [UInt8] = []
    /// Whether the bytes up to the next `\n` belong to an oversized line.
    private var discarding = false
    /// Frames ready for `next()`, from `frameHead` on.
    private var frames: [Frame] = []
    private var frameHead = 0

    /// - Parameter maximumLineLength: The limit; the protocol's is 1 MiB.
    public init(maximumLineLength: Int = 1 << 20) {
        precondition(maximumLineLength > 0, "maximumLineLength must be positive")
        self.maximumLineLength = maximumLineLength
    }

    /// The number of bytes held for the line in progress; never more than
    /// `maximumLineLength + 1` (the `+ 1` is a possible `\r` before the `\n`).
    public var bufferedByteCount: Int { partial.count }

    /// Whether a frame is waiting for ``next()``.
    public var hasFrames: Bool { frameHead < frames.count }

    /// Whether the framer is dropping the rest of an oversized line.
    public var isDiscarding: Bool { discarding }

    /// Adds bytes received from the stream.
    public mutating func append(_ bytes: UnsafeRawBufferPointer) {
        var index = 0
        let count = bytes.count
        while index < count {
            let newline = LineFramer.firstNewline(in: bytes, from: index)
            let segmentEnd = newline ?? count
            if discarding {
                if newline != nil { discarding = false }
            } else {
                let segment = UnsafeRawBufferPointer(rebasing: bytes[index..<segmentEnd])
                if newline != nil {
                    finishLine(with: segment)
                } else {
                    let pending = partial.count + segment.count
                    // One byte of slack: a trailing \r may be the start of \r\n.
                    if pending > maximumLineLength + 1
                        || (pending == maximumLineLength + 1 && segment.last != UInt8(ascii: "\r"))
                    {
                        frames.append(.tooLarge(length: pending))
                        partial.removeAll(keepingCapacity: false)
                        discarding = true
                    } else {
                        partial.append(contentsOf: segment)
                    }
                }
            }
            index = newline.map { $0 + 1 } ?? count
        }
    }

    /// Adds bytes received from the stream.
    public mutating func append(_ bytes: some Sequence<UInt8>) {
        if let done: Void = bytes.withContiguousStorageIfAvailable({ append(UnsafeRawBufferPointer($0)) }) {
            return done
        }
        let copy = Array(bytes)
        copy.withUnsafeBytes { append($0) }
    }

    /// The next frame, or `nil` when no complete line is buffered.
    public mutating func next() -> Frame? {
        guard frameHead < frames.count else { return nil }
        let frame = frames[frameHead]
        frameHead += 1
        if frameHead == frames.count {
            frames.removeAll(keepingCapacity: true)
            frameHead = 0
        }
        return frame
    }

    private mutating func finishLine(with segment: UnsafeRawBufferPointer) {
        let endsWithReturn = segment.isEmpty ? partial.last == UInt8(ascii: "\r") : segment.last == UInt8(ascii: "\r")
        let length = partial.count + segment.count - (endsWithReturn ? 1 : 0)
        defer {
            // Keep a modest buffer for the next line, but do not pin a large one.
            partial.removeAll(keepingCapacity: partial.capacity <= 64 * 1024)
        }
        if length == 0 { return }
        if length > maximumLineLength {
            frames.append(.tooLarge(length: length))
            return
        }
        var line: [UInt8] = []
        line.reserveCapacity(partial.count + segment.count)
        line.append(contentsOf: partial)
        line.append(contentsOf: segment)
        if endsWithReturn { line.removeLast() }
        frames.append(.line(line))
    }

    private static func firstNewline(in bytes: UnsafeRawBufferPointer, from index: Int) -> Int? {
        guard index < bytes.count, let base = bytes.baseAddress else { return nil }
        // memchr is vectorized; this is the framer's hot loop.
        guard let found = memchr(base + index, Int32(UInt8(ascii: "\n")), bytes.count - index) else { return nil }
        return base.distance(to: UnsafeRawPointer(found))
    }
}
