import Foundation
import SmartPollProtocol
import Testing

/// Event hooks that run a command: DATA on stdin, directives on descriptor 3, inside the loop.
@Suite(.endToEnd)
struct CommandHookTests {
    static let configuration = """
        {"tasks": {
           "target": {"command": ["sh", "-c", "cat $DIR/seen"]},
           "slow": {"command": ["sleep", "0.2"]}
         },
         "hooks": {
           "ingest": {"command": ["sh", "-c", "cat > $DIR/seen; echo '{\\"cmd\\":\\"schedule\\",\\"task\\":\\"target\\",\\"after\\":\\"0s\\"}' >&3"]},
           "broken": {"command": ["sh", "-c", "exit 2"]},
           "selfless": {"command": ["sh", "-c", "echo '{\\"cmd\\":\\"unschedule\\"}' >&3"]}
         }}
        """

    @Test func hookGetsDataOnStdinAndItsDirectivesScheduleATask() throws {
        let supervisor = try SupervisorHarness(Self.configuration)
        let events = try supervisor.watch()
        #expect(try supervisor.ctl("emit", "ingest", "from the argument").status == 0)
        let seen = try events.until {
            if case .taskFinished(let task, _, _, _, _, _, _, _, _) = $0.kind { return task == "target" }; return false
        }
        #expect(
            seen.contains {
                if case .hookRan(let hook) = $0.kind { return hook == "ingest" }; return false
            })
        #expect(try supervisor.ctl("result", "target").output == "from the argument")
        let big = String(repeating: "0123456789abcdef", count: 16_384) + "\n"  // beyond a pipe's buffer
        #expect(try supervisor.ctl("emit", "ingest", "-", input: big).status == 0)
        try events.finishes(of: "target")
        #expect(try supervisor.ctl("result", "target").output == big)
    }

    @Test func aFailingHookEndsTheLoopsRunAndSaysSo() throws {
        let supervisor = try SupervisorHarness(Self.configuration)
        let failed = try supervisor.ctl("emit", "broken")
        #expect(failed.status == 1)
        #expect(failed.error.hasPrefix("smartpollctl: internal: hook broken failed: exited with status 2"))
        let status = try json(try supervisor.ctl("--json", "status").output)
        guard case .object(let loop)? = status["loop"] else { throw HarnessError("no loop") }
        #expect(loop["state"] == .string("failed"))
        let selfless = try supervisor.ctl("start")
        #expect(selfless.status == 0)
        let missingTask = try supervisor.ctl("emit", "selfless")
        #expect(missingTask.status == 1, "a hook's directive must name its task")
        #expect(missingTask.error.contains("invalid directive 1"))
    }

    @Test func taskHooksWaitWhileAnEventHookRuns() throws {
        let supervisor = try SupervisorHarness(
            """
            {"tasks": {"quick": {"command": ["true"]}},
             "hooks": {"pause": {"command": ["sh", "-c", "smartpollctl run quick; sleep 0.3"]}}}
            """)
        let events = try supervisor.watch()
        #expect(try supervisor.ctl("emit", "pause").status == 0)
        let seen = try events.until {
            if case .taskFinished(let task, _, _, _, _, _, _, _, _) = $0.kind { return task == "quick" }; return false
        }
        let hookIndex = try #require(
            seen.firstIndex {
                if case .hookRan = $0.kind { return true }; return false
            })
        let finishIndex = seen.count - 1
        #expect(hookIndex < finishIndex, "the task's run ended during the hook, but was handled after it")
    }

    @Test func shutdownWhileAHookRunsEndsItAndExits() throws {
        let supervisor = try SupervisorHarness(
            """
            {"tasks": {"t": {"command": ["true"]}}, "hooks": {"slow": {"command": ["sleep", "30"]}}}
            """)
        let client = try supervisor.connect()
        try client.send(Request(id: .int(1), command: .emit(hook: "slow", data: nil)))
        let deadline = Date().addingTimeInterval(10)
        while !supervisor.logText.contains("hook started"), Date() < deadline { usleep(5_000) }
        #expect(try supervisor.ctl("shutdown").status == 0)
        #expect(try supervisor.waitForExit() == 0, "the hook was ended and the supervisor exited")
        #expect(!FileManager.default.fileExists(atPath: supervisor.socket))
    }

    @Test func restartWhileAHookRunsWaitsForItAndTheNewRunStaysHealthy() throws {
        let supervisor = try SupervisorHarness(
            """
            {"tasks": {"t": {"command": ["true"]}}, "hooks": {"slow": {"command": ["sleep", "30"]}}}
            """)
        let client = try supervisor.connect()
        try client.send(Request(id: .int(1), command: .emit(hook: "slow", data: nil)))
        // The hook's process is up once its run id shows in the log; wait for it.
        let deadline = Date().addingTimeInterval(10)
        while !supervisor.logText.contains("hook started"), Date() < deadline { usleep(5_000) }
        #expect(try supervisor.ctl("restart", "--wait").status == 0)
        let reply = try Reply.decode(client.readLine(), for: .emit(hook: "slow", data: nil))
        guard case .failure(let error) = reply.body else { Issue.record("the hook should not succeed"); return }
        #expect(error.code == .notRunning)
        let status = try json(try supervisor.ctl("--json", "status").output)
        guard case .object(let loop)? = status["loop"] else { throw HarnessError("no loop") }
        #expect(loop["state"] == .string("running"), "the ended hook did not fail the new run")
    }
}
