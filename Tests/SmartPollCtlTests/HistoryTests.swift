import Foundation
import Glibc
import SmartPollProtocol
import Testing

/// `history`: a task's last finished runs (task key `history`), newest first, kept in
/// `state_dir` across restarts and crashes.
@Suite(.endToEnd)
struct HistoryTests {
    /// A line of 301 bytes: "a" then 150 two-byte characters, so that byte 256 is in the middle
    /// of a character.
    static let longLine = "a" + String(repeating: "é", count: 150)

    /// `vary` goes through five different runs: exit 0 with output A (changed: the first
    /// result), exit 3, exit 0 with A again (unchanged), killed by SIGKILL, exit 0 with B.
    static let configuration = """
        {"state_dir": "$DIR/state", "tasks": {
          "vary": {"on_failure": "continue", "command": ["sh", "-c", "n=$(cat $DIR/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > $DIR/n; echo first $n >&2; echo last $n >&2; case $n in 1|3) printf A;; 2) printf XY; exit 3;; 4) kill -KILL $$;; *) printf B;; esac"]},
          "two": {"command": ["sh", "-c", "echo run >&2"], "history": 2},
          "none": {"command": ["true"], "history": 0},
          "long": {"command": ["sh", "-c", "echo '\(longLine)' >&2"]},
          "quiet": {"command": ["true"]}
        }}
        """

    static func entries(_ reply: JSONObject) -> [JSONObject] {
        (reply["history"]?.arrayValue ?? []).compactMap(\.objectValue)
    }

    static func runFiveTimes(_ supervisor: SupervisorHarness) throws {
        for _ in 1...5 { try supervisor.ctl("run", "vary", "--wait") }
    }

    /// What the five runs of `vary` leave, newest first: exit code, signal, changed, output bytes,
    /// last stderr line.
    static func checkFive(_ history: [JSONObject]) {
        #expect(history.count == 5, "\(history)")
        guard history.count == 5 else { return }
        let runs = history.compactMap { $0["run"]?.int64Value }
        #expect(runs == runs.sorted(by: >) && Set(runs).count == 5, "newest first: \(runs)")
        #expect(history.map { $0["exit_code"] } == [.int(0), .null, .int(0), .int(3), .int(0)])
        #expect(history.map { $0["signal"] } == [.null, .int(9), .null, .null, .null])
        #expect(history.map { $0["succeeded"] } == [true, false, true, false, true].map(JSONValue.bool))
        #expect(history.map { $0["changed"] } == [true, false, false, false, true].map(JSONValue.bool))
        #expect(history.map { $0["stderr_last"] } == (1...5).reversed().map { .string("last \($0)") })
        #expect(history[0]["output_bytes"] == .int(1) && history[2]["output_bytes"] == .int(1))
        // The keys of status's `last`, but the tail, and the three of history.
        let keys: Set<String> = [
            "run", "started", "ended", "duration_ms", "exit_code", "signal", "timed_out", "succeeded", "error",
            "cpu_ms", "changed", "output_bytes", "stderr_last",
        ]
        #expect(Set(history[0].keys) == keys, "\(history[0].keys)")
    }

    @Test func historyListsTheRunsNewestFirstAndSurvivesRestartsAndCrashes() throws {
        let first = try SupervisorHarness(Self.configuration)
        first.keepsFolder = true
        defer { try? FileManager.default.removeItem(atPath: first.folder) }
        try Self.runFiveTimes(first)

        let reply = try json(try first.ctl("--json", "history", "vary").output)
        #expect(reply["ok"] == .bool(true) && reply["task"] == .string("vary"), "\(reply)")
        Self.checkFive(Self.entries(reply))
        let lastKeys = Set(try first.statusRow("vary")["last"]?.objectValue?.keys ?? [])
        #expect(
            lastKeys.subtracting(["stderr_tail"]).union(["changed", "output_bytes", "stderr_last"])
                == Set(Self.entries(reply).first?.keys ?? []), "history entries share status's last keys")

