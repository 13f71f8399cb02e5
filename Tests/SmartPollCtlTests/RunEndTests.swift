import Foundation
import SmartPollProtocol
import Testing

/// How runs end, where the order of things matters: late results, hooks that cannot start,
/// and the announcements a run's end makes.
@Suite(.endToEnd)
struct RunEndTests {
    @Test func aRunThatEndsAfterTheLoopStoppedLeavesNoResult() throws {
        let supervisor = try SupervisorHarness(
            """
            {"tasks": {"late": {
              "command": ["sh", "-c", "trap 'echo late; exit 0' TERM; echo first; while :; do sleep 0.05; done"]}}}
            """)
        let events = try supervisor.watch(["late"])
        #expect(try supervisor.ctl("run", "late").status == 0)
        try events.until { if case .taskStarted = $0.kind { return true } else { return false } }
        // TERM: the run exits 0 with output, but its loop's run is over: a late result.
        #expect(try supervisor.ctl("stop", "--wait").status == 0)
        let result = try json(try supervisor.ctl("--json", "result", "late").output)
        #expect(result["output"] == .null, "the late run stored its result: \(result)")
        let row = try json(try supervisor.ctl("--json", "status", "late").output)
        guard case .array(let tasks)? = row["tasks"], case .object(let task)? = tasks.first else {
            throw HarnessError("no task row")
        }
        #expect(task["runs"] == .int(1), "a late run still counts")
        #expect(!supervisor.logText.contains("changed=true"))
    }

    @Test func emitsQueuedBehindAHookThatCannotStartStillRun() throws {
        let supervisor = try SupervisorHarness(
            """
            {"tasks": {"t": {"command": ["true"]}},
             "hooks": {"slow": {"command": ["sleep", "0.3"]},
                       "broken": {"command": ["/nonexistent/smartpoll-hook"]},
                       "quick": {"command": ["true"]}}}
            """)
        let client = try supervisor.connect()
        let commands: [Command] = [
            .emit(hook: "slow", data: nil), .emit(hook: "broken", data: nil), .emit(hook: "quick", data: nil),
        ]
        for (index, command) in commands.enumerated() {
            try client.send(Request(id: .int(Int64(index)), command: command))
        }
        client.setTimeout(.seconds(10))
        var outcomes: [String] = []
        for command in commands {
            let reply = try Reply.decode(client.readLine(), for: command)
            switch reply.body {
            case .failure(let error): outcomes.append(error.code.rawValue)
            default: outcomes.append("ok")
            }
        }
        #expect(outcomes == ["ok", "internal", "ok"], "the hook after the one that could not start ran")
    }

    @Test func aDirectiveThatUnschedulesIsAnnouncedBeforeEveryReschedules() throws {
        let supervisor = try SupervisorHarness(
            """
            {"tasks": {"w": {"every": "1h", "start": null,
              "command": ["sh", "-c", "echo '{\\"cmd\\":\\"unschedule\\"}' >&3"]}}}
            """)
        // No run at the loop's start (`start` null): a run in flight whose directive unschedules
        // the task would answer this `run --wait` with not_running, as it should.
        let events = try supervisor.watch(["w"])
        #expect(try supervisor.ctl("run", "w", "--wait").status == 0)
        let seen = try events.until {
            if case .taskFinished = $0.kind { return true } else { return false }
        }
        let kinds = seen.compactMap { event -> String? in
            switch event.kind {
            case .taskScheduled: return "scheduled"
            case .taskUnscheduled: return "unscheduled"
            case .taskFinished: return "finished"
            default: return nil
            }
        }
        // The run's own changes in the order it made them: its directive, then `every`.
        #expect(Array(kinds.suffix(3)) == ["unscheduled", "scheduled", "finished"], "events: \(kinds)")
    }
}
