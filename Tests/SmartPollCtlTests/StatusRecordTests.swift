import Foundation
import SmartPollProtocol
import Testing

/// `status` keeps each task's row encoded between requests: every change a row shows must reach
/// the next reply. Each step below changes one thing and reads the whole status again (so the
/// rows kept from the step before are compared with the new state); the debug supervisor these
/// tests run also checks, at every `status`, that each kept row is byte for byte a fresh encoding.
@Suite(.endToEnd)
struct StatusRecordTests {
    /// The whole status, and the row of `task` in it.
    static func row(_ task: String, of supervisor: SupervisorHarness) throws -> TaskStatus {
        guard case .status(let status) = try supervisor.call(.status(tasks: nil)).body else {
            throw HarnessError("status was refused")
        }
        guard let row = status.tasks.first(where: { $0.name == task }) else {
            throw HarnessError("no row for \(task) in \(status.tasks.map(\.name))")
        }
        // The same row when nothing changed in between (and a filtered status agrees).
        guard case .status(let again) = try supervisor.call(.status(tasks: [task])).body else {
            throw HarnessError("status \(task) was refused")
        }
        #expect(again.tasks == [row])
        // The whole status again: the supervisor keeps these rows joined (the same records, each
        // still valid), so the next step's change must reach the reply through that joined text.
        guard case .status(let whole) = try supervisor.call(.status(tasks: nil)).body else {
            throw HarnessError("status was refused")
        }
        #expect(whole.tasks == status.tasks)
        return row
    }

    static func finished(_ task: String) -> (Event) -> Bool {
        { event in
            if case .taskFinished(let name, _, _, _, _, _, _, _, _) = event.kind { return name == task }
            return false
        }
    }

    @Test func everyChangeATaskRowShowsReachesTheNextStatus() throws {
        let supervisor = try SupervisorHarness(
            """
            {"tasks": {
              "ok": {"command": ["sh", "-c", "echo out; echo ok-$SMARTPOLL_RUN >&2"]},
              "bad": {"command": ["sh", "-c", "echo oops >&2; exit 3"], "on_failure": "continue"},
              "slow": {"command": ["sleep", "30"]}
            }}
            """)
        var row = try Self.row("ok", of: supervisor)
        #expect(!row.scheduled && !row.ready && row.next == nil && row.runs == 0 && row.last == nil)

        _ = try supervisor.call(.schedule(task: "ok", when: .after(.seconds(3_600)), sooner: false))
        row = try Self.row("ok", of: supervisor)
        let due = try #require(row.next)
        #expect(row.scheduled)

        _ = try supervisor.call(.schedule(task: "ok", when: .after(.seconds(7_200)), sooner: false))
        row = try Self.row("ok", of: supervisor)
        #expect(try #require(row.next) > due, "a later schedule shows its new due time")

        _ = try supervisor.call(.unschedule(task: "ok"))
        row = try Self.row("ok", of: supervisor)
        #expect(!row.scheduled && row.next == nil)

        _ = try supervisor.call(.run(task: "ok", wait: true))
        row = try Self.row("ok", of: supervisor)
        #expect(row.runs == 1 && row.failures == 0 && !row.running)
        let firstRun = try #require(row.last)
        #expect(firstRun.exitCode == 0 && firstRun.succeeded && firstRun.stderrTail.hasPrefix("ok-"))

        _ = try supervisor.call(.run(task: "ok", wait: true))
        row = try Self.row("ok", of: supervisor)
        let secondRun = try #require(row.last)
        #expect(row.runs == 2 && secondRun.run > firstRun.run && secondRun.stderrTail != firstRun.stderrTail)

        _ = try supervisor.call(.run(task: "bad", wait: true))
        var bad = try Self.row("bad", of: supervisor)
        #expect(bad.runs == 1 && bad.failures == 1 && bad.last?.exitCode == 3 && bad.last?.succeeded == false)
        #expect(bad.last?.stderrTail == "oops\n")

        let events = try supervisor.watch(["slow"])
        _ = try supervisor.call(.run(task: "slow", wait: false))
        try events.until { event in
            if case .taskStarted("slow", _, _, _, _) = event.kind { return true }
            return false
        }
        var slow = try Self.row("slow", of: supervisor)
        #expect(slow.running && slow.pid != nil && slow.run != nil && slow.runs == 0)

        _ = try supervisor.call(.pause(task: "slow"))
        slow = try Self.row("slow", of: supervisor)
        #expect(slow.paused && slow.running)

        _ = try supervisor.call(.cancel(task: "slow"))
        try events.until(Self.finished("slow"))
        slow = try Self.row("slow", of: supervisor)
        #expect(!slow.running && slow.pid == nil && slow.run == nil && slow.cancelled == 1 && slow.paused)
        #expect(slow.last?.signal != nil)

        _ = try supervisor.call(.resume(task: "slow"))
        slow = try Self.row("slow", of: supervisor)
        #expect(!slow.paused)

        // A reload that renames a task and changes another: the rows follow the new names.
        try """
        {"tasks": {
          "ok": {"command": ["sh", "-c", "echo changed"], "start": "1h"},
          "bad2": {"command": ["false"]},
          "slow": {"command": ["sleep", "30"]}
        }}
        """.write(toFile: supervisor.configurationPath, atomically: true, encoding: .utf8)
        #expect(try supervisor.call(.reload).isSuccess)
        bad = try Self.row("bad2", of: supervisor)
        #expect(bad.runs == 0 && bad.last == nil)
        row = try Self.row("ok", of: supervisor)
        #expect(row.runs == 2 && row.last == secondRun, "a changed task keeps its counters")
        guard case .status(let status) = try supervisor.call(.status(tasks: nil)).body else {
            throw HarnessError("status was refused")
        }
        #expect(status.tasks.map(\.name) == ["bad2", "ok", "slow"])
    }
}
