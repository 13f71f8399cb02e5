import SmartPollProtocol
import SmartPollTestSupport

/// What every input must satisfy, for the coverage-guided fuzzer (`make fuzz`, which compiles
/// this file into `contrib/fuzz/protocol` through a symbolic link) and for the regression
/// inputs it found (`Fixtures/fuzz`). No Foundation and no test framework: a broken property
/// is returned as a sentence, which the fuzzer turns into a crash.
///
/// An input is a control byte for the line limit, a seed for where the stream is cut, then the
/// stream. The stream goes through ``LineFramer`` in pieces, compared with a plain reference
/// framing; every line then goes through every decoder the two programs use: requests (the
/// socket's, and directives' with a default task), replies to each command and events
/// (smartpollctl's), and the lenient parser (configuration files). Anything that decodes must
/// encode to a canonical form that decodes to the same thing.
public enum ProtocolFuzzOracle {
    public static func check(_ input: UnsafeRawBufferPointer) -> String? {
        guard input.count >= 2 else { return nil }
        let limit = input[0] < 128 ? 1 << 20 : 16 + Int(input[0] & 63)
        var random = SplitMix64(seed: UInt64(input[1]))
        let stream = UnsafeRawBufferPointer(rebasing: input[2...])

        var framer = LineFramer(maximumLineLength: limit)
        var frames: [LineFramer.Frame] = []
        var offset = 0
        while offset < stream.count {
            let size = 1 + Int(random.next() % 97)
            let end = min(stream.count, offset + size)
            framer.append(UnsafeRawBufferPointer(rebasing: stream[offset..<end]))
            while let frame = framer.next() { frames.append(frame) }
            offset = end
        }
        if let failure = compareFraming(frames, stream: stream, limit: limit, framer: framer) { return failure }
        for frame in frames.prefix(64) {
            guard case .line(let line) = frame, line.count <= 8_192 else { continue }
            if let failure = checkLine(line) { return failure }
        }
        return nil
    }

    /// The framing the framer documents, done the plain way on the whole stream.
    static func compareFraming(
        _ frames: [LineFramer.Frame], stream: UnsafeRawBufferPointer, limit: Int, framer: LineFramer
    ) -> String? {
        var expected: [LineFramer.Frame?] = []  // nil: a tooLarge of any length
        var start = 0
        for index in 0..<stream.count where stream[index] == 10 {
            var line = Array(stream[start..<index])
            if line.last == 13 { line.removeLast() }
            start = index + 1
            if line.isEmpty { continue }
            expected.append(line.count > limit ? nil : .line(line))
        }
        // The partial last line: reported as too large as soon as it cannot be one any more.
        let partial = stream.count - start
        if partial > limit + 1 || (partial == limit + 1 && stream[stream.count - 1] != 13) {
            expected.append(nil)
            if !framer.isDiscarding {
                return "framing: a partial line of \(partial) bytes over the limit \(limit) is not being discarded"
            }
        } else if framer.bufferedByteCount != partial {
            return "framing: \(framer.bufferedByteCount) bytes buffered, \(partial) expected"
        }
        guard frames.count == expected.count else {
            return "framing: \(frames.count) frames, \(expected.count) expected (limit \(limit))"
        }
        for (position, (frame, want)) in zip(frames, expected).enumerated() {
            switch (frame, want) {
            case (.tooLarge(let length), nil) where length > limit: continue
            case (.line(let got), .line(let line)?) where got == line: continue
            default:
                return
                    "framing: frame \(position) is \(frame), expected \(want.map { "\($0)" } ?? "tooLarge") (limit \(limit))"
            }
        }
        return nil
    }

    /// Replies are decoded against each command whose reply has its own shape.
    static let commands: [Command] = [
        .ping, .status(tasks: nil), .schedule(task: "t", when: .after(.seconds(1)), sooner: false),
        .stopTimer(task: "t"),
        .run(task: "t", wait: true), .run(task: "t", wait: false), .result(task: "t"), .results, .reload,
        .watch(tasks: nil),
    ]

    public static func checkLine(_ line: [UInt8]) -> String? {
        // The socket's way, from the bytes; then, from the one parse, a directive's (with a
        // default task), smartpollctl's (replies to each command, events). One parse a line:
        // a parse per decoder made the fuzzer eight times slower.
        if let failure = checkRequest(Request.decode(line)) { return failure }
        guard let value = try? JSONParser.parse(line, mode: .strict) else {
            // Not strict JSON: what the lenient parser (configuration files) makes of it.
            if let value = try? JSONParser.parse(line, mode: .lenient) {
                let text = value.serialized()
                guard let again = try? JSONParser.parse(text, mode: .strict), again.serialized() == text else {
                    return "json: \(text) (from the lenient parser) is not strict JSON that serializes the same"
                }
            }
            return nil
        }
        let text = value.serialized()
        guard let again = try? JSONParser.parse(text, mode: .strict), again == value else {
            return "json: \(text) does not parse back to the same value"
        }
        if let failure = checkRequest(Request.decode(value, defaultTask: "self")) { return failure }
        if let event = try? Event.decode(value) {
            let once = event.encoded()
            guard let again = try? Event.decode(once.utf8) else { return "event: \(once) does not decode" }
            guard again.encoded() == once else { return "event: \(once) encodes as \(again.encoded()) the second time" }
        }
        for command in commands {
            guard let reply = try? Reply.decode(value, for: command) else { continue }
            let once = reply.encoded()
            guard let again = try? Reply.decode(once.utf8, for: command) else {
                return "reply to \(command.name): \(once) does not decode"
            }
            guard again.encoded() == once else {
                return "reply to \(command.name): \(once) encodes as \(again.encoded()) the second time"
            }
        }
        return nil
    }

    /// A decoded request encodes to one that decodes to it; an error has a message and an error
    /// reply a client reads back as that error.
    static func checkRequest(_ result: Result<Request, RequestDecodeFailure>) -> String? {
        switch result {
        case .success(let request):
            guard case .success(let again) = Request.decode(request.encoded()), again == request else {
                return "request: \(request.encoded()) does not decode back to \(request)"
            }
        case .failure(let failure):
            if failure.error.message.isEmpty { return "request: an error without a message" }
            let reply = failure.reply.encodedLine()
            guard reply.last == 10, !reply.dropLast().contains(10) else {
                return "request: the error reply is not one line"
            }
            guard let decoded = try? Reply.decode(reply.dropLast(), for: .ping),
                case .failure(let error) = decoded.body,
                error.code == failure.error.code, error.message == failure.error.message,
                decoded.id == failure.id ?? .null
            else { return "request: the error reply \(String(decoding: reply, as: UTF8.self)) does not decode back" }
        }
        return nil
    }
}
