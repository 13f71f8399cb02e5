import Foundation
import SmartPollProtocol
import Testing

/// Each command of SPEC sections 5 and 6 against the real binaries, with its reply shape.
@Suite(.endToEnd)
struct CommandTests {
    static let basic = """
        {
          // Comments are allowed in the configuration.
          "tasks": {
            "echo": {"command": ["sh", "-c", "echo hello; echo warn >&2"]},
            "fail": {"command": ["sh", "-c", "exit 3"], "on_failure": "continue"},
            "idle": {"command": ["true"]}
          },
          "hooks": {"refresh": {"schedule": {"echo": "0s"}}}
        }
        """

    @Test func pingReportsVersionProtocolPidAndUptime() throws {
        let supervisor = try SupervisorHarness(Self.basic)
        let reply = try json(try supervisor.ctl("--json", "ping").output)
        #expect(reply.keys == ["id", "ok", "version", "protocol", "pid", "uptime_ms"])
        #expect(reply["protocol"] == .int(1))
        #expect(reply["pid"] == .int(Int64(supervisor.pid)))
        let human = try supervisor.ctl("ping")
        #expect(human.status == 0)
        #expect(human.output.hasPrefix("smartpoll-supervisor 0.1.0 (protocol 1), pid \(supervisor.pid), up "))
    }

