import Foundation
import SmartPollProtocol
import Testing

@testable import SmartPollSupervisor

/// A fresh folder under /tmp for one test's state directory, removed with everything in it.
private final class ScratchFolder {
    let path: String

    init() throws {
        path =
            FileManager.default.temporaryDirectory.appendingPathComponent(
                "smartpoll-state-\(UUID().uuidString.prefix(8))"
            ).path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    var state: String { path + "/state" }

    func names(_ folder: String = "") -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: state + folder)) ?? []).sorted()
    }

    func bytes(_ name: String) -> [UInt8]? {
        FileManager.default.contents(atPath: state + "/" + name).map { Array($0) }
    }

    func write(_ name: String, _ bytes: [UInt8]) {
        _ = FileManager.default.createFile(atPath: state + "/" + name, contents: Data(bytes))
    }
}

private let time = SavedStateSample.time

private func sample() -> SavedState { SavedStateSample.make(lastRunID: 41) }

/// A saved state with a text result, a binary one (with a task name of every allowed kind, paused,
/// a run cut short) and a task that never ran: what both state stores (files and etcd) must keep.
enum SavedStateSample {
    static let time = Timestamp(nanosecondsSinceEpoch: 1_796_003_072_123_000_000)

    static func make(lastRunID: Int) -> SavedState {
        var state = SavedState(lastRunID: lastRunID)
        state.tasks["text"] = SavedTask(
            runs: 7, failures: 2, consecutiveFailures: 1,
            last: LastRun(
                run: 40, started: time, ended: time.advanced(by: .milliseconds(1500)), durationMilliseconds: 1500.25,
                exitCode: nil, signal: 9, timedOut: true, succeeded: false, error: "timed out", stderrTail: "tail\n"),
            result: TaskResult(task: "text", run: 39, time: time, output: Array("héllo\n".utf8), truncated: true),
            next: time.advanced(by: .seconds(10)), interruptedRun: nil)
        state.tasks["binary.v2:x@y"] = SavedTask(
            runs: 1, failures: 0, consecutiveFailures: 0,
            last: LastRun(
                run: 41, started: time, ended: time, durationMilliseconds: 0, exitCode: 0, signal: nil,
                timedOut: false, succeeded: true, error: nil, stderrTail: ""),
            result: TaskResult(
                task: "binary.v2:x@y", run: 41, time: time, output: [0, 0xFF, 0xC3, 10], truncated: false),
            next: time, interruptedRun: 41, paused: true)
        state.tasks["never"] = SavedTask()
        return state
    }
}

@Suite struct StateStoreTests {
    @Test func savedStateComesBackWhole() throws {
        let folder = try ScratchFolder()
        let store = StateStore(directory: folder.state, inlineLimit: 0)
        try store.prepare()
        try store.save(sample(), pid: 1)
        #expect(folder.names() == ["journal", "results", "state.json"])
        #expect(folder.names("/results") == ["binary.v2:x@y.41", "text.39"])
        #expect(folder.bytes("results/binary.v2:x@y.41") == [0, 0xFF, 0xC3, 10], "results are stored raw")

        let reader = StateStore(directory: folder.state, inlineLimit: 0)
        try reader.prepare()
        let loaded = reader.load()
        #expect(loaded.state == sample())
        #expect(loaded.notes.allSatisfy { $0.level == .info })
    }

    @Test func aTaskWithoutPausedIsNotPausedAndAPausedOneSaysSo() throws {
        var task = SavedTask()
        task.paused = true
        let encoded = SavedStateFormat.encode(task, reference: nil)
        guard case .object(let object) = encoded else {
            Issue.record("not an object: \(encoded)")
            return
        }
        #expect(object["paused"] == .bool(true))
        #expect(try SavedStateFormat.decodeTask("w", encoded).0.paused)
        // A state file written before pause.
        let older = JSONObject(object.pairs.filter { $0.key != "paused" })
        #expect(try !SavedStateFormat.decodeTask("w", .object(older)).0.paused)
    }

