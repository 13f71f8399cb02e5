/// A `result`, `results` or `run` (with `output`) reply whose outputs are large, encoded a slice at a time as the
/// socket drains instead of all at once: `results` of ten 1 MiB binary outputs is 13 MiB of
/// Base64, about a second of one turn of the loop in a debug build.
///
/// The slices, put end to end, are exactly the bytes of ``Reply/encodeLine(into:)``: JSON string
/// escaping touches single ASCII bytes only, so text may be cut anywhere; Base64 is cut at
/// multiples of 3 input bytes; and whether an output is text (valid UTF-8) is checked in slices
/// too, cut where a character starts, before its key (`output` or `output_base64`) is written.
///
/// - Important: The reply is a snapshot: the outputs are copy-on-write arrays, so taking it costs
///   O(results), not O(bytes), and a result stored later does not change a reply under way.
/// - Complexity: each ``encodeSlice(into:budget:)`` does O(`budget`) work (plus one result's
///   leading members); the whole reply is O(bytes) over all its slices.
public struct SlicedReply: Sendable {
    /// Replies whose outputs add up to fewer bytes are encoded at once, as before: a status-sized
    /// reply gains nothing from slicing.
    public static let minimumOutputBytes = 64 << 10

    private let id: JSONValue
    private let results: [TaskResult]
    /// `results` (an object of results) or `result` (one result's members in the reply).
    private let isResults: Bool
    /// For `run` with `wait` and `output`: the outcome, whose members come before the output
    /// (``results`` then holds its output as one result).
    private let outcome: RunOutcome?
    private var phase: Phase

    private enum Phase: Sendable {
        /// Checking whether result `index`'s output is valid UTF-8, valid up to `offset`.
        case checking(index: Int, offset: Int)
        /// Writing result `index`'s output from `offset`, as escaped text or as Base64.
        case body(index: Int, offset: Int, isText: Bool)
        case finished
    }

    /// The reply in slices, or nil when it is neither `result`, `results` nor a `run` outcome
    /// with its output, or when its outputs add up to fewer than `minimumOutputBytes`.
    public init?(_ reply: Reply, minimumOutputBytes: Int = SlicedReply.minimumOutputBytes) {
        var outcome: RunOutcome?
        switch reply.body {
        case .result(let result):
            guard result.output.count >= minimumOutputBytes else { return nil }
            results = [result]
            isResults = false
        case .runFinished(let finished):
            guard let output = finished.output, output.count >= minimumOutputBytes else { return nil }
            results = [
                TaskResult(
                    task: finished.task, run: finished.run, time: Timestamp(nanosecondsSinceEpoch: 0), output: output,
                    truncated: finished.truncated)
            ]
            isResults = false
            outcome = finished
        case .results(let all):
            guard !all.isEmpty, all.reduce(0, { $0 + $1.output.count }) >= minimumOutputBytes else { return nil }
            results = all
            isResults = true
        default:
            return nil
        }
        id = reply.id
        self.outcome = outcome
        phase = .checking(index: 0, offset: 0)
    }

    /// Whether every byte of the reply, newline included, was written.
    public var isFinished: Bool {
        if case .finished = phase { return true }
        return false
    }

    /// Appends the next slice to `output`: about `budget` bytes of encoded output (a UTF-8 check
    /// counts a quarter of the bytes it reads), at least one step. Does nothing once finished.
    public mutating func encodeSlice(into output: inout [UInt8], budget: Int) {
        let start = output.count
        var checked = 0
        while (output.count - start) + checked / 4 < budget {
            switch phase {
            case .finished:
                return
            case .checking(let index, let offset):
                let bytes = results[index].output
                let end = min(bytes.count, offset + max(4 * (budget - (output.count - start)), 4096))
                switch Self.checkUTF8(bytes, offset..<end) {
                case .valid(let next) where next == bytes.count:
                    writeLeadingMembers(index, isText: true, into: &output)
                case .valid(let next):
                    phase = .checking(index: index, offset: next)
                    checked += next - offset
                case .invalid:
                    writeLeadingMembers(index, isText: false, into: &output)
                }
            case .body(let index, let offset, let isText):
                let bytes = results[index].output
                var count = min(bytes.count - offset, max(budget - (output.count - start), 3))
                if !isText && offset + count < bytes.count { count = max(count / 3 * 3, 3) }
                bytes.withUnsafeBufferPointer { buffer in
                    let piece = UnsafeBufferPointer(rebasing: buffer[offset..<offset + count])
                    if isText {
                        var writer = JSONWriter(capacity: count + count / 8)
                        writer.writeEscapedContent(piece)
                        writer.append(to: &output)
                    } else {
                        Base64.encode(piece, appendingTo: &output)
                    }
                }
                if offset + count < bytes.count {
                    phase = .body(index: index, offset: offset + count, isText: isText)
                } else {
                    writeTrailingMembers(index, into: &output)
                }
            }
        }
    }

    /// The reply's head (before the first result) and result `index`'s members up to its
    /// output's opening quote, exactly as ``Reply`` writes them.
    private mutating func writeLeadingMembers(_ index: Int, isText: Bool, into output: inout [UInt8]) {
        var writer = JSONWriter(capacity: 256)
        if index == 0 {
            writer.beginObject()
            writer.key("id")
            writer.value(id)
            writer.key("ok")
            writer.bool(true)
            if isResults {
                writer.key("results")
                writer.beginObject()
            }
        } else {
            writer.raw(UInt8(ascii: ","))
        }
        let result = results[index]
        if isResults {
            writer.key(name: result.task)
            writer.beginObject()
        }
        if let outcome {
            outcome.writeMembersBeforeOutput(to: &writer)
        } else {
            result.writeMembersBeforeOutput(to: &writer)
        }
        writer.key(isText ? "output" : "output_base64")
        writer.raw(UInt8(ascii: "\""))
        writer.append(to: &output)
        phase = .body(index: index, offset: 0, isText: isText)
    }

    /// Closes result `index`'s output and object; after the last result, the reply and its line.
    private mutating func writeTrailingMembers(_ index: Int, into output: inout [UInt8]) {
        output.append(
            contentsOf: results[index].truncated ? #"","truncated":true}"#.utf8 : #"","truncated":false}"#.utf8)
        if index + 1 < results.count {
            phase = .checking(index: index + 1, offset: 0)
            return
        }
        if isResults { output.append(contentsOf: "}}".utf8) }
        output.append(10)
        phase = .finished
    }

    private enum UTF8Check {
        /// Valid up to this offset (a character starts there, or the output ends).
        case valid(Int)
        case invalid
    }

    /// Checks `range` of `bytes`, cut back to where a character starts when it ends inside the
    /// output: the whole output is valid exactly when every piece cut that way is (in valid
    /// UTF-8 each byte that is not a continuation byte starts a character; four continuation
    /// bytes in a row are never valid).
    private static func checkUTF8(_ bytes: [UInt8], _ range: Range<Int>) -> UTF8Check {
        var end = range.upperBound
        if end < bytes.count {
            var steps = 0
            while steps < 3 && end > range.lowerBound && bytes[end] & 0xC0 == 0x80 {
                end -= 1
                steps += 1
            }
            if bytes[end] & 0xC0 == 0x80 { return .invalid }
        }
        let isValid = bytes.withUnsafeBufferPointer { buffer in
            String(validating: UnsafeBufferPointer(rebasing: buffer[range.lowerBound..<end]), as: UTF8.self) != nil
        }
        return isValid ? .valid(end) : .invalid
    }
}
