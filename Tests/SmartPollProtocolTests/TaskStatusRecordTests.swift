import Testing

@testable import SmartPollProtocol

@Suite("status rows kept encoded")
struct TaskStatusRecordTests {
    static let time = Timestamp(nanosecondsSinceEpoch: 1_700_000_000_123_000_000)

    static let lastRun = LastRun(
        run: 4, started: time, ended: time.advanced(by: .milliseconds(250)), durationMilliseconds: 250.5,
        exitCode: 0, signal: nil, timedOut: false, succeeded: true, error: nil, stderrTail: "fine\n",
        cpuMilliseconds: 1.25)

    static let first = TaskStatus(
        name: "poll \"ä\"", scheduled: true, ready: false, next: time.advanced(by: .seconds(60)), running: false,
        pid: nil, run: nil, runs: 4, failures: 1, cancelled: 0, paused: false, last: lastRun)

    /// Each step changes one thing a row shows (every field of the row, and every field of its
    /// last run), some twice, some back to an earlier value.
    static let steps: [(String, @Sendable (inout TaskStatus) -> Void)] = [
        ("name", { $0.name = "poll-2" }),
        ("scheduled", { $0.scheduled = false }),
        ("next cleared", { $0.next = nil }),
        ("next set", { $0.next = time }),
        ("next by 1 ms", { $0.next = time.advanced(by: .milliseconds(1)) }),
        ("ready", { $0.ready = true }),
        ("running", { $0.running = true }),
        ("pid", { $0.pid = 4242 }),
        ("run", { $0.run = 5 }),
        ("not ready", { $0.ready = false }),
        ("runs", { $0.runs += 1 }),
        ("failures", { $0.failures += 1 }),
        ("cancelled", { $0.cancelled += 1 }),
        ("paused", { $0.paused = true }),
        ("resumed", { $0.paused = false }),
        (
            "run ended",
            {
                $0.running = false
                $0.pid = nil
                $0.run = nil
            }
        ),
        ("last.run", { $0.last?.run = 5 }),
        ("last.started", { $0.last?.started = time.advanced(by: .seconds(1)) }),
        ("last.ended", { $0.last?.ended = time.advanced(by: .seconds(2)) }),
        ("last.duration", { $0.last?.durationMilliseconds = 1_000.25 }),
        ("last.exit code", { $0.last?.exitCode = 3 }),
        ("last.succeeded", { $0.last?.succeeded = false }),
        (
            "last.signal",
            {
                $0.last?.exitCode = nil
                $0.last?.signal = 9
            }
        ),
        ("last.timed out", { $0.last?.timedOut = true }),
        ("last.error", { $0.last?.error = "spawn failed: \"x\"" }),
        ("last.stderr tail", { $0.last?.stderrTail = "boom\n\u{1}" }),
        ("last.stderr tail, one byte", { $0.last?.stderrTail = "boom\n\u{2}" }),
        ("last.cpu", { $0.last?.cpuMilliseconds = nil }),
        ("last cleared", { $0.last = nil }),
        ("last again", { $0.last = lastRun }),
    ]

    /// A row encoded as a reply writes it, without the record.
    static func fresh(_ row: TaskStatus) -> String {
        var writer = JSONWriter()
        row.write(to: &writer)
        return writer.text
    }

    @Test("a kept row changes exactly when a field it shows changes, and its text is always a fresh encoding")
    func recordFollowsEveryField() {
        var row = Self.first
        var record = TaskStatusRecord(row)
        #expect(record.text == Self.fresh(row) && record.isEncoded)
        #expect(TaskStatusRecord(unencoded: row).text == Self.fresh(row))
        #expect(!TaskStatusRecord(unencoded: row).isEncoded)
        for (name, change) in Self.steps {
            let before = record
            change(&row)
            record = record.updated(to: row)
            #expect(record !== before, "\(name): the row changed, the text must be made again")
            #expect(record.status == row, "\(name)")
            #expect(record.text == Self.fresh(row), "\(name)")
            #expect(record.text != before.text, "\(name): the change shows in the text")
            // Nothing changed since: the same record, not encoded again.
            let again = record.updated(to: row)
            #expect(again === record, "\(name): an unchanged row keeps its text")
        }
    }

    @Test("a row equal to the kept one but held in other storage keeps the text")
    func equalRowInOtherStorageKeepsTheText() {
        var row = Self.first
        row.name = String(repeating: "long name ", count: 5)
        row.last?.stderrTail = String(repeating: "tail ", count: 50)
        let record = TaskStatusRecord(row)
        var copy = row
        copy.name = String(repeating: "long name ", count: 5)
        copy.last?.stderrTail = String(repeating: "tail ", count: 50)
        #expect(record.updated(to: copy) === record)
    }

    static func rows(_ count: Int) -> [TaskStatus] {
        (0..<count).map { index in
            var row = first
            row.name = "task-\(index)"
            row.runs = index
            row.next = index % 3 == 0 ? nil : time.advanced(by: .seconds(index))
            row.scheduled = row.next != nil
            row.running = index % 5 == 0
            row.pid = row.running ? 1_000 + index : nil
            row.last = index % 4 == 0 ? nil : lastRun
            if index % 7 == 0 { row.last?.stderrTail = String(repeating: "line \"q\"\t\n", count: 40 * index) }
            return row
        }
    }