    @Test func aResultIsWrittenOnceAndDeletedWhenNoStateFileNamesIt() throws {
        let folder = try ScratchFolder()
        let store = StateStore(directory: folder.state, inlineLimit: 0)
        var state = sample()
        try store.save(state, pid: 1)
        // A save that rewrote the file would change its modification time.
        let before =
            try FileManager.default.attributesOfItem(atPath: folder.state + "/results/text.39")[.modificationDate]
            as? Date
        state.tasks["binary.v2:x@y"]!.result = TaskResult(
            task: "binary.v2:x@y", run: 50, time: time, output: [1], truncated: false)
        state.tasks["text"]!.runs += 1
        try store.save(state, pid: 1)
        #expect(folder.names("/results") == ["binary.v2:x@y.50", "text.39"], "the superseded result file is deleted")
        let after =
            try FileManager.default.attributesOfItem(atPath: folder.state + "/results/text.39")[.modificationDate]
            as? Date
        #expect(before == after, "an unchanged result is not written again")
        state.tasks["text"] = nil
        try store.save(state, pid: 1)
        #expect(folder.names("/results") == ["binary.v2:x@y.50"], "a dropped task's result goes")
    }

    @Test(arguments: [
        ("{not json", "invalid JSON"),
        (#"{"format":"something-else","version":1}"#, "not a smartpoll state file"),
        (#"{"format":"smartpoll-state","version":2,"last_run":0,"tasks":{}}"#, "version 2"),
        (#"{"format":"smartpoll-state","version":1,"last_run":0,"tasks":{"a":{"runs":"x"}}}"#, #"task "a": "runs""#),
        // A number that would overflow when the supervisor adds to it.
        (
            #"{"format":"smartpoll-state","version":1,"last_run":9223372036854775807,"tasks":{}}"#,
            #""last_run" is out of range"#
        ),
    ])
    func anUnusableStateFileIsMovedAsideWithItsResultsAndNeverDeleted(text: String, reason: String) throws {
        let folder = try ScratchFolder()
        let store = StateStore(directory: folder.state, inlineLimit: 0)
        try store.save(sample(), pid: 1)
        folder.write("state.json", Array(text.utf8))
        let reader = StateStore(directory: folder.state, inlineLimit: 0)
        try reader.prepare()
        let loaded = reader.load()
        #expect(loaded.state == nil)
        let errors = loaded.notes.filter { $0.level == .error }.map(\.message)
        #expect(errors.count == 1)
        #expect(errors.first?.contains(reason) == true, "\(errors)")
        #expect(errors.first?.contains("moved it aside to \(folder.state)/state.json.corrupt-") == true, "\(errors)")
        let names = folder.names()
        let aside = try #require(names.first { $0.hasPrefix("state.json.corrupt-") })
        #expect(folder.bytes(aside) == Array(text.utf8), "the file is kept as it was")
        let results = try #require(names.first { $0.hasPrefix("results.corrupt-") })
        #expect(folder.names("/" + results) == ["binary.v2:x@y.41", "text.39"], "its results are kept with it")
        #expect(
            names.contains("results") && folder.names("/results").isEmpty, "a fresh results folder for the new state")
        // And the supervisor goes on saving.
        try reader.save(sample(), pid: 1)
    }

    @Test func aResultFileThatDoesNotMatchIsMovedAsideAndOnlyThatResultIsLost() throws {
        let folder = try ScratchFolder()
        try StateStore(directory: folder.state, inlineLimit: 0).save(sample(), pid: 1)
        folder.write("results/text.39", Array("hallo\n".utf8))
        let reader = StateStore(directory: folder.state, inlineLimit: 0)
        try reader.prepare()
        let loaded = reader.load()
        let state = try #require(loaded.state)
        #expect(state.tasks["text"]?.result == nil)
        #expect(state.tasks["text"]?.runs == 7, "the rest of the task's state stays")
        #expect(state.tasks["binary.v2:x@y"]?.result?.output == [0, 0xFF, 0xC3, 10])
        let errors = loaded.notes.filter { $0.level == .error }.map(\.message)
        #expect(
            errors == [
                "\(folder.state)/results/text.39 is unusable (does not match the state file (6 bytes, 7 expected, or a different checksum)); moved it aside to \(folder.state)/results/text.39.corrupt; task text starts without its result"
            ])
        #expect(folder.names("/results") == ["binary.v2:x@y.41", "text.39.corrupt"])
    }

    @Test func leftoversOfAnInterruptedWriteAreRemoved() throws {
        let folder = try ScratchFolder()
        try StateStore(directory: folder.state, inlineLimit: 0).save(sample(), pid: 1)
        folder.write("state.json.tmp", Array("{\"format\":".utf8))
        folder.write("results/text.40", Array("half".utf8))
        let reader = StateStore(directory: folder.state, inlineLimit: 0)
        try reader.prepare()
        let loaded = reader.load()
        #expect(loaded.state == sample())
        #expect(folder.names() == ["journal", "results", "state.json"])
        #expect(folder.names("/results") == ["binary.v2:x@y.41", "text.39"])
        #expect(
            loaded.notes.map(\.message).contains { $0.contains("state.json.tmp, left by a write that was interrupted") }
        )
        #expect(
            loaded.notes.map(\.message).contains(
                "removed 1 result file no state file names (left by interrupted writes)"))
    }

    @Test func aFailedWriteSaysWhyAndLeavesThePreviousStateWhole() throws {
        let folder = try ScratchFolder()
        let store = StateStore(directory: folder.state, inlineLimit: 0)
        try store.save(sample(), pid: 1)
        let previous = folder.bytes("state.json")
        // A directory where the temporary file goes: creating it fails (EISDIR), even for root.
        try FileManager.default.createDirectory(
            atPath: folder.state + "/state.json.tmp", withIntermediateDirectories: false)
        var changed = sample()
        changed.lastRunID = 99
        changed.tasks["text"]!.result = TaskResult(task: "text", run: 60, time: time, output: [1, 2], truncated: false)
        #expect(
            throws: SupervisorError(
                code: .systemCallFailed,
                message: "cannot create \(folder.state)/state.json.tmp: Is a directory")
        ) {
            try store.save(changed, pid: 1)
        }
        #expect(folder.bytes("state.json") == previous)
        #expect(
            folder.names("/results") == ["binary.v2:x@y.41", "text.39"], "the result file no state file names is gone")
        try FileManager.default.removeItem(atPath: folder.state + "/state.json.tmp")
        try store.save(changed, pid: 1)
        let reader = StateStore(directory: folder.state, inlineLimit: 0)
        try reader.prepare()
        let reloaded = reader.load().state
        #expect(reloaded?.lastRunID == 99)
        #expect(reloaded?.tasks["text"]?.result?.output == [1, 2])
        #expect(folder.names("/results") == ["binary.v2:x@y.41", "text.60"])
    }

    @Test func aFolderThatCannotBeCreatedIsReportedNotFatal() throws {
        let folder = try ScratchFolder()
        // `state` is a plain file, so no folder can be made inside it.
        _ = FileManager.default.createFile(atPath: folder.state, contents: Data())
        let store = StateStore(directory: folder.state + "/inner", inlineLimit: 0)
        let expected = SupervisorError(
            code: .systemCallFailed, message: "cannot create \(folder.state)/inner: Not a directory")
        #expect(throws: expected) { try store.prepare() }
        #expect(throws: expected) { try store.save(sample(), pid: 1) }
    }

    @Test func twoStoresCannotLockOneFolder() throws {
        let folder = try ScratchFolder()
        let first = StateStore(directory: folder.state, inlineLimit: 0)
        try first.prepare()
        try first.lock()
        let second = StateStore(directory: folder.state, inlineLimit: 0)
        try second.prepare()
        #expect(throws: SupervisorError.self) { try second.lock(patience: .milliseconds(50)) }
        withExtendedLifetime(first) {}
    }

    @Test func theChecksumIsFNV1a() {
        #expect(SavedStateFormat.checksum([]) == 0xcbf2_9ce4_8422_2325)
        #expect(SavedStateFormat.checksum(Array("a".utf8)) == 0xaf63_dc4c_8601_ec8c)
        #expect(SavedStateFormat.hex(0xaf) == "00000000000000af")
    }
}

