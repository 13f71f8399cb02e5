import Foundation
import SmartPollClient
import SmartPollProtocol
import Testing

/// `state_dir` end to end (SPEC section 7): what a restart or a crash of the real supervisor
/// keeps, and what it does with a state it cannot write or read.
@Suite(.endToEnd)
struct DurabilityTests {
    private func statusRow(_ supervisor: SupervisorHarness, _ task: String) throws -> JSONObject {
        guard case .status(let status) = try supervisor.call(.status(tasks: [task])).body else {
            throw HarnessError("no status reply")
        }
        guard let row = status.tasks.first else { throw HarnessError("no status row for \(task)") }
        var object = JSONObject()
        object["runs"] = .int(Int64(row.runs))
        object["failures"] = .int(Int64(row.failures))
        object["next"] = row.next.map { .string($0.formatted()) } ?? .null
        object["running"] = .bool(row.running)
        object["scheduled"] = .bool(row.scheduled)
        object["last_run"] = row.last.map { .int(Int64($0.run)) } ?? .null
        object["run"] = row.run.map { .int(Int64($0)) } ?? .null
        return object
    }

    private func stateFile(_ supervisor: SupervisorHarness) throws -> StateFileStatus? {
        guard case .status(let status) = try supervisor.call(.status(tasks: nil)).body else {
            throw HarnessError("no status reply")
        }
        return status.stateFile
    }

    private func results(_ supervisor: SupervisorHarness) throws -> [TaskResult] {
        guard case .results(let results) = try supervisor.call(.results).body else {
            throw HarnessError("no results reply")
        }
        return results
    }

