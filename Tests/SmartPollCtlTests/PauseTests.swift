import Foundation
import SmartPollProtocol
import Testing

/// `pause` and `resume`: a paused task keeps its schedule but never starts, `run` is refused,
/// `status` says so, watchers hear it, and a restart with `state_dir` keeps it paused.
@Suite(.endToEnd)
struct PauseTests {
    /// Reads events until `clock` has started `count` more times; returns how often `task`
    /// started meanwhile. The clock task is the test's timekeeper: no sleeps.
    static func startsOf(_ task: String, whileClockTicks count: Int, _ events: EventStream) throws -> Int {
        var ticks = 0
        var starts = 0
        try events.until { event in
            if case .taskStarted(let name, _, _, _, _) = event.kind {
                if name == task { starts += 1 }
                if name == "clock" { ticks += 1 }
            }
            return ticks == count
        }
        return starts
    }

    @Test func aPausedTaskNeverStartsUntilResumedAndStaysPausedAcrossARestart() throws {
        let first = try SupervisorHarness(
            """
            {"state_dir": "$DIR/state", "tasks": {
              "beat": {"command": ["true"], "start": "0s", "every": "200ms"},
              "clock": {"command": ["true"], "start": "0s", "every": "100ms"}}}
            """)
        first.keepsFolder = true
        let events = try first.watch()
        try events.finishes(of: "beat")
        let paused = try first.ctl("pause", "beat")
        #expect(paused.status == 0 && paused.output == "beat: paused\n", "\(paused)")
        try events.until { $0.kind == .taskPaused(task: "beat") }
        // About a second (ten ticks of the 100 ms clock): five beats would have started.
        #expect(try Self.startsOf("beat", whileClockTicks: 10, events) == 0, "a paused task never starts")
        let row = try first.statusRow("beat")
        #expect(row["paused"] == .bool(true))
        #expect(row["scheduled"] == .bool(true) || row["ready"] == .bool(true), "it keeps its schedule: \(row)")
        #expect(try first.statusRow("clock")["paused"] == .bool(false))
        let table = try first.ctl("status", "beat").output
        #expect(table.contains("paused"), "the table's STATE says paused:\n\(table)")
        let refused = try first.ctl("run", "beat")
        #expect(refused.status == 1)
        #expect(
            refused.error.contains(
                "smartpollctl: paused: task beat is paused; resume it with smartpollctl resume beat"), "\(refused)")
        #expect(try first.ctl("pause", "beet").error.contains("did you mean \"beat\"?"))
        #expect(try first.ctl("shutdown").status == 0)
        #expect(try first.waitForExit() == 0)

        let second = try SupervisorHarness(nil, folder: first.folder)
        #expect(try second.statusRow("beat")["paused"] == .bool(true), "a restart keeps the task paused")
        let watched = try second.watch()
        #expect(try Self.startsOf("beat", whileClockTicks: 5, watched) == 0)
        let resumed = try second.ctl("resume", "beat")
        #expect(resumed.status == 0 && resumed.output == "beat: resumed\n", "\(resumed)")
        let seen = try watched.until { event in
            if case .taskStarted("beat", _, _, _, _) = event.kind { return true }
            return false
        }
        guard let resumedEvent = seen.first(where: { $0.kind == .taskResumed(task: "beat") }) else {
            Issue.record("no task_resumed before beat started: \(seen)")
            return
        }
        // It fell due while paused: it starts at once, not a beat later.
        let delay = seen.last!.time.nanosecondsSinceEpoch - resumedEvent.time.nanosecondsSinceEpoch
        #expect(delay >= 0 && delay < Int64(1e9) * Int64(Sanitizer.slowdown), "started \(delay) ns after resume")
        #expect(try second.statusRow("beat")["paused"] == .bool(false))
    }
}
