import SmartPollProtocol
import Testing

@testable import SmartPollSupervisor

@Suite struct TaskLogBufferTests {
    private func time(_ second: Int64) -> Timestamp { Timestamp(nanosecondsSinceEpoch: second * 1_000_000_000) }

    private func texts(_ lines: [LogsReply.Line]) -> [String] { lines.map(\.line) }

    @Test func itKeepsTheLastLinesOldestFirstAndOverwritesTheOldest() {
        let buffer = TaskLogBuffer(capacity: 3)
        #expect(buffer.lines(last: nil).isEmpty)
        for index in 1...2 { buffer.append(time: time(Int64(index)), run: 1, line: "l\(index)") }
        #expect(texts(buffer.lines(last: nil)) == ["l1", "l2"])
        for index in 3...7 { buffer.append(time: time(Int64(index)), run: 2, line: "l\(index)") }
        #expect(buffer.count == 3, "bounded by its capacity")
        #expect(texts(buffer.lines(last: nil)) == ["l5", "l6", "l7"])
        #expect(texts(buffer.lines(last: 2)) == ["l6", "l7"])
        #expect(texts(buffer.lines(last: 10)) == ["l5", "l6", "l7"])
        let last = buffer.lines(last: 1)[0]
        #expect(last.run == 2 && last.time == time(7))
    }

    @Test func capacityZeroKeepsNoneButTheListenerHearsEveryLine() {
        let buffer = TaskLogBuffer(capacity: 0)
        var heard: [String] = []
        buffer.listener = { heard.append($0.line) }
        buffer.append(time: time(1), run: 1, line: "a")
        buffer.append(time: time(2), run: 1, line: "b")
        #expect(buffer.lines(last: nil).isEmpty && buffer.count == 0)
        #expect(heard == ["a", "b"])
    }

    @Test func resizingKeepsTheLastLinesAndTheListener() {
        let buffer = TaskLogBuffer(capacity: 4)
        var heard = 0
        buffer.listener = { _ in heard += 1 }
        for index in 1...6 { buffer.append(time: time(Int64(index)), run: 1, line: "l\(index)") }
        heard = 0
        let smaller = buffer.resized(to: 2)
        #expect(texts(smaller.lines(last: nil)) == ["l5", "l6"])
        #expect(heard == 0, "lines carried over are not heard again")
        smaller.append(time: time(7), run: 2, line: "l7")
        #expect(texts(smaller.lines(last: nil)) == ["l6", "l7"] && heard == 1)
        let larger = buffer.resized(to: 10)
        #expect(texts(larger.lines(last: nil)) == ["l3", "l4", "l5", "l6"])
        #expect(buffer.resized(to: 0).count == 0)
    }
}
