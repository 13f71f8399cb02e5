import Glibc
import SmartPollEtcdSupport
import SmartPollProtocol
import Testing

@testable import SmartPollSupervisor

private let time = SavedStateSample.time

/// A real etcd, a loop run on the test's thread, a client, and the leadership key a leader's
/// writes are guarded by.
private final class EtcdStateFixture {
    static let prefix = Array("/smartpoll/test/".utf8)
    let etcd: EtcdHarness
    let loop: EventLoop
    let client: EtcdClient
    let leadershipKey = Array("/smartpoll/test/election/leader".utf8)
    private(set) var leadership: Etcd.Compare

    init() throws {
        etcd = try EtcdHarness()
        loop = try EventLoop()
        client = try EtcdClient(loop: loop, endpoints: etcd.endpoints)
        leadership = Etcd.Compare(key: leadershipKey, target: .createRevision(0))
        let put = try complete { client.put(leadershipKey, Array("host-a".utf8), $0) }.get()
        // A new key's create revision is its put's.
        leadership = Etcd.Compare(key: leadershipKey, target: .createRevision(put.revision))
    }

    func store(compactionWrites: Int = 1000, compactionInterval: Duration = .seconds(3600)) -> EtcdStateStore {
        EtcdStateStore(
            client: client, keyPrefix: Self.prefix, log: SupervisorLog(level: .error),
            compactionWrites: compactionWrites, compactionInterval: compactionInterval)
    }

    /// Runs the loop until a callback stops it; throws after `limit`.
    func run(limit: Duration = .seconds(20)) throws {
        var timedOut = false
        let watchdog = loop.schedule(after: limit) {
            timedOut = true
            self.loop.stop()
        }
        try loop.run()
        loop.cancel(watchdog)
        if timedOut { throw HarnessFailure("the loop was not stopped within \(limit)") }
    }

    func complete<Reply>(
        limit: Duration = .seconds(20), _ start: (@escaping (Result<Reply, EtcdError>) -> Void) -> Void
    ) throws -> Result<Reply, EtcdError> {
        var outcome: Result<Reply, EtcdError>?
        start {
            outcome = $0
            self.loop.stop()
        }
        try run(limit: limit)
        guard let outcome else { throw HarnessFailure("no completion") }
        return outcome
    }

    /// Writes through `store` and runs the loop until the write's completion: its error, if any.
    func write(
        _ store: EtcdStateStore, _ changes: StateStore.Changes, leadership: Etcd.Compare? = nil
    ) throws -> SupervisorError? {
        var outcome: SupervisorError??
        var inside = true
        store.write(changes, leadership: leadership ?? self.leadership) {
            #expect(!inside, "a completion called from inside write")
            outcome = .some($0)
            self.loop.stop()
        }
        inside = false
        try run()
        guard let outcome else { throw HarnessFailure("no completion of the write") }
        return outcome
    }

    func load(_ store: EtcdStateStore) throws -> StateStore.Loaded {
        var outcome: Result<StateStore.Loaded, SupervisorError>?
        store.load {
            outcome = $0
            self.loop.stop()
        }
        try run()
        guard let outcome else { throw HarnessFailure("no completion of the load") }
        return try outcome.get()
    }

    /// A fresh store's load: what a new leader restores.
    func loadAfresh() throws -> StateStore.Loaded { try load(store()) }

    /// The keys under `PREFIX state/` + `under`, in order, as text.
    func keys(_ under: String = "") throws -> [String] {
        var request = Etcd.RangeRequest(keys: .prefix(Self.prefix + Array("state/\(under)".utf8)))
        request.keysOnly = true
        let reply = try complete { client.range(request, $0) }.get()
        let dropped = Self.prefix.count + 6
        return reply.keyValues.map { String(decoding: $0.key.dropFirst(dropped), as: UTF8.self) }
    }

    func value(_ key: String) throws -> [UInt8]? {
        let reply = try complete {
            client.range(Etcd.RangeRequest(keys: .key(Self.prefix + Array("state/\(key)".utf8))), $0)
        }.get()
        return reply.keyValues.first?.value
    }

