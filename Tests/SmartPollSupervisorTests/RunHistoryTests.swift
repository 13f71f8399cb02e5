import SmartPollProtocol
import Testing

@testable import SmartPollSupervisor

private let time = Timestamp(nanosecondsSinceEpoch: 1_796_003_072_123_000_000)

/// A history entry for run `run`.
func historyEntry(_ run: Int, exitCode: Int = 0, stderrLast: String? = nil) -> HistoryReply.Entry {
    HistoryReply.Entry(
        run: LastRun(
            run: run, started: time, ended: time.advanced(by: .milliseconds(run)),
            durationMilliseconds: Double(run), exitCode: exitCode, signal: nil, timedOut: false,
            succeeded: exitCode == 0, error: exitCode == 0 ? nil : "exited with status \(exitCode)", stderrTail: "",
            cpuMilliseconds: run % 2 == 0 ? nil : 0.5),
        changed: run % 3 == 0, outputBytes: run * 10, stderrLast: stderrLast)
}

@Suite struct RunHistoryTests {
    private func runs(_ entries: [HistoryReply.Entry]) -> [Int] { entries.map(\.run.run) }

    @Test func theRingKeepsTheNewestAndAnswersNewestFirst() {
        var history = RunHistory(capacity: 0)
        for run in 1...3 { history.append(historyEntry(run), keeping: 5) }
        #expect(runs(history.newestFirst()) == [3, 2, 1])
        for run in 4...12 { history.append(historyEntry(run), keeping: 5) }
        #expect(history.count == 5)
        #expect(runs(history.newestFirst()) == [12, 11, 10, 9, 8])
        #expect(runs(history.newestFirst(limit: 2)) == [12, 11])
        #expect(runs(history.newestFirst(limit: 0)) == [])
        #expect(runs(history.newestFirst(limit: 99)) == [12, 11, 10, 9, 8])
        #expect(runs(history.oldestFirst()) == [8, 9, 10, 11, 12])
    }

    @Test func loweringTheBoundTrimsToTheNewestAndRaisingItKeepsThem() {
        var history = RunHistory(capacity: 0)
        for run in 1...7 { history.append(historyEntry(run), keeping: 4) }
        history.trim(to: 2)
        #expect(runs(history.newestFirst()) == [7, 6])
        history.append(historyEntry(8), keeping: 3)
        #expect(runs(history.newestFirst()) == [8, 7, 6])
        history.append(historyEntry(9), keeping: 3)
        history.append(historyEntry(10), keeping: 6)
        #expect(runs(history.newestFirst()) == [10, 9, 8, 7])
        history.trim(to: 0)
        #expect(history.isEmpty)
        history.append(historyEntry(11), keeping: 0)
        #expect(history.isEmpty, "history: 0 keeps none")
    }

    @Test func twoRingsWithTheSameEntriesAreEqualWhereverTheirStart() {
        var wrapped = RunHistory(capacity: 0)
        for run in 1...5 { wrapped.append(historyEntry(run), keeping: 3) }
        var straight = RunHistory(capacity: 0)
        for run in 3...5 { straight.append(historyEntry(run), keeping: 3) }
        #expect(wrapped == straight)
        straight.append(historyEntry(6), keeping: 3)
        #expect(wrapped != straight)
    }
}
