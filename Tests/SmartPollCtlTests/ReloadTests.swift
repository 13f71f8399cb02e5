import Foundation
import SmartPollProtocol
import Testing

/// `reload` and SIGHUP against the real supervisor (SPEC section 5).
@Suite(.endToEnd)
struct ReloadTests {
    private func row(_ supervisor: SupervisorHarness, _ task: String) throws -> TaskStatus {
        guard case .status(let status) = try supervisor.call(.status(tasks: [task])).body, let row = status.tasks.first
        else {
            throw HarnessError("no status for \(task)")
        }
        return row
    }

    private func write(_ supervisor: SupervisorHarness, _ configuration: String) throws {
        try configuration.replacingOccurrences(of: "$DIR", with: supervisor.folder)
            .write(toFile: supervisor.configurationPath, atomically: true, encoding: .utf8)
    }

    private func started(_ event: Event) -> String? {
        if case .taskStarted(let task, _, _, _, _) = event.kind { return task }
        return nil
    }

    private func finished(_ event: Event) -> String? {
        if case .taskFinished(let task, _, _, _, _, _, _, _, _) = event.kind { return task }
        return nil
    }

    @Test func anInvalidConfigurationChangesNothingAndSaysWhy() throws {
        let supervisor = try SupervisorHarness(#"{"tasks": {"a": {"command": ["true"], "start": "1h"}}}"#)
        let before = try row(supervisor, "a")
        try write(
            supervisor,
            #"{"tasks": {"a": {"command": ["true"], "every": "soon", "bogus": 1}, "b": {"command": ["true"]}}}"#)
        let reply = try supervisor.ctl("reload")
        #expect(reply.status == 1)
        #expect(
            reply.error.hasPrefix(
                "smartpollctl: invalid_argument: the configuration was not reloaded: \(supervisor.configurationPath): ")
        )
        #expect(
            reply.error.contains("\(supervisor.configurationPath): tasks.a.every: invalid duration \"soon\""),
            "every problem, with its key path")
        #expect(reply.error.contains("\(supervisor.configurationPath): tasks.a.bogus: unknown key"))
        #expect(reply.error.contains("; \(supervisor.configurationPath): "), "joined on one line")
        #expect(!reply.error.dropLast().contains("\n"), "one line")
        guard case .status(let status) = try supervisor.call(.status(tasks: nil)).body else {
            throw HarnessError("no status")
        }
        #expect(status.tasks.map(\.name) == ["a"], "the running configuration stays")
        #expect(try row(supervisor, "a") == before)

        try FileManager.default.removeItem(atPath: supervisor.configurationPath)
        let missing = try supervisor.ctl("reload")
        #expect(
            missing.status == 1
                && missing.error.contains("\(supervisor.configurationPath): cannot open: No such file or directory"))
        supervisor.signal(SIGHUP)
        #expect(
            try { () throws -> Bool in
                let deadline = Date().addingTimeInterval(10)
                while Date() < deadline {
                    if supervisor.logText.components(separatedBy: "reload failed; the running configuration stays")
                        .count == 4
                    {
                        return true
                    }
                    usleep(10_000)
                }
                return false
            }(), "SIGHUP with a missing file is logged like the others")
        #expect(try supervisor.ctl("ping").status == 0)
    }

    @Test func unchangedTasksKeepEverythingChangedOnesTakeTheNewDefinitionNextRunRemovedOnesEndAddedOnesStart() throws {
        let supervisor = try SupervisorHarness(
            """
            {"tasks": {
              "kept": {"command": ["sh", "-c", "echo kept-$SMARTPOLL_RUN"], "every": "1h"},
              "slow": {"command": ["sh", "-c", "sleep 0.6; echo slow-done"]},
              "changed": {"command": ["echo", "old"], "every": "1h"},
              "gone": {"command": ["sleep", "30"]},
              "flaky": {"command": ["false"], "on_failure": "retry", "backoff": {"initial": "1h", "max": "2h"}}
            }}
            """)
        let early = try supervisor.watch()
        #expect(try supervisor.ctl("run", "kept", "--wait").status == 0)
        #expect(try supervisor.ctl("run", "changed", "--wait").status == 0)
        #expect(try supervisor.ctl("run", "flaky", "--wait").status == 1)
        #expect(try supervisor.ctl("run", "gone").status == 0)
        #expect(try supervisor.ctl("run", "slow").status == 0)
        var running: Set<String> = []
        try early.until { event in
            if let task = started(event) { running.insert(task) }
            return running.isSuperset(of: ["gone", "slow"])
        }
        let before = try ["kept", "changed", "flaky", "slow"].map { try row(supervisor, $0) }
        guard case .results(let resultsBefore) = try supervisor.call(.results).body else {
            throw HarnessError("no results")
        }

        try write(
            supervisor,
            """
            {"tasks": {
              "kept": {"command": ["sh", "-c", "echo kept-$SMARTPOLL_RUN"], "every": "1h"},
              "slow": {"command": ["sh", "-c", "sleep 0.6; echo slow-done"]},
              "changed": {"command": ["echo", "new"], "every": "1h"},
              "flaky": {"command": ["false"], "on_failure": "retry", "backoff": {"initial": "1h", "max": "2h"}},
              "fresh": {"command": ["echo", "fresh"], "start": "0s"}
            }}
            """)
        let events = try supervisor.watch()
        let reply = try json(try supervisor.ctl("--json", "reload").output)
        #expect(reply["added"] == ["fresh"] && reply["changed"] == ["changed"] && reply["removed"] == ["gone"])
        #expect(reply["restart_needed"] == [] && reply["file"] == .string(supervisor.configurationPath))

        var seen: [Event] = []
        var ended: Set<String> = []
        seen = try events.until { event in
            if let task = finished(event) { ended.insert(task) }
            return ended.isSuperset(of: ["gone", "fresh", "slow"])
        }
        #expect(seen.first?.kind == .configReloaded(added: ["fresh"], changed: ["changed"], removed: ["gone"]))
        #expect(Set(seen.compactMap(started)) == ["fresh"], "a reload fires no timer: only the added task's start runs")
        let goneEnd = try #require(seen.first { finished($0) == "gone" })
        guard case .taskFinished(_, _, _, let signal, _, _, _, _, _) = goneEnd.kind else {
            throw HarnessError("not a finish")
        }
        #expect(signal == Int(SIGTERM), "the removed task's process was ended")

        let after = try ["kept", "changed", "flaky"].map { try row(supervisor, $0) }
        #expect(after == Array(before.prefix(3)), "schedules, counters, last runs and backoff stay")
        let slow = try row(supervisor, "slow")
        #expect(
            slow.runs == 1 && slow.last?.succeeded == true && slow.last?.run == before[3].run,
            "the run in flight went on and finished: \(slow)")
        guard case .results(let resultsAfter) = try supervisor.call(.results).body else {
            throw HarnessError("no results")
        }
        #expect(
            resultsAfter.filter { $0.task != "slow" && $0.task != "fresh" }
                == resultsBefore.filter { $0.task != "gone" })
        #expect(try supervisor.ctl("result", "changed").output == "old\n")
        #expect(try supervisor.ctl("run", "changed", "--wait").status == 0)
        #expect(try supervisor.ctl("result", "changed").output == "new\n", "the next run uses the new definition")
        let gone = try supervisor.ctl("status", "gone")
        #expect(gone.status == 1 && gone.error.contains("unknown_task"))
        #expect(try supervisor.ctl("result", "fresh").output == "fresh\n")
    }

    @Test func sighupReloadsAndKeysThatNeedARestartAreNamed() throws {
        let supervisor = try SupervisorHarness(#"{"tasks": {"a": {"command": ["true"]}}}"#)
        try write(
            supervisor,
            #"{"socket_mode": "0660", "tasks": {"a": {"command": ["true"]}, "b": {"command": ["echo", "b"]}}}"#)
        let reply = try supervisor.ctl("reload")
        #expect(reply.status == 0)
        #expect(
            reply.output == """
                reloaded \(supervisor.configurationPath): added b
                note: socket_mode changed; restart the supervisor to apply

                """)
        #expect(
            supervisor.logEventuallyContains(
                "socket_mode changed in \(supervisor.configurationPath); that takes effect when the supervisor restarts"
            ), "\(supervisor.logText)")

        try write(supervisor, #"{"socket_mode": "0660", "tasks": {"b": {"command": ["echo", "b2"]}}}"#)
        let events = try supervisor.watch()
        supervisor.signal(SIGHUP)
        let reloaded = try events.until { if case .configReloaded = $0.kind { return true } else { return false } }
        #expect(reloaded.last?.kind == .configReloaded(added: [], changed: ["b"], removed: ["a"]))
        guard case .status(let status) = try supervisor.call(.status(tasks: nil)).body else {
            throw HarnessError("no status")
        }
        #expect(status.tasks.map(\.name) == ["b"])
    }
}
