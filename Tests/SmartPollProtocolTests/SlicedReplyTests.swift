import SmartPollTestSupport
import Testing

@testable import SmartPollProtocol

@Suite("replies written in slices")
struct SlicedReplyTests {
    let time = Timestamp(nanosecondsSinceEpoch: 1_700_000_000_123_000_000)

    /// The slices of `reply`, each of about `budget` bytes, put end to end.
    func sliced(_ reply: Reply, budget: Int, minimum: Int = 1) -> (bytes: [UInt8], slices: Int)? {
        guard var slicer = SlicedReply(reply, minimumOutputBytes: minimum) else { return nil }
        var output: [UInt8] = []
        var slices = 0
        while !slicer.isFinished {
            let before = output.count
            slicer.encodeSlice(into: &output, budget: budget)
            slices += 1
            // A slice may write nothing while it checks UTF-8, never more than a few times the budget.
            #expect(output.count - before <= 6 * budget + 256)
            if slices > 1_000_000 { return nil }
        }
        return (output, slices)
    }

    func outputs(seed: UInt64) -> [[UInt8]] {
        var random = SplitMix64(seed: seed)
        let text = Array("plain \"quoted\" back\\slash\ttab\n é 😀 \u{7F} \u{1} end".utf8)
        var binary = (0..<5_000).map { _ in UInt8(truncatingIfNeeded: random.next()) }
        binary[0] = 0xFF
        let lateInvalid: [UInt8] = Array(Array(repeating: text, count: 200).joined()) + [0xC3]
        let longText: [UInt8] = Array(Array(repeating: text, count: 300).joined())
        let wide: [UInt8] = Array(Array(repeating: Array("é😀".utf8), count: 3_000).joined())
        return [longText, binary, lateInvalid, [], Array("x".utf8), wide]
    }