    @Test func statusShowsTheLoopAndEveryTaskInTableAndJSON() throws {
        let supervisor = try SupervisorHarness(Self.basic)
        let events = try supervisor.watch(["echo"])
        #expect(try supervisor.ctl("run", "echo").status == 0)
        try events.finishes(of: "echo")
        let table = try supervisor.ctl("status")
        #expect(table.status == 0)
        let lines = table.output.split(separator: "\n").map(String.init)
        #expect(lines[0].hasPrefix("loop: running since "))
        #expect(
            lines[1].split(separator: " ", omittingEmptySubsequences: true) == [
                "TASK", "STATE", "NEXT", "LAST", "EXIT", "RUNS", "FAILURES", "CANCELLED",
            ])
        let echo = try #require(lines.first { $0.hasPrefix("echo ") })
        #expect(echo.split(separator: " ", omittingEmptySubsequences: true).suffix(4) == ["0", "1", "0", "0"])
        let reply = try json(try supervisor.ctl("--json", "status", "echo").output)
        #expect(reply.keys == ["id", "ok", "loop", "tasks", "state_file", "containment", "hooks"])
        #expect(reply["state_file"] == .null, "no state_dir configured")
        guard case .array(let tasks)? = reply["tasks"], case .object(let task)? = tasks.first else {
            Issue.record("no tasks in \(reply)")
            return
        }
        #expect(tasks.count == 1)
        #expect(
            task.keys == [
                "name", "scheduled", "ready", "next", "running", "pid", "run", "runs", "failures", "cancelled",
                "paused", "last",
            ])
        guard case .object(let last)? = task["last"] else { Issue.record("no last run"); return }
        #expect(
            last.keys == [
                "run", "started", "ended", "duration_ms", "exit_code", "signal", "timed_out", "succeeded", "error",
                "stderr_tail", "cpu_ms",
            ])
        #expect(last["stderr_tail"] == .string("warn\n"))
        #expect(last["exit_code"] == .int(0))
        #expect(try supervisor.ctl("status", "ghost").status == 1)
    }

    @Test func scheduleUnscheduleAndStopTimerReportTheSchedule() throws {
        let supervisor = try SupervisorHarness(Self.basic)
        let scheduled = try json(try supervisor.ctl("--json", "schedule", "idle", "1h").output)
        #expect(scheduled["scheduled"] == .bool(true))
        let next = try Timestamp.parse(try #require(scheduled["next"]?.stringValue))
        let fromNow = next.nanosecondsSinceEpoch - Timestamp.now().nanosecondsSinceEpoch
        #expect(fromNow > 3_590_000_000_000 && fromNow <= 3_600_000_000_000)
        #expect(try supervisor.ctl("schedule", "idle", "2h", "--sooner").output.contains("idle: next in 59m"))
        let stopped = try json(try supervisor.ctl("--json", "stop-timer", "idle").output)
        #expect(stopped["ready"] == .bool(false))
        let status = try json(try supervisor.ctl("--json", "status", "idle").output)
        guard case .array(let rows)? = status["tasks"], case .object(let row)? = rows.first else { return }
        #expect(row["scheduled"] == .bool(false))
        #expect(
            try supervisor.ctl("schedule", "idle", "--at", "2099-01-01T00:00:00Z", "--utc").output.contains(
                "(2099-01-01 00:00:00.000 UTC)"))
        #expect(try supervisor.ctl("unschedule", "idle").output == "idle: not scheduled\n")
        let bad = try supervisor.ctl("schedule", "idle", "5x")
        #expect(bad.status == 2)
        #expect(bad.error.contains("5x"))
    }

    @Test func runWaitExitsWithTheTasksOwnStatus() throws {
        let supervisor = try SupervisorHarness(
            """
            {"tasks": {
              "ok": {"command": ["true"]},
              "three": {"command": ["sh", "-c", "exit 3"], "on_failure": "continue"},
              "killed": {"command": ["sh", "-c", "kill -KILL $$"], "on_failure": "continue"},
              "slow": {"command": ["sleep", "30"], "timeout": "200ms", "on_failure": "continue"}
            }}
            """)
        #expect(try supervisor.ctl("run", "ok", "--wait").status == 0)
        #expect(try supervisor.ctl("run", "three", "--wait").status == 3)
        #expect(try supervisor.ctl("run", "killed", "--wait").status == 128 + 9)
        #expect(try supervisor.ctl("run", "slow", "--wait").status == 124)
        let reply = try json(try supervisor.ctl("--json", "run", "three", "--wait").output)
        #expect(
            reply.keys == [
                "id", "ok", "task", "run", "exit_code", "signal", "timed_out", "succeeded", "cancelled", "error",
                "stderr_tail",
            ])
        #expect(reply["succeeded"] == .bool(false))
    }

    @Test func resultAndResultsGiveTheLastSuccessfulOutput() throws {
        let supervisor = try SupervisorHarness(Self.basic)
        #expect(try supervisor.ctl("run", "echo", "--wait").status == 0)
        #expect(try supervisor.ctl("result", "echo").output == "hello\n")
        let reply = try json(try supervisor.ctl("--json", "result", "echo").output)
        #expect(reply.keys == ["id", "ok", "task", "run", "time", "output", "truncated"])
        #expect(reply["truncated"] == .bool(false))
        let none = try json(try supervisor.ctl("--json", "result", "idle").output)
        #expect(none["output"] == .null)
        #expect(try supervisor.ctl("run", "fail", "--wait").status == 3)
        let results = try json(try supervisor.ctl("--json", "results").output)
        guard case .object(let byTask)? = results["results"] else { Issue.record("no results"); return }
        #expect(byTask.keys == ["echo"], "a failed run leaves no result")
    }

    @Test func emitRunsADeclarativeHookAndUnknownNamesAreClearErrors() throws {
        let supervisor = try SupervisorHarness(Self.basic)
        let events = try supervisor.watch()
        #expect(try supervisor.ctl("emit", "refresh").status == 0)
        let seen = try events.until {
            if case .taskFinished(let task, _, _, _, _, _, _, _, _) = $0.kind { return task == "echo" }; return false
        }
        #expect(
            seen.contains {
                if case .hookRan(let hook) = $0.kind { return hook == "refresh" }; return false
            })
        let unknownHook = try supervisor.ctl("emit", "nope")
        #expect(unknownHook.status == 1)
        #expect(unknownHook.error == "smartpollctl: unknown_hook: no hook is named \"nope\"\n")
        let unknownTask = try supervisor.ctl("run", "nope")
        #expect(unknownTask.error == "smartpollctl: unknown_task: no task is named \"nope\"\n")
    }

    @Test func usageErrorsExitTwoAndAnAbsentSupervisorSixtyNine() throws {
        let usage = try runCommand(Binaries.ctl, ["frobnicate"])
        #expect(usage.status == 2)
        #expect(usage.error.hasPrefix("smartpollctl: usage: unknown command \"frobnicate\""))
        let absent = try runCommand(Binaries.ctl, ["--socket", "/nonexistent/s.sock", "ping"])
        #expect(absent.status == 69)
        #expect(absent.error.hasPrefix("smartpollctl: unreachable: "))
        let help = try runCommand(Binaries.ctl, ["--help"])
        #expect(help.status == 0 && help.output.contains("usage: smartpollctl"))
        let outside = try runCommand(
            Binaries.ctl, ["hook", "schedule", "t", "1s"], environment: ["PATH": "/usr/bin:/bin"])
        #expect(outside.status == 2)
        #expect(outside.error.contains("SMARTPOLL_HOOK_FD"))
    }

    @Test func timeoutGivesUpWithSeventyFiveAndTheSupervisorCarriesOn() throws {
        let supervisor = try SupervisorHarness(#"{"tasks": {"slow": {"command": ["sleep", "2"]}}}"#)
        let began = Date()
        let waited = try supervisor.ctl("--timeout", "200ms", "run", "slow", "--wait")
        #expect(waited.status == 75)
        #expect(waited.error.hasPrefix("smartpollctl: timeout: "))
        #expect(Date().timeIntervalSince(began) < 1.5, "it gave up instead of waiting for the run")
        #expect(try supervisor.ctl("ping").status == 0)
        let bad = try supervisor.ctl("--timeout", "soon", "ping")
        #expect(bad.status == 2)
    }

    @Test func extremeTimesSaturateInsteadOfWrapping() throws {
        let supervisor = try SupervisorHarness(Self.basic)
        #expect(try supervisor.ctl("schedule", "idle", "2562047h").status == 0)
        let status = try supervisor.ctl("status")
        #expect(status.status == 0, "smartpollctl must not trap on a far schedule: \(status.error)")
        let row = try json(try supervisor.ctl("--json", "status", "idle").output)
        guard case .array(let rows)? = row["tasks"], case .object(let idle)? = rows.first,
            let next = idle["next"]?.stringValue
        else { throw HarnessError("no next") }
        #expect(next > "2200", "far in the future, not wrapped into the past: \(next)")
        // Far in the past means ready now: it runs at once rather than in 2262.
        let events = try supervisor.watch(["idle"])
        #expect(try supervisor.ctl("schedule", "idle", "--at", "1677-09-22T00:00:00Z").status == 0)
        try events.finishes(of: "idle")
    }

    @Test func runWaitIsAnsweredWhenTheRequestedRunIsUnscheduled() throws {
        let supervisor = try SupervisorHarness(#"{"tasks": {"slow": {"command": ["sleep", "5"]}}}"#)
        let events = try supervisor.watch(["slow"])
        #expect(try supervisor.ctl("run", "slow").status == 0)
        try events.until { event in
            guard case .taskStarted(_, _, _, let due, let late) = event.kind else { return false }
            // A run started by `run` fell due when asked; it started a little after, in microseconds.
            #expect(due != nil)
            #expect(late.map { $0 >= 0 && $0 < 5_000 } == true, "late_ms \(String(describing: late))")
            return true
        }
        let client = try supervisor.connect()
        try client.send(Request(id: .int(1), command: .run(task: "slow", wait: true)))
        // On the same connection, so the run request is handled before the unschedule.
        try client.send(Request(id: .int(2), command: .unschedule(task: "slow")))
        let reply = try Reply.decode(client.readLine(), for: .run(task: "slow", wait: true))
        #expect(try Reply.decode(client.readLine(), for: .unschedule(task: "slow")).isSuccess)
        guard case .failure(let error) = reply.body else { Issue.record("expected not_running, got \(reply)"); return }
        #expect(error.code == .notRunning)
    }

    @Test func resultsPrintEachHeaderBeforeItsOutput() throws {
        let supervisor = try SupervisorHarness(Self.basic)
        #expect(try supervisor.ctl("run", "echo", "--wait").status == 0)
        let printed = try supervisor.ctl("results").output
        #expect(printed.hasPrefix("== echo (run "))
        #expect(printed.hasSuffix(") ==\nhello\n"))
    }
}