/// The journal that continues `state.json`: writes that cost what changed, a torn tail, the
/// compaction and a crash between its steps, counters that contradict each other, files that
/// are not regular files, and the run id mark.
@Suite struct StateJournalTests {
    private func reopened(_ folder: ScratchFolder) throws -> (StateStore, StateStore.Loaded) {
        let store = StateStore(directory: folder.state, inlineLimit: 0)
        try store.prepare()
        let loaded = store.load()
        store.openJournal()
        return (store, loaded)
    }

    private func changed(_ state: inout SavedState, _ name: String, runs: Int) -> StateStore.Changes {
        state.tasks[name]!.runs = runs
        return StateStore.Changes(tasks: [(name, state.tasks[name]!)])
    }

    @Test func aStateFileOfTheVersionBeforeTheJournalStillLoads() throws {
        // As the supervisor before the journal wrote it: no "journal" generation, no journal
        // file, no "cancelled" counter.
        let folder = try ScratchFolder()
        try FileManager.default.createDirectory(atPath: folder.state + "/results", withIntermediateDirectories: true)
        let output = Array("42\n".utf8)
        folder.write("results/w1.17", output)
        let hex = String(SavedStateFormat.checksum(output), radix: 16)
        let checksum = String(repeating: "0", count: 16 - hex.count) + hex
        let text = #"""
            {"format":"smartpoll-state","version":1,"written":"2026-11-30T01:44:32.123Z","pid":7,"last_run":17,\#
            "tasks":{"w1":{"runs":3,"failures":1,"consecutive_failures":0,"next":"2026-11-30T01:45:00.000Z",\#
            "interrupted_run":null,"last":{"run":17,"started":"2026-11-30T01:44:31.000Z",\#
            "ended":"2026-11-30T01:44:32.000Z","duration_ms":1000.0,"exit_code":0,"signal":null,\#
            "timed_out":false,"succeeded":true,"error":null,"stderr_tail":""},\#
            "result":{"run":17,"time":"2026-11-30T01:44:32.000Z","truncated":false,"file":"w1.17",\#
            "size":3,"fnv1a64":"\#(checksum)"}}}}
            """#
        folder.write("state.json", Array(text.utf8))
        let (_, loaded) = try reopened(folder)
        let task = try #require(loaded.state?.tasks["w1"], "\(loaded.notes)")
        #expect(task.runs == 3 && task.failures == 1 && task.cancelled == 0)
        #expect(task.result?.output == output)
        #expect(loaded.state?.lastRunID == 17)
    }

    /// A small result (at most ``StateStore/largestInlineResult`` bytes) is inline in its task's
    /// record: a task that polls every few seconds costs no file create, flush and unlink a run.
    @Test func smallResultsAreInlineAndCostNoFile() throws {
        let folder = try ScratchFolder()
        let store = StateStore(directory: folder.state)
        try store.prepare()
        var state = sample()
        try store.save(state, pid: 1)
        #expect(folder.names("/results").isEmpty, "the sample's results (7 and 4 bytes) are inline")
        #expect(try reopenedDefault(folder).state == state, "binary and text bytes come back as they were")
        // Through the journal too, with the largest inline size and an empty output.
        let largest = [UInt8](repeating: 0xC3, count: StateStore.largestInlineResult)
        state.tasks["binary.v2:x@y"]!.result = TaskResult(
            task: "binary.v2:x@y", run: 42, time: time, output: largest, truncated: false)
        state.tasks["text"]!.result = TaskResult(task: "text", run: 43, time: time, output: [], truncated: false)
        state.lastRunID = 43
        try store.write(
            StateStore.Changes(
                tasks: [("binary.v2:x@y", state.tasks["binary.v2:x@y"]!), ("text", state.tasks["text"]!)],
                lastRunID: 43), pid: 1)
        #expect(folder.names("/results").isEmpty)
        let loaded = try reopenedDefault(folder)
        #expect(loaded.journalRecords == 3)
        #expect(loaded.state == state, "\(loaded.notes)")
    }

    /// A result that grows past the inline size moves into a file, and back when it shrinks: the
    /// file goes once the record that no longer names it is durable.
    @Test func aResultMovesBetweenItsRecordAndAFileAsItsSizeCrossesTheLimit() throws {
        let folder = try ScratchFolder()
        let store = StateStore(directory: folder.state, inlineLimit: 8)
        try store.prepare()
        var state = sample()
        try store.save(state, pid: 1)
        #expect(folder.names("/results").isEmpty)
        func result(_ run: Int, _ count: Int) throws {
            state.tasks["text"]!.result = TaskResult(
                task: "text", run: run, time: time, output: Array(repeating: UInt8(run), count: count), truncated: false
            )
            state.lastRunID = max(state.lastRunID, run)
            try store.write(StateStore.Changes(tasks: [("text", state.tasks["text"]!)], lastRunID: run), pid: 1)
        }
        try result(50, 9)
        #expect(folder.names("/results") == ["text.50"])
        #expect(folder.bytes("results/text.50") == Array(repeating: 50, count: 9))
        try result(51, 8)
        #expect(folder.names("/results").isEmpty, "the file of run 50 goes with the record that named it")
        let reader = StateStore(directory: folder.state, inlineLimit: 8)
        try reader.prepare()
        #expect(reader.load().state == state)
        try result(52, 100)
        #expect(folder.names("/results") == ["text.52"])
        #expect(try reopenedDefault(folder).state == state, "a store with another limit reads both forms")
    }

    /// Inline bytes that are not Base64, or do not match the size and checksum beside them, make
    /// the state file unusable (moved aside), as contradicting counters do.
    @Test(arguments: [
        (#""data":"aGk=","size":3"#, "does not match its size and checksum (2 bytes, 3 expected)"),
        (#""data":"a!==","size":2"#, "is not Base64"),
    ])
    func inlineDataThatDoesNotMatchIsRefused(fields: String, reason: String) throws {
        let folder = try ScratchFolder()
        try FileManager.default.createDirectory(atPath: folder.state, withIntermediateDirectories: true)
        let checksum = SavedStateFormat.hex(SavedStateFormat.checksum(Array("hi".utf8)))
        let text = #"""
            {"format":"smartpoll-state","version":1,"written":"2026-11-30T01:44:32.123Z","pid":7,"last_run":17,\#
            "tasks":{"w1":{"runs":3,"failures":0,"consecutive_failures":0,"next":null,"interrupted_run":null,\#
            "last":null,"result":{"run":17,"time":"2026-11-30T01:44:32.000Z","truncated":false,\#(fields),\#
            "fnv1a64":"\#(checksum)"}}}}
            """#
        folder.write("state.json", Array(text.utf8))
        let loaded = try reopenedDefault(folder)
        #expect(loaded.state == nil)
        let errors = loaded.notes.filter { $0.level == .error }.map(\.message)
        #expect(errors.count == 1 && errors[0].contains(#"task "w1": the result's "#) && errors[0].contains(reason))
        #expect(folder.names().contains { $0.hasPrefix("state.json.corrupt-") })
    }

    private func reopenedDefault(_ folder: ScratchFolder) throws -> StateStore.Loaded {
        let store = StateStore(directory: folder.state)
        try store.prepare()
        return store.load()
    }

    @Test func aWriteAppendsOnlyTheChangedTasksRecords() throws {
        let folder = try ScratchFolder()
        let (store, _) = try reopened(folder)
        var state = sample()
        try store.write(
            StateStore.Changes(tasks: state.tasks.map { ($0.key, $0.value) }, complete: true, lastRunID: 41), pid: 1)
        let snapshot = try #require(folder.bytes("state.json"))
        let journalBefore = try #require(folder.bytes("journal"))
        try store.write(changed(&state, "never", runs: 0), pid: 1)
        #expect(folder.bytes("journal") == journalBefore, "a task as it is on disk needs no record")
        state.tasks["never"]!.runs = 3
        state.tasks["never"]!.failures = 1
        try store.write(StateStore.Changes(tasks: [("never", state.tasks["never"]!)], lastRunID: 1_041), pid: 1)
        #expect(folder.bytes("state.json") == snapshot, "the snapshot is not rewritten")
        let journal = StateJournal.decode(try #require(folder.bytes("journal")))
        #expect(journal.problem == nil)
        #expect(journal.records.count == 2, "\(journal.records)")
        #expect(journal.records.first == .lastRun(1_041), "the mark comes before the records it covers")
        #expect(journal.records.last.map { if case .task("never", _, _) = $0 { true } else { false } } == true)
        state.lastRunID = 1_041
        let loaded = try reopened(folder).1
        #expect(loaded.state == state, "\(loaded.notes)")
    }

    @Test func aTornTailIsIgnoredAndCutOff() throws {
        let folder = try ScratchFolder()
        let (store, _) = try reopened(folder)
        var state = sample()
        try store.save(state, pid: 1)
        try store.write(changed(&state, "never", runs: 1), pid: 1)
        let whole = try #require(folder.bytes("journal"))
        // A crash in the middle of the next append: half a line, then a line whose checksum fails.
        var next = state
        let record = StateJournal.encode(.task("never", changed(&next, "never", runs: 2).tasks[0].task, nil))
        folder.write("journal", whole + record.prefix(record.count / 2))
        let (_, loaded) = try reopened(folder)
        #expect(loaded.state == state)
        #expect(loaded.notes.contains { $0.level == .warning && $0.message.contains("torn") }, "\(loaded.notes)")
        #expect(folder.bytes("journal") == whole, "the torn tail is cut off")
        var damaged = record
        damaged[20] ^= 1
        folder.write("journal", whole + damaged)
        let (again, loadedAgain) = try reopened(folder)
        #expect(loadedAgain.state == state)
        #expect(loadedAgain.notes.contains { $0.message.contains("checksum does not match") })
        // And appends go on after the whole lines.
        try again.write(changed(&state, "never", runs: 5), pid: 1)
        #expect(try reopened(folder).1.state == state)
    }

    @Test func aCompactionWritesASnapshotAndAFreshJournalAndACrashBetweenLeavesAConsistentPair() throws {
        let folder = try ScratchFolder()
        let (store, _) = try reopened(folder)
        var state = sample()
        try store.save(state, pid: 1)
        let oldJournal = try #require(folder.bytes("journal"))
        try store.write(changed(&state, "never", runs: 1), pid: 1)
        let generation = store.journalGeneration
        // A compaction by hand: what a crash between its two steps leaves is the new snapshot
        // with the journal of the generation before.
        let journalBefore = try #require(folder.bytes("journal"))
        try store.save(state, pid: 1)
        #expect(store.journalGeneration == generation + 1)
        #expect(folder.bytes("journal")!.count < journalBefore.count, "a fresh journal")
        #expect(try reopened(folder).1.state == state)
        folder.write("journal", journalBefore)
        let (_, crashed) = try reopened(folder)
        #expect(crashed.state == state, "the older journal is ignored; the snapshot holds it all")
        #expect(crashed.notes.contains { $0.message.contains("older than state.json") })
        // The other crash: before the snapshot's rename, the old pair is whole.
        #expect(oldJournal.count < journalBefore.count)
    }

    @Test func aJournalThatOutgrowsTheSnapshotIsCompacted() throws {
        let folder = try ScratchFolder()
        let (store, _) = try reopened(folder)
        var state = SavedState()
        state.tasks["big"] = SavedTask(
            runs: 1, failures: 1, consecutiveFailures: 1,
            last: LastRun(
                run: 1, started: time, ended: time, durationMilliseconds: 1, exitCode: 1, signal: nil,
                timedOut: false, succeeded: false, error: "exit status 1",
                stderrTail: String(repeating: "e", count: 4_096)))
        state.lastRunID = 1_000_000
        try store.save(state, pid: 1)
        let generation = store.journalGeneration
        for runs in 2...400 {
            state.tasks["big"]!.runs = runs
            try store.write(StateStore.Changes(tasks: [("big", state.tasks["big"]!)]), pid: 1)
            // As the writer thread does, once each write is reported done.
            store.compactIfDue(pid: 1)
        }
        #expect(store.journalGeneration > generation, "1.6 MB of journal for a 4 KB snapshot")
        #expect(folder.bytes("journal")!.count < StateStore.smallestCompactedJournal)
        #expect(try reopened(folder).1.state == state)
    }

    @Test func aRemovedTaskAndItsResultFileGo() throws {
        let folder = try ScratchFolder()
        let (store, _) = try reopened(folder)
        var state = sample()
        try store.write(
            StateStore.Changes(tasks: state.tasks.map { ($0.key, $0.value) }, complete: true, lastRunID: 41), pid: 1)
        #expect(folder.names("/results") == ["binary.v2:x@y.41", "text.39"])
        state.tasks["text"] = nil
        try store.write(StateStore.Changes(tasks: state.tasks.map { ($0.key, $0.value) }, complete: true), pid: 1)
        #expect(folder.names("/results") == ["binary.v2:x@y.41"])
        #expect(try reopened(folder).1.state == state)
    }

    @Test(arguments: [
        (#""runs":1,"failures":2,"consecutive_failures":0"#, "", "more failures (2) than runs (1)"),
        (#""runs":3,"failures":1,"consecutive_failures":2"#, "", "more consecutive failures (2) than failures (1)"),
        (#""runs":1,"failures":0,"consecutive_failures":0"#, "run", "its last run (9) is above the last run id (5)"),
    ])
    func aStateFileWhoseCountersContradictEachOtherIsMovedAside(counters: String, last: String, reason: String) throws {
        let folder = try ScratchFolder()
        try StateStore(directory: folder.state, inlineLimit: 0).save(SavedState(), pid: 1)
        let lastRun =
            last.isEmpty
            ? "null"
            : #"{"run":9,"started":"2026-11-30T01:44:32.123Z","ended":"2026-11-30T01:44:32.123Z","duration_ms":1,"exit_code":0,"signal":null,"timed_out":false,"succeeded":true,"error":null,"stderr_tail":""}"#
        let text =
            #"{"format":"smartpoll-state","version":1,"last_run":5,"journal":1,"tasks":{"a":{\#(counters),"next":null,"interrupted_run":null,"last":\#(lastRun),"result":null}}}"#
        folder.write("state.json", Array(text.utf8))
        let (_, loaded) = try reopened(folder)
        #expect(loaded.state == nil)
        let error = try #require(loaded.notes.first { $0.level == .error }?.message)
        #expect(
            error.contains("its counters contradict each other: task \"a\" has \(reason)") || error.contains(reason),
            "\(error)")
        #expect(error.contains("moved it aside to \(folder.state)/state.json.corrupt-"))
        #expect(folder.names().contains { $0.hasPrefix("state.json.corrupt-") })
    }

    @Test func aFIFOOrALinkAtTheStateFileIsMovedAsideWithoutBlockingOrFollowing() throws {
        let folder = try ScratchFolder()
        try StateStore(directory: folder.state, inlineLimit: 0).save(sample(), pid: 1)
        try FileManager.default.removeItem(atPath: folder.state + "/state.json")
        #expect(mkfifo(folder.state + "/state.json", 0o600) == 0)
        let (store, loaded) = try reopened(folder)
        #expect(loaded.state == nil)
        #expect(loaded.notes.contains { $0.message.contains("cannot read it: it is a FIFO, not a regular file") })
        try store.save(sample(), pid: 1)
        #expect(try reopened(folder).1.state == sample())

        let outside = folder.path + "/outside.json"
        try FileManager.default.moveItem(atPath: folder.state + "/state.json", toPath: outside)
        #expect(symlink(outside, folder.state + "/state.json") == 0)
        let (_, linked) = try reopened(folder)
        #expect(linked.state == nil, "a link is not followed")
        #expect(linked.notes.contains { $0.message.contains("it is a symbolic link, not a regular file") })
    }

    @Test func aLinkPlantedAtATemporaryNameIsRemovedNotFollowed() throws {
        let folder = try ScratchFolder()
        let (store, _) = try reopened(folder)
        try store.save(sample(), pid: 1)
        let outside = folder.path + "/outside"
        folder.write("../outside", Array("mine".utf8))
        for name in [StateStore.temporaryName, StateStore.journalTemporaryName] {
            #expect(symlink(outside, folder.state + "/" + name) == 0)
        }
        try store.save(sample(), pid: 1)
        #expect(FileManager.default.contents(atPath: outside) == Data("mine".utf8))
        let notes = store.takeNotes()
        #expect(notes.count == 2 && notes.allSatisfy { $0.contains("a symbolic link in the way of the next write") })
        #expect(try reopened(folder).1.state == sample())
    }

    @Test func theRunIDMarkIsDurableAndOnlyGrows() throws {
        let folder = try ScratchFolder()
        let (store, _) = try reopened(folder)
        try store.write(StateStore.Changes(lastRunID: 1_000), pid: 1)
        #expect(try reopened(folder).1.state?.lastRunID == 1_000)
        let (again, _) = try reopened(folder)
        try again.write(StateStore.Changes(lastRunID: 1_500), pid: 1)
        try again.write(StateStore.Changes(lastRunID: 1_200), pid: 1)
        #expect(try reopened(folder).1.state?.lastRunID == 1_500)
    }
}

/// `history` in `state_dir`: a journal record a run, the whole rings in the snapshot.
extension StateJournalTests {
    private func appends(_ name: String, _ runs: ClosedRange<Int>, keep: Int) -> [StateStore.HistoryAppend] {
        runs.map { (name, keep, historyEntry($0, exitCode: $0 % 2, stderrLast: $0 % 4 == 0 ? nil : "line \($0)")) }
    }

    private func history(_ runs: ClosedRange<Int>, keep: Int) -> RunHistory {
        var ring = RunHistory(capacity: keep)
        for append in appends("x", runs, keep: keep) { ring.append(append.entry, keeping: keep) }
        return ring
    }

    @Test func theHistoryRecordRoundTrips() {
        let record = StateJournal.Record.history("w1", keep: 100, historyEntry(7, exitCode: 3, stderrLast: "é\"\n"))
        let bytes = StateJournal.header(generation: 4) + StateJournal.encode(record)
        let decoded = StateJournal.decode(bytes)
        #expect(decoded.problem == nil && decoded.generation == 4)
        #expect(decoded.records == [record])
        var damaged = bytes
        damaged[damaged.count - 5] ^= 1
        #expect(StateJournal.decode(damaged).records.isEmpty, "checksummed like the others")
    }

    @Test func aRunsEndAppendsOneEntryNotTheRingAndReplayTrims() throws {
        let folder = try ScratchFolder()
        let (store, _) = try reopened(folder)
        var state = sample()
        try store.write(
            StateStore.Changes(tasks: state.tasks.map { ($0.key, $0.value) }, complete: true, lastRunID: 41), pid: 1)
        var sizes: [Int] = []
        for run in 1...6 {
            let before = try #require(folder.bytes("journal")).count
            try store.write(StateStore.Changes(historyAppends: appends("text", run...run, keep: 4)), pid: 1)
            sizes.append(try #require(folder.bytes("journal")).count - before)
        }
        #expect(sizes.allSatisfy { $0 < 600 } && sizes.max()! - sizes.min()! < 40, "one entry a write: \(sizes)")
        let journal = StateJournal.decode(try #require(folder.bytes("journal")))
        #expect(journal.records.filter { if case .history = $0 { true } else { false } }.count == 6)
        // Replay trims to the bound each record carries.
        state.histories["text"] = history(3...6, keep: 4)
        let loaded = try reopened(folder).1
        #expect(loaded.state == state, "\(loaded.notes)")
        #expect(loaded.state?.histories["text"]?.newestFirst().map(\.run.run) == [6, 5, 4, 3])
        // A lower bound in a later record trims what came before.
        let (again, _) = try reopened(folder)
        try again.write(StateStore.Changes(historyAppends: appends("text", 7...7, keep: 2)), pid: 1)
        #expect(try reopened(folder).1.state?.histories["text"]?.newestFirst().map(\.run.run) == [7, 6])
    }

    @Test func theSnapshotHoldsTheWholeRingsAndARemovedTasksHistoryGoes() throws {
        let folder = try ScratchFolder()
        let (store, _) = try reopened(folder)
        var state = sample()
        state.histories["text"] = history(1...5, keep: 100)
        state.histories["never"] = history(8...9, keep: 100)
        try store.save(state, pid: 1)
        let snapshot = String(decoding: try #require(folder.bytes("state.json")), as: UTF8.self)
        #expect(snapshot.contains(#""history":{"never":["#), "\(snapshot)")
        let (reader, loaded) = try reopened(folder)
        #expect(loaded.state == state, "\(loaded.notes)")
        // A reload removed "text": its history goes with it, in the journal and at the next compaction.
        state.tasks["text"] = nil
        state.histories["text"] = nil
        try reader.write(
            StateStore.Changes(
                tasks: state.tasks.map { ($0.key, $0.value) }, complete: true,
                historyAppends: appends("text", 6...6, keep: 100)), pid: 1)
        #expect(try reopened(folder).1.state == state)
        try reader.save(state, pid: 1)
        #expect(try reopened(folder).1.state == state)
    }

    @Test func aStateFileWithoutHistoryLoadsWithNone() throws {
        let folder = try ScratchFolder()
        let (store, _) = try reopened(folder)
        let state = sample()
        try store.save(state, pid: 1)
        // As a supervisor before history wrote it: no "history" member.
        var text = String(decoding: try #require(folder.bytes("state.json")), as: UTF8.self)
        text = text.replacingOccurrences(of: #","history":{}"#, with: "")
        #expect(!text.contains("history"))
        folder.write("state.json", Array(text.utf8))
        let loaded = try reopened(folder).1
        #expect(loaded.state == state, "\(loaded.notes)")
        #expect(loaded.state?.histories.isEmpty == true)
    }
}