    /// etcd's current revision.
    func revision() throws -> Int64 {
        var request = Etcd.RangeRequest(keys: .key(leadershipKey))
        request.countOnly = true
        return try complete { client.range(request, $0) }.get().revision
    }

    /// Deletes and puts the leadership key again: the old guard no longer holds (another member
    /// won an election meanwhile).
    func loseLeadership() throws -> Etcd.Compare {
        _ = try complete { client.deleteRange(.key(leadershipKey), $0) }.get()
        let put = try complete { client.put(leadershipKey, Array("host-b".utf8), $0) }.get()
        return Etcd.Compare(key: leadershipKey, target: .createRevision(put.revision))
    }
}

/// Bytes no compression or pattern would hide (xorshift64 from a seed).
private func noise(_ count: Int, seed: UInt64) -> [UInt8] {
    var state = seed | 1
    var bytes = [UInt8](repeating: 0, count: count)
    for index in 0..<count {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        bytes[index] = UInt8(truncatingIfNeeded: state)
    }
    return bytes
}

private func task(_ name: String, run: Int, output: [UInt8]?, runs: Int? = nil) -> SavedTask {
    SavedTask(
        runs: runs ?? run, failures: 0, consecutiveFailures: 0,
        last: LastRun(
            run: run, started: time, ended: time.advanced(by: .milliseconds(20)), durationMilliseconds: 20,
            exitCode: 0, signal: nil, timedOut: false, succeeded: true, error: nil, stderrTail: "ok\n"),
        result: output.map { TaskResult(task: name, run: run, time: time, output: $0, truncated: false) },
        next: time.advanced(by: .seconds(60)), interruptedRun: nil)
}

private func sample() -> SavedState {
    var state = SavedStateSample.make(lastRunID: 1_000)
    state.tasks["empty-output"] = task("empty-output", run: 42, output: [])
    return state
}

private func ring(_ name: String, _ runs: ClosedRange<Int>, keep: Int) -> RunHistory {
    var history = RunHistory(capacity: keep)
    for run in runs { history.append(historyEntry(run, exitCode: run % 2), keeping: keep) }
    return history
}

private func appends(_ name: String, _ runs: ClosedRange<Int>, keep: Int) -> [StateStore.HistoryAppend] {
    runs.map { (name, keep, historyEntry($0, exitCode: $0 % 2)) }
}

private func milliseconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) * 1_000 + Double(duration.components.attoseconds) / 1e15
}