    /// Polls `condition` until it holds or `timeout` passes.
    private func eventually(_ timeout: TimeInterval = 10, _ condition: () throws -> Bool) throws -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if try condition() { return true }
            usleep(10_000)
        }
        return try condition()
    }

    @Test func resultsCountersAndSchedulesSurviveARestartAndTheRestartTriggersNothing() throws {
        let first = try SupervisorHarness(
            """
            {"state_dir": "$DIR/state", "tasks": {
              "producer": {"command": ["cat", "$DIR/value"], "on_change": ["consumer"], "on_failure": "continue"},
              "consumer": {"command": ["echo", "consumed"]},
              "binary": {"command": ["printf", "\\\\377\\\\000x"]},
              "later": {"command": ["true"]},
              "startsSooner": {"command": ["true"], "start": "30m"},
              "startsLater": {"command": ["true"], "start": "2h"}
            }}
            """)
        first.keepsFolder = true
        try "v1\n".write(toFile: first.path("value"), atomically: true, encoding: .utf8)
        let consumer = try first.watch(["consumer"])
        #expect(try first.ctl("run", "producer", "--wait").status == 0)
        try consumer.finishes(of: "consumer")
        try FileManager.default.removeItem(atPath: first.path("value"))
        #expect(try first.ctl("run", "producer", "--wait").status == 1)
        try "v1\n".write(toFile: first.path("value"), atomically: true, encoding: .utf8)
        #expect(try first.ctl("run", "producer", "--wait").status == 0)
        #expect(try first.ctl("run", "binary", "--wait").status == 0)
        for task in ["later", "startsSooner", "startsLater"] {
            #expect(try first.ctl("schedule", task, "1h").status == 0)
        }
        let savedResults = try results(first)
        #expect(savedResults.map(\.task) == ["binary", "consumer", "producer"])
        let savedRows = try ["producer", "consumer", "later", "startsLater"].map { try statusRow(first, $0) }
        #expect(savedRows[0]["runs"] == .int(3) && savedRows[0]["failures"] == .int(1))
        #expect(try first.ctl("shutdown").status == 0)
        #expect(try first.waitForExit() == 0)

        let restarted = Date()
        let second = try SupervisorHarness(nil, folder: first.folder)
        #expect(try results(second) == savedResults, "results come back byte for byte, with run, time and truncated")
        #expect(
            try ["producer", "consumer", "later", "startsLater"].map { try statusRow(second, $0) } == savedRows,
            "counters, last runs and pending schedules (as wall-clock times) come back")
        let sooner = try statusRow(second, "startsSooner")["next"]?.stringValue.map(Timestamp.parse)
        let expected = Timestamp(nanosecondsSinceEpoch: Int64(restarted.timeIntervalSince1970 * 1e9)).advanced(
            by: .seconds(1800))
        #expect(
            sooner.map { abs($0.nanosecondsSinceEpoch - expected.nanosecondsSinceEpoch) < 5_000_000_000 } == true,
            "a task's start wins when it is sooner than its saved schedule: \(String(describing: sooner))")
        #expect(
            try eventually { second.logText.contains("state restored") }, "the log reaches the harness through a pipe")

        // The restored result is what a new run compares with: the same output is no change.
        let events = try second.watch(["producer", "consumer"])
        #expect(try second.ctl("run", "producer", "--wait").status == 0)
        let finish = try #require(try events.finishes(of: "producer").first)
        guard case .taskFinished(_, let run, _, _, _, _, _, _, let changed) = finish.kind else {
            throw HarnessError("not a finish")
        }
        #expect(!changed, "a restart alone does not trigger on_change")
        #expect(run > savedResults.map(\.run).max()!, "run ids go on growing across restarts")
        let consumerRow = try statusRow(second, "consumer")
        #expect(
            consumerRow["runs"] == .int(1) && consumerRow["scheduled"] == .bool(false)
                && consumerRow["running"] == .bool(false))
    }

    @Test func aRunThatFellDueWhileTheSupervisorWasDownStartsAtOnceAndACutShortRunRunsAgain() throws {
        let first = try SupervisorHarness(
            """
            {"state_dir": "$DIR/state", "tasks": {
              "due": {"command": ["echo", "ran"]},
              "long": {"command": ["sleep", "60"]}
            }}
            """)
        first.keepsFolder = true
        let events = try first.watch(["long"])
        #expect(try first.ctl("run", "long").status == 0)
        try events.until { if case .taskStarted = $0.kind { return true } else { return false } }
        let schedule = try first.ctl("--json", "schedule", "due", "300ms")
        #expect(schedule.status == 0)
        let dueAt = try #require(try json(schedule.output)["next"]?.stringValue.map(Timestamp.parse))
        // The reply came after the write: a crash now loses nothing.
        first.signal(SIGKILL)
        #expect(try first.waitForExit() == SIGKILL)
        // Down until the run is overdue (time passing has no event to wait for).
        let wait = Double(dueAt.nanosecondsSinceEpoch - Timestamp.now().nanosecondsSinceEpoch) / 1e9 + 0.05
        if wait > 0 { usleep(UInt32(wait * 1e6)) }

        let second = try SupervisorHarness(nil, folder: first.folder)
        #expect(try eventually { try statusRow(second, "due")["runs"] == .int(1) }, "the overdue run starts at once")
        #expect(try second.ctl("result", "due").output == "ran\n")
        #expect(
            try eventually { second.logText.contains("fell due while the supervisor was down") },
            "the log reaches the harness through a pipe")
        let long = try statusRow(second, "long")
        #expect(long["running"] == .bool(true), "the run the crash cut short runs again")
        #expect(
            try eventually { second.logText.contains("run 1 was cut short when the supervisor stopped") },
            "the log reaches the harness through a pipe")
    }

    @Test func retryBackoffSurvivesARestart() throws {
        let first = try SupervisorHarness(
            """
            {"state_dir": "$DIR/state", "tasks": {
              "flaky": {"command": ["false"], "on_failure": "retry", "backoff": {"initial": "200ms", "factor": 1000, "max": "10h"}}
            }}
            """)
        first.keepsFolder = true
        let events = try first.watch(["flaky"])
        #expect(try first.ctl("run", "flaky").status == 0)
        // The first failure retries after 200 ms; the second after 200 s.
        try events.finishes(of: "flaky", count: 2)
        #expect(try eventually { try statusRow(first, "flaky")["scheduled"] == .bool(true) })
        #expect(try first.ctl("shutdown").status == 0)
        _ = try first.waitForExit()

        let second = try SupervisorHarness(nil, folder: first.folder)
        let restored = try statusRow(second, "flaky")
        #expect(restored["failures"] == .int(2) && restored["scheduled"] == .bool(true))
        #expect(try second.ctl("run", "flaky", "--wait").status == 1)
        // Third consecutive failure: 200 ms * 1000^2, capped at 10 h. A backoff that forgot the
        // first two would retry in 200 ms.
        let next = try #require(try statusRow(second, "flaky")["next"]?.stringValue.map(Timestamp.parse))
        #expect(next.nanosecondsSinceEpoch - Timestamp.now().nanosecondsSinceEpoch > 9 * 3_600 * 1_000_000_000)
    }

    @Test func aStateFileThatCannotBeWrittenShowsInStatusWhileTheSupervisorCarriesOn() throws {
        let supervisor = try SupervisorHarness(
            #"{"state_dir": "$DIR/state", "tasks": {"t": {"command": "# + FileResult.command + "}}}")
        #expect(try eventually { try stateFile(supervisor)?.saved != nil })
        // Folders where the next runs' result files go: every write fails (EISDIR), even as root.
        let blockers = (1...200).map { supervisor.path("state/results/t.\($0)") }
        for blocker in blockers where !FileManager.default.fileExists(atPath: blocker) {
            try FileManager.default.createDirectory(atPath: blocker, withIntermediateDirectories: false)
        }
        #expect(try supervisor.ctl("run", "t", "--wait").status == 0, "tasks go on running")
        let failing = try #require(try stateFile(supervisor))
        let prefix = "cannot create \(supervisor.path("state/results/t."))"
        #expect(failing.error?.hasPrefix(prefix) == true && failing.error?.hasSuffix(": Is a directory") == true)
        #expect(failing.failingSince != nil)
        #expect(try supervisor.ctl("status").output.contains("state: NOT SAVED since "))
        #expect(supervisor.logText.contains("state: \(prefix)"))
        #expect(supervisor.logText.contains(": Is a directory; the supervisor keeps running"))
        for blocker in blockers { try? FileManager.default.removeItem(atPath: blocker) }
        #expect(try eventually { try stateFile(supervisor)?.error == nil }, "the next retry succeeds")
        #expect(try stateFile(supervisor)?.failingSince == nil)
        // The log has a thread of its own: its line may come just after the reply.
        #expect(try eventually { supervisor.logText.contains("state: saved again after failing since ") })
        #expect(try supervisor.ctl("result", "t").output == FileResult.output)
    }

    @Test func aCorruptStateFileIsMovedAsideAndTheSupervisorStartsAfresh() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent(
            "smartpoll-e2e-\(UUID().uuidString.prefix(8))"
        ).path
        try FileManager.default.createDirectory(atPath: folder + "/state", withIntermediateDirectories: true)
        try "{\"format\":\"smartpoll-state\",\"version\":1,\"tas".write(
            toFile: folder + "/state/state.json", atomically: true, encoding: .utf8)
        let supervisor = try SupervisorHarness(
            #"{"state_dir": "$DIR/state", "tasks": {"t": {"command": ["true"], "start": "0s"}}}"#,
            folder: folder)
        #expect(supervisor.logText.contains("error state: \(folder)/state/state.json is unusable (invalid JSON"))
        #expect(supervisor.logText.contains("moved it aside to \(folder)/state/state.json.corrupt-"))
        let names = try FileManager.default.contentsOfDirectory(atPath: folder + "/state")
        let aside = try #require(names.first { $0.hasPrefix("state.json.corrupt-") })
        #expect(try String(contentsOfFile: folder + "/state/" + aside, encoding: .utf8).hasSuffix("\"tas"))
        #expect(try eventually { try statusRow(supervisor, "t")["runs"] == .int(1) }, "the supervisor runs as usual")
        #expect(try eventually { try stateFile(supervisor)?.saved != nil }, "and writes a new state file")
    }

    /// How many times the state is written in `folder` during `seconds`: `state.json` replaced
    /// or the journal appended to.
    private func stateWrites(in folder: String, during seconds: TimeInterval) throws -> Int {
        let inotify = inotify_init1(Int32(IN_CLOEXEC | IN_NONBLOCK))
        guard inotify >= 0 else { throw HarnessError("inotify_init1 failed") }
        defer { close(inotify) }
        guard inotify_add_watch(inotify, folder, UInt32(IN_MOVED_TO | IN_MODIFY)) >= 0 else {
            throw HarnessError("inotify_add_watch failed")
        }
        let deadline = Date().addingTimeInterval(seconds)
        var writes = 0
        var buffer = [UInt8](repeating: 0, count: 4096)
        while case let left = deadline.timeIntervalSinceNow, left > 0 {
            var entry = pollfd(fd: inotify, events: Int16(POLLIN), revents: 0)
            guard poll(&entry, 1, Int32(left * 1000) + 1) == 1 else { continue }
            let length = buffer.withUnsafeMutableBytes { read(inotify, $0.baseAddress, $0.count) }
            var offset = 0
            while offset + MemoryLayout<inotify_event>.size <= length {
                let nameLength = Int(buffer.withUnsafeBytes { $0.load(fromByteOffset: offset + 12, as: UInt32.self) })
                let nameStart = offset + MemoryLayout<inotify_event>.size
                let name = String(
                    decoding: buffer[nameStart..<nameStart + nameLength].prefix { $0 != 0 }, as: UTF8.self)
                if name == "state.json" || name == "journal" { writes += 1 }
                offset = nameStart + nameLength
            }
        }
        return writes
    }

    @Test func aBurstOfRunsCostsOneWritePerInterval() throws {
        let supervisor = try SupervisorHarness(
            """
            {"state_dir": "$DIR/state", "tasks": {"busy": {"command": ["true"], "start": "0s", "every": "2ms"}}}
            """)
        #expect(try eventually { try statusRow(supervisor, "busy")["runs"] != .int(0) })
        let runsBefore = try statusRow(supervisor, "busy")["runs"]?.int64Value ?? 0
        let writes = try stateWrites(in: supervisor.path("state"), during: 1)
        let runs = (try statusRow(supervisor, "busy")["runs"]?.int64Value ?? 0) - runsBefore
        // At most one write per 100 ms (and a little slack for the edges of the second), while
        // every run changes the state.
        #expect(writes >= 2 && writes <= 13, "\(writes) writes for \(runs) runs in one second")
        #expect(runs >= 3 * Int64(writes), "\(writes) writes for \(runs) runs in one second")
    }

    @Test func twoSupervisorsCannotShareAStateDirectory() throws {
        let first = try SupervisorHarness(#"{"state_dir": "$DIR/state", "tasks": {"t": {"command": ["true"]}}}"#)
        let second = try runCommand(
            Binaries.supervisor, ["--config", first.configurationPath, "--socket", first.path("other.sock")])
        #expect(second.status == 1)
        #expect(second.error.contains("another supervisor uses the state directory \(first.path("state"))"))
        #expect(
            !FileManager.default.fileExists(atPath: first.path("other.sock")), "the refused one cleans up its socket")
        #expect(try first.ctl("ping").status == 0)
    }
}