    @Test("the slices of results, put end to end, are the reply encoded at once, whatever the budget")
    func resultsSlicesEqualTheWholeReply() throws {
        let results = outputs(seed: 7).enumerated().map { index, output in
            TaskResult(task: "t\(index) \"q\"", run: index + 1, time: time, output: output, truncated: index % 2 == 0)
        }
        for id: JSONValue in [.null, .int(42), .string("a\"b")] {
            let reply = Reply(id: id, body: .results(results))
            let whole = reply.encodedLine()
            for budget in [1, 2, 3, 7, 100, 4_096, 65_536, 1 << 22] {
                let (bytes, slices) = try #require(sliced(reply, budget: budget))
                #expect(bytes == whole, "budget \(budget)")
                if budget <= 4_096 { #expect(slices > 5) }
            }
        }
    }

    @Test("the slices of a status of many tasks are the reply encoded at once, whatever the budget")
    func statusSlicesEqualTheWholeReply() throws {
        let tail = String(repeating: "line \"with\" escapes\t\n", count: 150)
        let tasks = (0..<300).map { index in
            TaskStatus(
                name: "task-\(index)", scheduled: index % 2 == 0, ready: false, next: index % 3 == 0 ? time : nil,
                running: false, pid: nil, run: nil, runs: index, failures: index / 2, cancelled: index / 3,
                last: index % 4 == 0
                    ? nil
                    : LastRun(
                        run: index, started: time, ended: time, durationMilliseconds: 1.5, exitCode: 0, signal: nil,
                        timedOut: false, succeeded: true, error: nil, stderrTail: tail))
        }
        let status = StatusReply(
            loop: LoopStatus(state: .running, since: time, runs: 1, error: nil), tasks: tasks,
            stateFile: StateFileStatus(path: "/s/state.json", saved: time, error: nil, failingSince: nil),
            containment: ContainmentStatus(mode: .cgroup, root: "/sys/fs/cgroup/x"),
            hooks: [HookRunStatus(name: "h", running: true, run: 3, pid: 4, started: time)])
        for id: JSONValue in [.null, .int(42), .string("a\"b")] {
            let reply = Reply(id: id, body: .status(status))
            let whole = reply.encodedLine()
            for budget in [1, 100, 4_096, 65_536, 1 << 24] {
                var slicer = try #require(SlicedStatusReply(reply))
                var bytes: [UInt8] = []
                var slices = 0
                while !slicer.isFinished {
                    slicer.encodeSlice(into: &bytes, budget: budget)
                    slices += 1
                }
                #expect(bytes == whole, "budget \(budget)")
                if budget <= 4_096 { #expect(slices > 100) }
            }
        }
        let small = Reply(id: .int(1), body: .status(StatusReply(loop: status.loop, tasks: Array(tasks.prefix(3)))))
        #expect(SlicedStatusReply(small) == nil, "a small status goes at once")
    }

    @Test("the slices of a logs reply of many lines are the reply encoded at once")
    func logsSlicesEqualTheWholeReply() throws {
        let text = String(repeating: "a \"quoted\" line\t", count: 200)
        let lines = (0..<500).map { LogsReply.Line(time: time, run: $0 + 1, line: "\($0) " + text) }
        let reply = Reply(id: .int(7), body: .logs(LogsReply(task: "w1", lines: lines)))
        let whole = reply.encodedLine()
        for budget in [1, 100, 65_536, 1 << 24] {
            var slicer = try #require(SlicedStatusReply(reply))
            var bytes: [UInt8] = []
            while !slicer.isFinished { slicer.encodeSlice(into: &bytes, budget: budget) }
            #expect(bytes == whole, "budget \(budget)")
        }
        let small = Reply(id: .int(1), body: .logs(LogsReply(task: "w1", lines: Array(lines.prefix(2)))))
        #expect(SlicedStatusReply(small) == nil, "a few lines go at once")
    }

    @Test("the slices of a history reply of many entries are the reply encoded at once")
    func historySlicesEqualTheWholeReply() throws {
        let last = String(repeating: "é\"", count: 85)
        let entries = (0..<1_000).map {
            HistoryReply.Entry(
                run: LastRun(
                    run: 1_000 - $0, started: time, ended: time, durationMilliseconds: 1.5, exitCode: $0 % 2,
                    signal: nil, timedOut: false, succeeded: $0 % 2 == 0, error: $0 % 2 == 0 ? nil : "exit 1",
                    stderrTail: "", cpuMilliseconds: $0 % 3 == 0 ? nil : 0.25),
                changed: $0 % 5 == 0, outputBytes: $0, stderrLast: $0 % 7 == 0 ? nil : last)
        }
        let reply = Reply(id: .int(7), body: .history(HistoryReply(task: "w1", entries: entries)))
        let whole = reply.encodedLine()
        for budget in [1, 100, 65_536, 1 << 24] {
            var slicer = try #require(SlicedStatusReply(reply))
            var bytes: [UInt8] = []
            while !slicer.isFinished { slicer.encodeSlice(into: &bytes, budget: budget) }
            #expect(bytes == whole, "budget \(budget)")
        }
        let decoded = try Reply.decode(whole, for: .history(task: "w1", limit: nil))
        #expect(decoded.body == reply.body, "decodes back")
        let small = Reply(id: .int(1), body: .history(HistoryReply(task: "w1", entries: Array(entries.prefix(2)))))
        #expect(SlicedStatusReply(small) == nil, "a few entries go at once")
    }

    @Test("a history entry has the members of status's last but stderr_tail, then three of its own")
    func historyEntryKeysAreLastsKeys() throws {
        let run = LastRun(
            run: 3, started: time, ended: time, durationMilliseconds: 2, exitCode: nil, signal: 9, timedOut: true,
            succeeded: false, error: "timed out", stderrTail: "a\nb\n", cpuMilliseconds: 1)
        var lastWriter = JSONWriter(capacity: 256)
        run.write(to: &lastWriter)
        var entryWriter = JSONWriter(capacity: 256)
        HistoryReply.Entry(run: run, changed: false, outputBytes: 0, stderrLast: "b").write(to: &entryWriter)
        func keys(_ writer: borrowing JSONWriter) throws -> [String] {
            var bytes: [UInt8] = []
            writer.append(to: &bytes)
            guard case .object(let object) = try JSONParser.parse(bytes, mode: .strict) else { return [] }
            return object.keys
        }
        #expect(
            try keys(entryWriter)
                == (try keys(lastWriter)).filter { $0 != "stderr_tail" } + ["changed", "output_bytes", "stderr_last"])
    }

    @Test("stderr_last is the last non-empty line, at most 256 bytes, cut on a character boundary")
    func stderrLastIsTheLastLineCut() {
        #expect(HistoryReply.Entry.lastLine(of: "") == nil)
        #expect(HistoryReply.Entry.lastLine(of: "\n\r\n") == nil)
        #expect(HistoryReply.Entry.lastLine(of: "one\ntwo\r\n\n") == "two")
        #expect(HistoryReply.Entry.lastLine(of: "only") == "only")
        let ascii = String(repeating: "x", count: 300)
        #expect(HistoryReply.Entry.lastLine(of: "first\n" + ascii + "\n") == String(repeating: "x", count: 256))
        // "a" then two-byte characters: byte 256 is the second byte of one, which is left out.
        let cut = HistoryReply.Entry.lastLine(of: "a" + String(repeating: "é", count: 150))
        #expect(cut == "a" + String(repeating: "é", count: 127) && cut?.utf8.count == 255)
        let emoji = HistoryReply.Entry.lastLine(of: String(repeating: "😀", count: 100))
        #expect(emoji == String(repeating: "😀", count: 64))
    }

    @Test("the slices of result are the reply encoded at once, text and Base64 alike")
    func resultSlicesEqualTheWholeReply() throws {
        for output in outputs(seed: 11) where !output.isEmpty {
            let reply = Reply(
                id: .string("r"),
                body: .result(TaskResult(task: "w", run: 3, time: time, output: output, truncated: true)))
            for budget in [1, 5, 1_000, 1 << 20] {
                #expect(try #require(sliced(reply, budget: budget)).bytes == reply.encodedLine())
            }
        }
    }

    @Test("a multi-byte character cut by a slice of the UTF-8 check still makes the output text")
    func characterCutByTheCheckStaysText() throws {
        // 4095 ASCII bytes, then a 4-byte character across the first check's 4096-byte cut.
        let output: [UInt8] =
            Array(repeating: UInt8(ascii: "a"), count: 4_095) + Array("😀".utf8) + Array(repeating: 98, count: 9_000)
        let reply = Reply(body: .result(TaskResult(task: "w", run: 1, time: time, output: output, truncated: false)))
        let (bytes, _) = try #require(sliced(reply, budget: 1))
        #expect(bytes == reply.encodedLine())
        #expect(String(decoding: bytes, as: UTF8.self).contains(#""output":"aaa"#))
    }

    @Test("small replies and other replies are not sliced")
    func smallRepliesAreNotSliced() {
        let small = TaskResult(
            task: "w", run: 1, time: time, output: Array(repeating: 65, count: 1_000), truncated: false)
        #expect(SlicedReply(Reply(body: .result(small))) == nil)
        #expect(SlicedReply(Reply(body: .results([small, small]))) == nil)
        #expect(SlicedReply(Reply(body: .results([]))) == nil)
        #expect(SlicedReply(Reply(body: .ok)) == nil)
        let big = TaskResult(
            task: "w", run: 1, time: time, output: Array(repeating: 65, count: 70_000), truncated: false)
        #expect(SlicedReply(Reply(body: .result(big))) != nil)
        #expect(SlicedReply(Reply(body: .results([small, big]))) != nil)
    }

    @Test("Base64 appended in pieces of multiples of 3 bytes equals Base64 of the whole")
    func base64InPieces() {
        var random = SplitMix64(seed: 3)
        for count in [0, 1, 2, 3, 4, 5, 6, 299, 300, 301] {
            let bytes = (0..<count).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            var output: [UInt8] = []
            bytes.withUnsafeBufferPointer { buffer in
                var offset = 0
                while offset < count {
                    let end = min(count, offset + 3 * (1 + offset % 4))
                    Base64.encode(UnsafeBufferPointer(rebasing: buffer[offset..<end]), appendingTo: &output)
                    offset = end
                }
            }
            #expect(String(decoding: output, as: UTF8.self) == Base64.encode(bytes))
            #expect(Base64.decode(Base64.encode(bytes)) == bytes)
        }
    }

    @Test("a metrics reply written as head, escaped pieces cut anywhere and tail is the reply encoded at once")
    func metricsReplyInPieces() throws {
        let text = "# HELP a \\ help\nm{task=\"q\\\"x\\ny\"} 1\n\u{1}é😀\t\u{7F}end\n"
        let bytes = Array(String(repeating: text, count: 40).utf8)
        for id: JSONValue in [.null, .int(7), .string("a\"b")] {
            let whole = Reply(id: id, body: .metrics(MetricsReply(text: String(decoding: bytes, as: UTF8.self))))
            var expected: [UInt8] = []
            whole.encodeLine(into: &expected)
            for step in [1, 2, 3, 7, 64, 1_000, bytes.count] {
                var output = MetricsReply.encodedHead(id: id)
                bytes.withUnsafeBufferPointer { buffer in
                    var offset = 0
                    while offset < buffer.count {
                        let end = min(buffer.count, offset + step)
                        MetricsReply.appendEscaped(UnsafeBufferPointer(rebasing: buffer[offset..<end]), to: &output)
                        offset = end
                    }
                }
                output += MetricsReply.encodedTail
                #expect(output == expected, "pieces of \(step) bytes, id \(id)")
            }
            let decoded = try Reply.decode(expected.dropLast(), for: .metrics)
            #expect(decoded.body == whole.body)
        }
    }
}