    static func statusReply(records: Bool, rows: [TaskStatus]) -> StatusReply {
        let loop = LoopStatus(state: .running, since: time, runs: 2, error: nil)
        let hooks = [HookRunStatus(name: "h", running: false)]
        let containment = ContainmentStatus(mode: .subreaper, root: nil)
        return records
            // One row in three without text (beyond a request's encoding budget): formatted when written.
            ? StatusReply(
                loop: loop,
                records: rows.enumerated().map { index, row in
                    index % 3 == 1 ? TaskStatusRecord(unencoded: row) : TaskStatusRecord(row)
                }, containment: containment, hooks: hooks)
            : StatusReply(loop: loop, tasks: rows, containment: containment, hooks: hooks)
    }

    @Test("a status reply of records is byte for byte the reply of the same rows formatted")
    func recordsReplyEncodesAsRows() throws {
        for count in [0, 1, 2, 100] {
            let rows = Self.rows(count)
            let kept = Reply(id: .int(7), body: .status(Self.statusReply(records: true, rows: rows)))
            let formatted = Reply(id: .int(7), body: .status(Self.statusReply(records: false, rows: rows)))
            #expect(kept.encodedLine() == formatted.encodedLine(), "\(count) rows")
            // Appended to a buffer (the supervisor's output queue), after what it holds already.
            var queued = Array("earlier\n".utf8)
            kept.encodeLine(into: &queued)
            #expect(queued == Array("earlier\n".utf8) + formatted.encodedLine(), "\(count) rows, queued")
            for id: JSONValue in [.null, .string("q\"uote"), .int(-3)] {
                var line: [UInt8] = []
                Reply(id: id, body: kept.body).encodeLine(into: &line)
                #expect(line == Reply(id: id, body: formatted.body).encodedLine())
            }
            #expect(kept == formatted)
            #expect(kept.hashValue == formatted.hashValue)
            guard case .status(let status) = kept.body else { return }
            #expect(status.tasks == rows)
            let decoded = try Reply.decode(kept.encodedLine(), for: .status(tasks: nil))
            #expect(decoded == formatted)
        }
    }

    @Test("the slices of a status reply of records are the reply encoded at once")
    func recordsReplySlices() throws {
        let rows = Self.rows(60)
        let reply = Reply(id: .string("s"), body: .status(Self.statusReply(records: true, rows: rows)))
        let whole = Reply(id: .string("s"), body: .status(Self.statusReply(records: false, rows: rows))).encodedLine()
        for budget in [1, 100, 4_096] {
            var slicer = try #require(SlicedStatusReply(reply, minimumEstimatedBytes: 1))
            var output: [UInt8] = []
            while !slicer.isFinished { slicer.encodeSlice(into: &output, budget: budget) }
            #expect(output == whole, "budget \(budget)")
        }
        // The estimate of a reply of records is its rows' size: this one is over 64 KiB.
        #expect(SlicedStatusReply(reply) != nil)
    }

    @Test("changing the rows of a reply of records drops their text")
    func settingRowsDropsTheText() {
        var rows = Self.rows(5)
        var status = Self.statusReply(records: true, rows: rows)
        status.tasks[2].runs = 999
        status.tasks[3].last?.stderrTail = "changed"
        rows[2].runs = 999
        rows[3].last?.stderrTail = "changed"
        let formatted = Self.statusReply(records: false, rows: rows)
        #expect(Reply(body: .status(status)).encodedLine() == Reply(body: .status(formatted)).encodedLine())
        #expect(status == formatted)
    }

    @Test("a status reply of a joined record list is byte for byte the reply of its rows, whole and in slices")
    func recordListReplyEncodesAsRows() throws {
        let loop = LoopStatus(state: .running, since: Self.time, runs: 2, error: nil)
        let containment = ContainmentStatus(mode: .subreaper, root: nil)
        #expect(TaskStatusRecordList([TaskStatusRecord(Self.first), TaskStatusRecord(unencoded: Self.first)]) == nil)
        for count in [0, 1, 2, 100] {
            let rows = Self.rows(count)
            let list = try #require(TaskStatusRecordList(rows.map { TaskStatusRecord($0) }))
            #expect(list.records.map(\.status) == rows)
            let joined = Reply(
                id: .int(7), body: .status(StatusReply(loop: loop, list: list, containment: containment)))
            let formatted = Reply(
                id: .int(7), body: .status(StatusReply(loop: loop, tasks: rows, containment: containment)))
            #expect(joined.encodedLine() == formatted.encodedLine(), "\(count) rows")
            var queued = Array("earlier\n".utf8)
            joined.encodeLine(into: &queued)
            #expect(queued == Array("earlier\n".utf8) + formatted.encodedLine(), "\(count) rows, queued")
            #expect(joined == formatted)
            guard count > 0 else { continue }
            var slicer = try #require(SlicedStatusReply(joined, minimumEstimatedBytes: 1))
            var output: [UInt8] = []
            while !slicer.isFinished { slicer.encodeSlice(into: &output, budget: 100) }
            #expect(output == formatted.encodedLine(), "\(count) rows, sliced")
            guard case .status(let status) = joined.body else { return }
            // The estimate counts each row's bytes and one, as for records.
            #expect(status.encodedTasksSizeEstimate == rows.reduce(0) { $0 + TaskStatusRecord($1).encodedCount + 1 })
            #expect(
                status.rowsSizeEstimate(upTo: .max) == rows.reduce(0) { $0 + TaskStatusRecord($1).encodedCount + 1 })
        }
    }
}