/// ``EtcdStateStore`` against a real etcd (EtcdHarness), with a real ``EventLoop`` run on the
/// test's thread until each completion. Serialized: each test starts its own etcd, and the
/// figures want the machine.
@Suite(.serialized) struct EtcdStateStoreTests {
    @Test func whatIsWrittenLoadsBackOnAFreshStore() throws {
        let fixture = try EtcdStateFixture()
        let empty = try fixture.loadAfresh()
        #expect(empty.state == nil)
        #expect(empty.notes.contains { $0.message.contains("no saved state in etcd") })
        let store = fixture.store()
        var expected = sample()
        let changes = StateStore.Changes(
            tasks: expected.tasks.map { ($0.key, $0.value) }, complete: true, lastRunID: expected.lastRunID,
            historyAppends: appends("text", 30...39, keep: 100) + appends("never", 1...2, keep: 100))
        #expect(try fixture.write(store, changes) == nil)
        expected.histories["text"] = ring("text", 30...39, keep: 100)
        expected.histories["never"] = ring("never", 1...2, keep: 100)
        let loaded = try fixture.loadAfresh()
        #expect(loaded.state == expected)
        #expect(loaded.notes.allSatisfy { $0.level < .warning }, "\(loaded.notes)")
        // The layout other members and people read.
        let keys = try fixture.keys()
        #expect(keys.contains("meta"))
        #expect(keys.contains("tasks/binary.v2:x@y"))
        #expect(keys.contains("results/text/00000000000000000001/000000"))
        #expect(!keys.contains { $0.hasPrefix("results/empty-output/") }, "an empty result has no chunk")
        #expect(keys.filter { $0.hasPrefix("history/text/") }.count == 10)
        #expect(keys.contains("history/text/00000000000000000010"))
        let meta = try #require(try fixture.value("meta"))
        #expect(String(decoding: meta, as: UTF8.self).contains(#""last_run":1000"#))
        let record = String(decoding: try #require(try fixture.value("tasks/text")), as: UTF8.self)
        #expect(record.contains(#""generation":1,"chunks":1,"size":7"#), "\(record)")
        #expect(record.contains(#""runs":7"#) && record.contains(#""stderr_tail":"tail\n""#))
        // The same tasks handed over again (a reload): nothing is written, not even a revision.
        let before = try fixture.revision()
        #expect(try fixture.write(store, StateStore.Changes(tasks: changes.tasks, complete: true)) == nil)
        #expect(try fixture.revision() == before)
        // The loaded store knows what etcd holds: one changed task is one record.
        let leader = fixture.store()
        _ = try fixture.load(leader)
        var changed = expected.tasks["never"]!
        changed.paused = true
        #expect(try fixture.write(leader, StateStore.Changes(tasks: [("never", changed)])) == nil)
        #expect(try fixture.revision() == before + 1, "one transaction")
        expected.tasks["never"] = changed
        #expect(try fixture.loadAfresh().state == expected)
    }

    @Test func aFourMebibyteResultIsChunkedAndComesBackByteForByte() throws {
        let fixture = try EtcdStateFixture()
        let store = fixture.store()
        let big = noise(4 << 20, seed: 0x5eed)
        let tasks = [("big", task("big", run: 5, output: big))]
        let before = try fixture.revision()
        var started = ContinuousClock.now
        #expect(try fixture.write(store, StateStore.Changes(tasks: tasks, complete: true, lastRunID: 10)) == nil)
        let written = ContinuousClock.now - started
        // Two chunks a transaction, the record and the deletions with the last two.
        let transactions = try fixture.revision() - before
        #expect(transactions == 4)
        let chunks = try fixture.keys("results/big/")
        #expect(chunks == (0..<8).map { "results/big/00000000000000000001/00000\($0)" })
        for chunk in chunks {
            let bytes = try #require(try fixture.value(chunk))
            #expect(bytes.count == 512 << 10)
        }
        started = ContinuousClock.now
        let loaded = try fixture.loadAfresh()
        let read = ContinuousClock.now - started
        let output = loaded.state?.tasks["big"]?.result?.output
        #expect(output?.count == big.count)
        #expect(output == big, "byte for byte")
        print(
            "figure: etcd state 4 MiB result: write \(milliseconds(written)) ms (\(transactions) transactions), "
                + "load \(milliseconds(read)) ms")
        // A new result: its generation replaces the old one, whose chunks go.
        let smaller = noise(1_500_000, seed: 7)
        let next = [("big", task("big", run: 6, output: smaller))]
        #expect(try fixture.write(store, StateStore.Changes(tasks: next)) == nil)
        #expect(try fixture.keys("results/big/") == (0..<3).map { "results/big/00000000000000000002/00000\($0)" })
        #expect(try fixture.loadAfresh().state?.tasks["big"]?.result?.output == smaller)
        // The result goes (a reload dropped capture, say): so do its chunks.
        #expect(try fixture.write(store, StateStore.Changes(tasks: [("big", task("big", run: 7, output: nil))])) == nil)
        #expect(try fixture.keys("results/").isEmpty)
    }

    @Test func aRemovedTaskLeavesNoKeys() throws {
        let fixture = try EtcdStateFixture()
        let store = fixture.store()
        let first = [
            ("stays", task("stays", run: 1, output: Array("a".utf8))),
            ("goes", task("goes", run: 2, output: noise(600_000, seed: 3))),
            ("goes.too", task("goes.too", run: 3, output: nil)),
        ]
        let histories = appends("goes", 1...3, keep: 10) + appends("stays", 1...2, keep: 10)
        #expect(
            try fixture.write(
                store, StateStore.Changes(tasks: first, complete: true, lastRunID: 100, historyAppends: histories))
                == nil)
        #expect(try fixture.keys("results/goes/").count == 2)
        // A reload that keeps only "stays": a complete write drops the others; an entry of a
        // removed task in the same write goes with it.
        #expect(
            try fixture.write(
                store,
                StateStore.Changes(
                    tasks: [first[0]], complete: true, historyAppends: appends("goes", 4...4, keep: 10)))
                == nil)
        let keys = try fixture.keys()
        #expect(!keys.contains { $0.contains("goes") }, "\(keys)")
        #expect(keys.contains("tasks/stays") && keys.contains("results/stays/00000000000000000001/000000"))
        #expect(keys.filter { $0.hasPrefix("history/stays/") }.count == 2)
        let state = try #require(try fixture.loadAfresh().state)
        #expect(Array(state.tasks.keys) == ["stays"])
        #expect(Array(state.histories.keys) == ["stays"])
    }

    @Test func aWriteWhoseGuardFailsChangesNothingAndSaysLeadershipWasLost() throws {
        let fixture = try EtcdStateFixture()
        let store = fixture.store()
        let before = [("w1", task("w1", run: 1, output: Array("old".utf8)))]
        #expect(try fixture.write(store, StateStore.Changes(tasks: before, complete: true, lastRunID: 50)) == nil)
        let current = try fixture.loseLeadership()
        let revision = try fixture.revision()
        // A big write (several transactions) and a small one: neither changes anything.
        let big = [("w1", task("w1", run: 2, output: noise(3 << 20, seed: 11)))]
        let refused = try fixture.write(store, StateStore.Changes(tasks: big, lastRunID: 60))
        #expect(refused?.code == .leadershipLost)
        #expect(refused?.message.contains("leadership was lost") == true, "\(String(describing: refused))")
        let small = [("w1", task("w1", run: 1, output: Array("old".utf8), runs: 9))]
        #expect(try fixture.write(store, StateStore.Changes(tasks: small))?.code == .leadershipLost)
        #expect(try fixture.revision() == revision, "nothing written")
        #expect(try fixture.keys("results/") == ["results/w1/00000000000000000001/000000"])
        let state = try #require(try fixture.loadAfresh().state)
        #expect(state.lastRunID == 50)
        #expect(state.tasks["w1"] == before[0].1)
        // The new leader's guard holds.
        let leader = fixture.store()
        _ = try fixture.load(leader)
        #expect(try fixture.write(leader, StateStore.Changes(tasks: big, lastRunID: 60), leadership: current) == nil)
        #expect(try fixture.loadAfresh().state?.tasks["w1"] == big[0].1)
    }

    @Test func historyIsTrimmedToItsBoundByDeletingTheOldest() throws {
        let fixture = try EtcdStateFixture()
        let store = fixture.store()
        let tasks = [("h", task("h", run: 1, output: nil))]
        #expect(
            try fixture.write(
                store,
                StateStore.Changes(
                    tasks: tasks, complete: true, lastRunID: 100, historyAppends: appends("h", 1...7, keep: 4)))
                == nil)
        func sequences() throws -> [Int] {
            try fixture.keys("history/h/").map { Int($0.split(separator: "/").last!)! }
        }
        #expect(try sequences() == [4, 5, 6, 7], "only the newest 4 are ever written")
        #expect(try fixture.write(store, StateStore.Changes(historyAppends: appends("h", 8...9, keep: 4))) == nil)
        #expect(try sequences() == [6, 7, 8, 9])
        #expect(try fixture.loadAfresh().state?.histories["h"] == ring("h", 6...9, keep: 4))
        // A lowered bound (a reload) trims at the next entry, as RunHistory does.
        #expect(try fixture.write(store, StateStore.Changes(historyAppends: appends("h", 10...10, keep: 2))) == nil)
        #expect(try sequences() == [9, 10])
        // Trimmed on a freshly loaded store too: it knows the sequence numbers from etcd.
        let leader = fixture.store()
        #expect(try fixture.load(leader).state?.histories["h"] == ring("h", 9...10, keep: 2))
        #expect(try fixture.write(leader, StateStore.Changes(historyAppends: appends("h", 11...13, keep: 3))) == nil)
        #expect(try sequences() == [11, 12, 13])
        #expect(try fixture.write(leader, StateStore.Changes(historyAppends: appends("h", 14...14, keep: 0))) == nil)
        #expect(try sequences().isEmpty, "history 0 keeps none")
    }

    @Test func compactionFollowsTheWritesAndKeepsTheState() throws {
        let fixture = try EtcdStateFixture()
        let store = fixture.store(compactionWrites: 3)
        var compactions: [Int64] = []
        store.onCompaction = { compactions.append($0) }
        var revisions: [Int64] = []
        var current = task("c", run: 1, output: Array("r1".utf8))
        for write in 1...6 {
            current = task("c", run: write, output: Array("r\(write)".utf8))
            let changes = StateStore.Changes(
                tasks: [("c", current)], complete: write == 1, lastRunID: write == 1 ? 100 : nil,
                historyAppends: appends("c", write...write, keep: 5))
            #expect(try fixture.write(store, changes) == nil)
            revisions.append(try fixture.revision())
        }
        // Write 3 was the first checkpoint (nothing before it to compact to); write 6 the
        // second: compacted to write 3's revision, not to its own.
        if compactions.isEmpty {
            store.onCompaction = {
                compactions.append($0)
                fixture.loop.stop()
            }
            try fixture.run(limit: .seconds(10))
        }
        #expect(compactions == [revisions[2]])
        #expect(store.compactedRevision == revisions[2])
        var old = Etcd.RangeRequest(keys: .prefix(EtcdStateFixture.prefix))
        old.revision = revisions[2] - 1
        let refused = try fixture.complete { fixture.client.range(old, $0) }
        guard case .failure(.gateway(let code, _, _)) = refused else {
            Issue.record("a range before the compaction: \(refused)")
            return
        }
        #expect(code == EtcdError.codeOutOfRange)
        old.revision = revisions[2]
        #expect((try? fixture.complete { fixture.client.range(old, $0) }.get()) != nil, "the checkpoint stays")
        let state = try #require(try fixture.loadAfresh().state)
        #expect(state.tasks["c"] == current)
        #expect(state.histories["c"] == ring("c", 2...6, keep: 5))
    }

    @Test func compactionFollowsTimeToo() throws {
        let fixture = try EtcdStateFixture()
        // Every write is past the interval: each is a checkpoint, compacted to at the next.
        let store = fixture.store(compactionInterval: .zero)
        var compactions: [Int64] = []
        store.onCompaction = {
            compactions.append($0)
            fixture.loop.stop()
        }
        #expect(try fixture.write(store, StateStore.Changes(lastRunID: 10)) == nil)
        let first = store.revision
        #expect(compactions.isEmpty && store.compactedRevision == 0)
        #expect(try fixture.write(store, StateStore.Changes(lastRunID: 20)) == nil)
        if compactions.isEmpty { try fixture.run(limit: .seconds(10)) }
        #expect(compactions == [first] && store.compactedRevision == first)
        #expect(try fixture.loadAfresh().state?.lastRunID == 20)
    }

    @Test func aLoadWhoseRevisionIsCompactedMeanwhileStartsOver() throws {
        let fixture = try EtcdStateFixture()
        let store = fixture.store()
        let tasks = (0..<300).map { ("t\($0)", task("t\($0)", run: $0 + 1, output: Array("r\($0)".utf8))) }
        #expect(try fixture.write(store, StateStore.Changes(tasks: tasks, complete: true, lastRunID: 500)) == nil)
        // Between the first page and the second (256 tasks a page), another write and a
        // compaction past the load's revision.
        let reader = fixture.store()
        var pages = 0
        reader.beforeLoadPage = { next in
            pages += 1
            guard pages == 2 else { return next() }
            fixture.client.put(fixture.leadershipKey, Array("host-a".utf8)) { put in
                guard case .success(let reply) = put else { return next() }
                fixture.client.compact(reply.revision) { _ in next() }
            }
        }
        let loaded = try fixture.load(reader)
        #expect(pages > 4, "started over: \(pages) pages")
        #expect(loaded.state?.tasks.count == 300)
        #expect(loaded.state?.tasks["t299"]?.result?.output == Array("r299".utf8))
        #expect(reader.revision > store.revision)
    }

    @Test func anUnusableRecordIsReportedAndGoesWithTheNextCompleteWrite() throws {
        let fixture = try EtcdStateFixture()
        let store = fixture.store()
        let good = [("good", task("good", run: 1, output: Array("g".utf8)))]
        #expect(try fixture.write(store, StateStore.Changes(tasks: good, complete: true, lastRunID: 10)) == nil)
        let bad = EtcdStateFixture.prefix + Array("state/tasks/bad".utf8)
        _ = try fixture.complete { fixture.client.put(bad, Array("{\"runs\":".utf8), $0) }.get()
        let leader = fixture.store()
        let loaded = try fixture.load(leader)
        #expect(loaded.state?.tasks.keys.sorted() == ["good"])
        #expect(loaded.notes.contains { $0.level == .error && $0.message.contains("task bad in etcd is unusable") })
        #expect(try fixture.write(leader, StateStore.Changes(tasks: good, complete: true)) == nil)
        #expect(try fixture.keys("tasks/") == ["tasks/good"])
        #expect(try fixture.loadAfresh().notes.allSatisfy { $0.level < .warning })
    }

    @Test func aThousandTasksLoadAndSmallWritesAreOneTransaction() throws {
        let fixture = try EtcdStateFixture()
        let store = fixture.store()
        var expected = SavedState(lastRunID: 10_000)
        var history: [StateStore.HistoryAppend] = []
        for index in 0..<1_000 {
            let name = "task-" + String(decoding: EtcdStateLayout.digits(index, 4), as: UTF8.self)
            expected.tasks[name] = task(name, run: index + 1, output: Array("result of \(name)\n".utf8))
            history += appends(name, (index + 1)...(index + 3), keep: 100)
            expected.histories[name] = ring(name, (index + 1)...(index + 3), keep: 100)
        }
        var started = ContinuousClock.now
        let changes = StateStore.Changes(
            tasks: expected.tasks.map { ($0.key, $0.value) }, complete: true, lastRunID: expected.lastRunID,
            historyAppends: history)
        #expect(try fixture.write(store, changes) == nil)
        let written = ContinuousClock.now - started
        started = ContinuousClock.now
        let leader = fixture.store()
        let loaded = try fixture.load(leader)
        let read = ContinuousClock.now - started
        #expect(loaded.state?.tasks.count == 1_000)
        #expect(loaded.state == expected)
        // A run's end: one task's record and one history entry, one transaction a write.
        let count = 200
        let before = try fixture.revision()
        started = ContinuousClock.now
        for run in 1...count {
            let name = "task-0007"
            var changed = expected.tasks[name]!
            changed.runs += 1
            changed.result?.run = 10 + run
            changed.result?.output = Array("run \(run)\n".utf8)
            expected.tasks[name] = changed
            let entry = appends(name, (10 + run)...(10 + run), keep: 100)
            #expect(
                try fixture.write(leader, StateStore.Changes(tasks: [(name, changed)], historyAppends: entry)) == nil)
        }
        let small = ContinuousClock.now - started
        #expect(try fixture.revision() == before + Int64(count), "one transaction a write")
        #expect(try fixture.loadAfresh().state?.tasks["task-0007"] == expected.tasks["task-0007"])
        print(
            "figure: etcd state 1000 tasks (3 history entries each): complete write \(milliseconds(written)) ms, "
                + "load \(milliseconds(read)) ms; small write (record + result + entry) "
                + "\(milliseconds(small) / Double(count)) ms on average over \(count)")
    }

    @Test func forgetDropsTheCallbacks() throws {
        let fixture = try EtcdStateFixture()
        let store = fixture.store()
        var called = 0
        let tasks = [("f", task("f", run: 1, output: noise(2 << 20, seed: 5)))]
        store.write(StateStore.Changes(tasks: tasks), leadership: fixture.leadership) { _ in called += 1 }
        store.write(StateStore.Changes(lastRunID: 9), leadership: fixture.leadership) { _ in called += 1 }
        store.load { _ in called += 1 }
        store.forget()
        // Calls made after it complete; the ones before never do.
        #expect(try fixture.write(store, StateStore.Changes(lastRunID: 5)) == nil)
        _ = try fixture.load(store)
        #expect(called == 0)
    }
}