        let table = try first.ctl("history", "vary")
        #expect(table.status == 0, "\(table)")
        let rows = table.output.split(separator: "\n").map(String.init)
        #expect(rows.count == 6 && rows[0].hasPrefix("RUN") && rows[0].contains("LAST STDERR"), "\(table.output)")
        #expect(rows.count == 6 && rows[1].hasSuffix("last 5") && rows[2].contains("SIGKILL"), "\(table.output)")
        #expect(try first.ctl("--utc", "history", "vary").output.contains(" UTC "), "times as status shows them")
        let two = try first.ctl("history", "vary", "-n", "2")
        #expect(two.output.split(separator: "\n").count == 3, "\(two.output)")
        let limited = Self.entries(try json(try first.ctl("--json", "history", "vary", "-n", "2").output))
        #expect(limited.map { $0["stderr_last"] } == [.string("last 5"), .string("last 4")])

        // A clean stop keeps it.
        first.signal(SIGTERM)
        #expect(try first.waitForExit() == 0)
        let second = try SupervisorHarness(nil, folder: first.folder)
        second.keepsFolder = true
        Self.checkFive(Self.entries(try json(try second.ctl("--json", "history", "vary").output)))
        // A crash right after a run (its reply came after the write) keeps it too.
        try second.ctl("run", "vary", "--wait")
        second.signal(SIGKILL)
        #expect(try second.waitForExit() == SIGKILL)
        let third = try SupervisorHarness(nil, folder: first.folder)
        let afterCrash = Self.entries(try json(try third.ctl("--json", "history", "vary").output))
        #expect(afterCrash.count == 6 && afterCrash.first?["stderr_last"] == .string("last 6"), "\(afterCrash)")
        Self.checkFive(Array(afterCrash.dropFirst()))
    }

    /// 20,000 runs with 256-byte stderr lines (restored from a state file written here): about
    /// 8 MB of reply, sent whole and newest first, while other clients are still served. (That
    /// it goes in slices is SlicedReplyTests': a debug build encodes these 8 MB within the
    /// ping's bound even at once, so this test cannot tell.)
    @Test func aLargeHistoryIsSentWholeWhileOthersAreServed() throws {
        let count = 20_000
        let line = String(repeating: "é", count: 128)
        var entries: [String] = []
        entries.reserveCapacity(count)
        for run in 1...count {
            entries.append(
                #"{"run":\#(run),"started":"2026-11-30T01:44:32.123Z","ended":"2026-11-30T01:44:33.123Z","#
                    + #""duration_ms":1000.0,"exit_code":0,"signal":null,"timed_out":false,"succeeded":true,"#
                    + #""error":null,"cpu_ms":null,"changed":false,"output_bytes":\#(run),"stderr_last":"\#(line)"}"#)
        }
        let state =
            #"{"format":"smartpoll-state","version":1,"written":"2026-11-30T01:44:40.000Z","pid":1,"#
            + #""last_run":\#(count),"journal":0,"tasks":{"big":{"runs":\#(count),"failures":0,"cancelled":0,"#
            + #""consecutive_failures":0,"next":null,"interrupted_run":null,"paused":false,"last":null,"#
            + #""result":null}},"history":{"big":[\#(entries.joined(separator: ","))]}}"#
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent(
            "smartpoll-e2e-\(UUID().uuidString.prefix(8))"
        ).path
        try FileManager.default.createDirectory(
            atPath: folder + "/state", withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        try state.write(toFile: folder + "/state/state.json", atomically: true, encoding: .utf8)
        let supervisor = try SupervisorHarness(
            #"{"state_dir": "$DIR/state", "tasks": {"big": {"command": ["true"], "history": 100000}}}"#,
            folder: folder)

        // A client that asks and does not read yet: its reply waits in slices, not in the loop.
        let slow = try supervisor.connect()
        try slow.send(Request(id: .int(1), command: .history(task: "big", limit: nil)))
        let started = Date()
        #expect(try supervisor.call(.ping).isSuccess)
        #expect(Date().timeIntervalSince(started) < 1.0 * Double(Sanitizer.slowdown), "ping waited")

        let reply = try json(try supervisor.ctl("--json", "history", "big").output)
        let history = Self.entries(reply)
        #expect(history.count == count)
        #expect(history.first?["run"] == .int(Int64(count)) && history.last?["run"] == .int(1))
        #expect(history.allSatisfy { $0["stderr_last"] == .string(line) })
        let slowReply = try Reply.decode(try slow.readLine(), for: .history(task: "big", limit: nil))
        guard case .history(let whole) = slowReply.body else {
            Issue.record("not a history reply: \(slowReply)")
            return
        }
        #expect(whole.entries.count == count && whole.entries.first?.outputBytes == count)
    }

    /// A task a reload removes loses its history, on disk too; a renamed task starts afresh.
    @Test func aRemovedOrRenamedTaskStartsWithoutHistory() throws {
        let configuration = #"{"state_dir": "$DIR/state", "tasks": {"a": {"command": ["true"]}}}"#
        let first = try SupervisorHarness(configuration)
        first.keepsFolder = true
        defer { try? FileManager.default.removeItem(atPath: first.folder) }
        try first.ctl("run", "a", "--wait")
        try first.ctl("run", "a", "--wait")
        #expect(Self.entries(try json(try first.ctl("--json", "history", "a").output)).count == 2)
        try #"{"state_dir": "\#(first.folder)/state", "tasks": {"b": {"command": ["true"]}}}"#
            .write(toFile: first.configurationPath, atomically: true, encoding: .utf8)
        #expect(try first.ctl("reload").status == 0)
        #expect(Self.entries(try json(try first.ctl("--json", "history", "b").output)).isEmpty, "renamed: a new task")
        // The reload's write is durable once a client's request waits for it: `run --wait` does.
        try first.ctl("run", "b", "--wait")
        try configuration.replacingOccurrences(of: "$DIR", with: first.folder)
            .write(toFile: first.configurationPath, atomically: true, encoding: .utf8)
        first.signal(SIGKILL)
        #expect(try first.waitForExit() == SIGKILL)
        let second = try SupervisorHarness(nil, folder: first.folder)
        #expect(
            Self.entries(try json(try second.ctl("--json", "history", "a").output)).isEmpty,
            "the removed task's history went with it")
    }

    @Test func historyKeepsAtMostItsBoundAndStderrLastIsCut() throws {
        let supervisor = try SupervisorHarness(Self.configuration)
        for _ in 1...3 {
            try supervisor.ctl("run", "two", "--wait")
            try supervisor.ctl("run", "none", "--wait")
        }
        let two = Self.entries(try json(try supervisor.ctl("--json", "history", "two").output))
        #expect(two.count == 2, "history: 2 keeps two: \(two)")
        #expect(Self.entries(try json(try supervisor.ctl("--json", "history", "none").output)).isEmpty)
        #expect(try supervisor.ctl("history", "none").output.contains("no finished runs"))

        try supervisor.ctl("run", "long", "--wait")
        try supervisor.ctl("run", "quiet", "--wait")
        let long = Self.entries(try json(try supervisor.ctl("--json", "history", "long").output)).first
        let expected = "a" + String(repeating: "é", count: 127)
        #expect(long?["stderr_last"] == .string(expected), "cut at 256 bytes, before a split character")
        #expect(expected.utf8.count == 255)
        let quiet = Self.entries(try json(try supervisor.ctl("--json", "history", "quiet").output)).first
        #expect(quiet?["stderr_last"] == .null, "no stderr: null")

        let unknown = try supervisor.ctl("history", "tow")
        #expect(unknown.status == 1 && unknown.error.contains("unknown_task"), "\(unknown)")
        #expect(unknown.error.contains("did you mean \"two\"?"), "\(unknown)")
        for bad in ["-1", "x"] {
            #expect(try supervisor.ctl("history", "two", "-n", bad).status == 2)
        }
        guard case .failure(let error) = try supervisor.call(.history(task: "two", limit: -1)).body else {
            Issue.record("a negative limit is refused")
            return
        }
        #expect(error.code == .badRequest, "\(error)")

        // A reload that lowers `history` trims.
        try Self.configuration.replacingOccurrences(of: "$DIR", with: supervisor.folder)
            .replacingOccurrences(of: #""history": 2"#, with: #""history": 1"#)
            .write(toFile: supervisor.configurationPath, atomically: true, encoding: .utf8)
        #expect(try supervisor.ctl("reload").status == 0)
        #expect(Self.entries(try json(try supervisor.ctl("--json", "history", "two").output)).count == 1)
    }
}