/// ``EtcdStateWritePlan`` alone: how a write is cut into transactions.
@Suite struct EtcdStateWritePlanTests {
    private let layout = EtcdStateLayout(keyPrefix: Array("p/".utf8))

    private func cut(_ changes: StateStore.Changes, mirror: EtcdStateStore.Mirror = .init()) -> [[Etcd.Operation]] {
        var plan = EtcdStateWritePlan(changes, mirror: mirror, layout: layout)
        var transactions: [[Etcd.Operation]] = []
        while !plan.isFinished { transactions.append(plan.nextTransaction()) }
        return transactions
    }

    private func bytes(_ operation: Etcd.Operation) -> Int {
        switch operation {
        case .put(let key, let value, _): key.count + value.count
        case .delete(let range): range.bounds.key.count + (range.bounds.rangeEnd?.count ?? 0)
        case .range: 0
        }
    }

    @Test func transactionsStayUnderEtcdsLimitsAndNeverPutAKeyTheyDelete() {
        var tasks: [(name: String, task: SavedTask)] = []
        for index in 0..<300 {
            let name = "t\(index)"
            tasks.append((name, task(name, run: index + 1, output: index % 50 == 0 ? noise(1_300_000, seed: 9) : [1])))
        }
        let history = (0..<300).flatMap { appends("t\($0)", 1...5, keep: 3) }
        let transactions = cut(
            StateStore.Changes(tasks: tasks, complete: true, lastRunID: 1_000, historyAppends: history))
        #expect(transactions.count > 1)
        for operations in transactions {
            #expect(!operations.isEmpty && operations.count <= 120)
            #expect(operations.map(bytes).reduce(0, +) <= EtcdStateWritePlan.maximumBytes)
            let deletions = operations.compactMap { if case .delete(let range) = $0 { range.bounds } else { nil } }
            for case .put(let key, _, _) in operations {
                let covered = deletions.contains { bounds in
                    !key.lexicographicallyPrecedes(bounds.key)
                        && key.lexicographicallyPrecedes(bounds.rangeEnd ?? (bounds.key + [0]))
                }
                #expect(!covered, "\(String(decoding: key, as: UTF8.self)) is put and deleted in one transaction")
            }
        }
        // The mark first; a task's record after its chunks.
        guard case .put(let first, _, _)? = transactions.first?.first else {
            Issue.record("no put first")
            return
        }
        #expect(first == layout.meta)
        let puts = transactions.flatMap { $0 }.compactMap { if case .put(let key, _, _) = $0 { key } else { nil } }
        let record = puts.firstIndex(of: layout.task("t50"))!
        let lastChunk = puts.firstIndex(of: layout.chunk("t50", 1, 2))!
        #expect(lastChunk < record)
    }

    @Test func chunksChecksumLikeTheWholeResult() {
        let output = noise(1_300_000, seed: 2)
        var checksum = EtcdStateLayout.checksumStart
        for start in stride(from: 0, to: output.count, by: EtcdStateLayout.chunkSize) {
            checksum = EtcdStateLayout.checksum(
                continuing: checksum, output[start..<min(output.count, start + EtcdStateLayout.chunkSize)])
        }
        #expect(checksum == SavedStateFormat.checksum(output))
    }
}
