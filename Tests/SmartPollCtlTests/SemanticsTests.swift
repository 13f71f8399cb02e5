import Foundation
import SmartPollProtocol
import Testing

/// The task semantics of SPEC section 3 with real child processes: directives, the built-in
/// task hook, failure policies, timeouts and the loop's runs.
@Suite(.endToEnd)
struct SemanticsTests {
    private func started(_ event: Event, _ task: String) -> Bool {
        if case .taskStarted(let name, _, _, _, _) = event.kind { return name == task }
        return false
    }

    private func statusRow(_ supervisor: SupervisorHarness, _ task: String) throws -> JSONObject {
        try supervisor.statusRow(task)
    }

    /// A crowd due at once (a hook that schedules 12 tasks) starts whole: the loop starts at
    /// most 4 runs a turn and carries the rest over to its next turns, leaving none behind
    /// until something else happens (all 12 start before the first of them ends).
    @Test func aCrowdDueAtOnceStartsWhole() throws {
        let names = (0..<12).map { "c\($0)" }
        let tasks = names.map { #""\#($0)": {"command": ["sleep", "3"]}"# }.joined(separator: ", ")
        let schedule = names.map { #""\#($0)": "0s""# }.joined(separator: ", ")
        let supervisor = try SupervisorHarness(
            #"{"tasks": {\#(tasks)}, "hooks": {"crowd": {"schedule": {\#(schedule)}}}}"#)
        let events = try supervisor.watch()
        #expect(try supervisor.ctl("emit", "crowd").status == 0)
        var started = Set<String>()
        var endedFirst: String?
        try events.until { event in
            switch event.kind {
            case .taskStarted(let name, _, _, _, _): started.insert(name)
            case .taskFinished(let name, _, _, _, _, _, _, _, _): endedFirst = name
            default: break
            }
            return started.count == names.count || endedFirst != nil
        }
        #expect(endedFirst == nil, "\(endedFirst ?? "") ended before the crowd had started: \(started.sorted())")
        #expect(started == Set(names))
    }

    @Test func directiveFromInsideATaskSchedulesAnotherTask() throws {
        let supervisor = try SupervisorHarness(
            """
            {"tasks": {
              "a": {"command": ["sh", "-c", "smartpollctl hook schedule b 0s && echo a-done"]},
              "b": {"command": ["sh", "-c", "echo b-ran-after-$SMARTPOLL_RUN"]}
            }}
            """)
        let events = try supervisor.watch(["b"])
        #expect(try supervisor.ctl("run", "a", "--wait").status == 0)
        try events.finishes(of: "b")
        #expect(try supervisor.ctl("result", "a").output == "a-done\n")
        #expect(try supervisor.ctl("result", "b").output.hasPrefix("b-ran-after-"))
    }

    @Test func directivesOfAFailedRunAreDiscardedAndAnInvalidOneFailsTheRun() throws {
        let supervisor = try SupervisorHarness(
            """
            {"tasks": {
              "failing": {"command": ["sh", "-c", "smartpollctl hook schedule target 0s; exit 1"], "on_failure": "continue"},
              "invalid": {"command": ["sh", "-c", "echo 'not json' >&3"], "on_failure": "continue"},
              "unfinished": {"command": ["sh", "-c", "printf '{\\"cmd\\":\\"unschedule\\"}' >&3"], "on_failure": "continue"},
              "target": {"command": ["true"]}
            }}
            """)
        #expect(try supervisor.ctl("run", "failing", "--wait").status == 1)
        let target = try statusRow(supervisor, "target")
        #expect(target["runs"] == .int(0) && target["scheduled"] == .bool(false) && target["running"] == .bool(false))
        #expect(try supervisor.ctl("run", "invalid", "--wait").status == 1, "exit 0, but the run failed")
        let invalid = try statusRow(supervisor, "invalid")
        guard case .object(let last)? = invalid["last"] else { throw HarnessError("no last run") }
        #expect(last["exit_code"] == .int(0))
        #expect(last["succeeded"] == .bool(false))
        #expect(last["error"]?.stringValue?.hasPrefix("invalid directive 1: ") == true)
        #expect(try supervisor.ctl("run", "unfinished", "--wait").status == 1)
        guard case .object(let unfinished)? = try statusRow(supervisor, "unfinished")["last"] else {
            throw HarnessError("no last run")
        }
        #expect(unfinished["error"] == .string("the last directive has no newline at its end"))
    }

    @Test func aTaskRunsOnceAtATimeAndOnceMoreIfAskedWhileRunning() throws {
        // A run of 1 s: the three requests below must all land while it runs, also on a loaded
        // machine (with 0.3 s, a run under a full parallel test load once ended between them,
        // so that the third began another run).
        let supervisor = try SupervisorHarness(#"{"tasks": {"slow": {"command": ["sleep", "1"]}}}"#)
        let events = try supervisor.watch(["slow"])
        #expect(try supervisor.ctl("run", "slow").status == 0)
        try events.until { started($0, "slow") }
        // Pipelined on one connection, so all three land well within the run.
        let client = try supervisor.connect()
        for id in 1...3 { try client.send(Request(id: .int(Int64(id)), command: .run(task: "slow", wait: false))) }
        for _ in 1...3 { #expect(try Reply.decode(client.readLine(), for: .run(task: "slow", wait: false)).isSuccess) }
        try events.finishes(of: "slow", count: 2)
        let row = try statusRow(supervisor, "slow")
        #expect(row["runs"] == .int(2), "three requests while running make one more run")
        #expect(row["running"] == .bool(false) && row["scheduled"] == .bool(false))
    }

    @Test func onChangeFiresOnlyWhenTheResultChanges() throws {
        let supervisor = try SupervisorHarness(
            """
            {"tasks": {
              "producer": {"command": ["cat", "$DIR/value"], "on_change": ["consumer"]},
              "consumer": {"command": ["true"]}
            }}
            """)
        try "1".write(toFile: supervisor.path("value"), atomically: true, encoding: .utf8)
        let events = try supervisor.watch(["consumer"])
        #expect(try supervisor.ctl("run", "producer", "--wait").status == 0)
        try events.finishes(of: "consumer")
        #expect(try supervisor.ctl("run", "producer", "--wait").status == 0)
        var consumer = try statusRow(supervisor, "consumer")
        #expect(consumer["runs"] == .int(1), "the same result again triggers nothing")
        #expect(consumer["scheduled"] == .bool(false) && consumer["running"] == .bool(false))
        try "2".write(toFile: supervisor.path("value"), atomically: true, encoding: .utf8)
        #expect(try supervisor.ctl("run", "producer", "--wait").status == 0)
        try events.finishes(of: "consumer")
        consumer = try statusRow(supervisor, "consumer")
        #expect(consumer["runs"] == .int(2))
    }

    @Test func everyReschedulesAfterEachRun() throws {
        let supervisor = try SupervisorHarness(
            #"{"tasks": {"tick": {"command": ["true"], "start": "0s", "every": "150ms"}}}"#)
        let events = try supervisor.watch(["tick"])
        var starts: [Timestamp] = []
        try events.until { event in
            if started(event, "tick") { starts.append(event.time) }
            return starts.count == 3
        }
        for (earlier, later) in zip(starts, starts.dropFirst()) {
            #expect(later.nanosecondsSinceEpoch - earlier.nanosecondsSinceEpoch >= 149_000_000)
        }
    }

    @Test func fatalFailureStopsTheLoopUntilStart() throws {
        let supervisor = try SupervisorHarness(
            """
            {"tasks": {"breaks": {"command": ["sh", "-c", "exit 4"]}, "fine": {"command": ["true"]}}}
            """)
        let events = try supervisor.watch()
        #expect(try supervisor.ctl("run", "breaks").status == 0)
        try events.until {
            if case .loopFailed = $0.kind { return true }; return false
        }
        let status = try json(try supervisor.ctl("--json", "status").output)
        guard case .object(let loop)? = status["loop"] else { throw HarnessError("no loop") }
        #expect(loop["state"] == .string("failed"))
        #expect(loop["error"]?.stringValue?.contains("breaks") == true)
        let refused = try supervisor.ctl("run", "fine")
        #expect(refused.status == 1)
        #expect(refused.error.hasPrefix("smartpollctl: not_running: the loop is failed"))
        #expect(try supervisor.ctl("start").status == 0)
        #expect(try supervisor.ctl("run", "fine", "--wait").status == 0)
    }

    @Test func retryBacksOffExponentiallyThenGivesUpAfterMaxRetries() throws {
        let supervisor = try SupervisorHarness(
            """
            {"tasks": {"flaky": {"command": ["false"], "on_failure": "retry", "max_retries": 3,
                                 "backoff": {"initial": "100ms", "factor": 2, "max": "1s"}}}}
            """)
        let events = try supervisor.watch()
        #expect(try supervisor.ctl("run", "flaky").status == 0)
        var starts: [Timestamp] = []
        var failure: String?
        try events.until { event in
            if started(event, "flaky") { starts.append(event.time) }
            if case .loopFailed(let error) = event.kind { failure = error; return true }
            return false
        }
        #expect(starts.count == 4, "the first run and three retries")
        let gaps = zip(starts, starts.dropFirst()).map { $1.nanosecondsSinceEpoch - $0.nanosecondsSinceEpoch }
        for (gap, minimum) in zip(gaps, [100_000_000, 200_000_000, 400_000_000] as [Int64]) {
            #expect(gap >= minimum - 2_000_000, "gap \(gap) ns, backoff \(minimum) ns")
        }
        #expect(failure?.hasSuffix("gave up after 3 retries") == true)
    }

    @Test func timeoutKillsTheWholeProcessGroupIncludingAGrandchild() throws {
        let supervisor = try SupervisorHarness(
            """
            {"tasks": {"hang": {"command": ["sh", "-c", "sleep 100 & echo $! > $DIR/grandchild; wait"],
                                "timeout": "300ms", "on_failure": "continue"}}}
            """)
        #expect(try supervisor.ctl("run", "hang", "--wait").status == 124)
        let pid = try #require(
            Int32(supervisor.read("grandchild")?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""))
        #expect(waitUntilGone(pid), "the grandchild outlived its run")
        let row = try statusRow(supervisor, "hang")
        guard case .object(let last)? = row["last"] else { throw HarnessError("no last run") }
        #expect(last["timed_out"] == .bool(true))
        #expect(last["signal"] == .int(15))
    }

    @Test func killGraceEscalatesToSigkillWhenTermIsIgnored() throws {
        let supervisor = try SupervisorHarness(
            """
            {"tasks": {"stubborn": {"command": ["sh", "-c", "trap '' TERM; while :; do sleep 0.05; done"],
                                    "timeout": "100ms", "kill_grace": "400ms", "on_failure": "continue"}}}
            """)
        let began = Date()
        #expect(try supervisor.ctl("run", "stubborn", "--wait").status == 124)
        #expect(Date().timeIntervalSince(began) >= 0.49, "SIGKILL only after the grace")
        guard case .object(let last)? = try statusRow(supervisor, "stubborn")["last"] else {
            throw HarnessError("no last run")
        }
        #expect(last["signal"] == .int(9))
    }

    @Test func cancelEndsTheRunningProcess() throws {
        let supervisor = try SupervisorHarness(
            #"{"tasks": {"long": {"command": ["sleep", "100"], "on_failure": "continue"}}}"#)
        let events = try supervisor.watch(["long"])
        #expect(try supervisor.ctl("run", "long").status == 0)
        try events.until { started($0, "long") }
        #expect(try supervisor.ctl("cancel", "long").status == 0)
        let finished = try events.finishes(of: "long")
        guard case .taskFinished(_, _, let exitCode, let signal, _, let succeeded, _, _, _) = finished[0].kind else {
            return
        }
        #expect(exitCode == nil && signal == 15 && !succeeded)
        let idle = try supervisor.ctl("cancel", "long")
        #expect(idle.status == 1 && idle.error.contains("no run in flight"))
    }

    @Test func startAfterStopWaitsForTheOldRunsTasks() throws {
        let supervisor = try SupervisorHarness(
            """
            {"tasks": {"stubborn": {"command": ["sh", "-c", "trap '' TERM; while :; do sleep 0.05; done"],
                                    "kill_grace": "3s", "on_failure": "continue"},
                       "quick": {"command": ["true"], "start": "0s"}}}
            """)
        let events = try supervisor.watch()
        #expect(try supervisor.ctl("run", "stubborn").status == 0)
        try events.until { started($0, "stubborn") }
        #expect(try supervisor.ctl("stop").status == 0)
        #expect(try supervisor.ctl("start").status == 0)
        let status = try json(try supervisor.ctl("--json", "status").output)
        guard case .object(let loop)? = status["loop"] else { throw HarnessError("no loop") }
        // Three smartpollctl calls fit in the grace of 3 s even on a busy machine (500 ms did not,
        // once, with builds running beside the suite).
        #expect(loop["state"] == .string("starting"), "the old run's task is still ending")
        let seen = try events.until {
            if case .loopStarted = $0.kind { return true }; return false
        }
        #expect(
            seen.contains {
                if case .taskFinished(let task, _, _, _, _, _, _, _, _) = $0.kind { return task == "stubborn" };
                return false
            },
            "the new run began only after the old task ended")
        try events.finishes(of: "quick")  // the start hook ran again
    }

    @Test func maxRunningKeepsRunsApartInDueOrder() throws {
        let supervisor = try SupervisorHarness(
            """
            {"max_running": 1, "tasks": {
              "first": {"command": ["sleep", "0.2"]},
              "second": {"command": ["sleep", "0.2"]}
            }}
            """)
        let events = try supervisor.watch()
        #expect(try supervisor.ctl("run", "first").status == 0)
        #expect(try supervisor.ctl("run", "second").status == 0)
        var order: [String] = []
        try events.until { event in
            switch event.kind {
            case .taskStarted(let task, _, _, _, _): order.append("start \(task)")
            case .taskFinished(let task, _, _, _, _, _, _, _, _): order.append("end \(task)")
            default: break
            }
            return order.count == 4
        }
        #expect(order == ["start first", "end first", "start second", "end second"])
    }

    @Test func onSuccessSchedulesItsTasksAfterEverySuccessfulRun() throws {
        let supervisor = try SupervisorHarness(
            """
            {"tasks": {"a": {"command": ["echo", "same"], "on_success": ["b"]}, "b": {"command": ["true"]}}}
            """)
        let events = try supervisor.watch(["b"])
        for count in 1...2 {
            #expect(try supervisor.ctl("run", "a", "--wait").status == 0)
            try events.finishes(of: "b")
            #expect(
                try statusRow(supervisor, "b")["runs"] == .int(Int64(count)), "unlike on_change, every success counts")
        }
    }

    @Test func restartWaitRepliesOnceTheNewRunHasStarted() throws {
        let supervisor = try SupervisorHarness(
            """
            {"tasks": {"long": {"command": ["sleep", "100"], "start": "0s", "kill_grace": "1s"}}}
            """)
        // The start hook ran before the supervisor served its first request.
        #expect(try statusRow(supervisor, "long")["running"] == .bool(true))
        let events = try supervisor.watch(["long"])
        #expect(try supervisor.ctl("restart", "--wait").status == 0)
        let status = try json(try supervisor.ctl("--json", "status").output)
        guard case .object(let loop)? = status["loop"] else { throw HarnessError("no loop") }
        #expect(loop["state"] == .string("running"))
        #expect(loop["runs"] == .int(2))
        try events.until { started($0, "long") }  // the start hook ran in the new run
        #expect(try supervisor.ctl("stop", "--wait").status == 0)
        let row = try statusRow(supervisor, "long")
        #expect(row["running"] == .bool(false), "stop --wait replies once every task has ended")
    }

    @Test func aTasksEnvReplacesInheritedVariablesAndSmartpollOnesComeLast() throws {
        let supervisor = try SupervisorHarness(
            """
            {"tasks": {"show": {"command": ["sh", "-c", "printf '%s|%s|%s|%s' \\"$HOME\\" \\"$SMARTPOLL_SOCKET\\" \\"$SMARTPOLL_TASK\\" \\"$(env | grep -c '^HOME=')\\""],
                               "env": {"HOME": "/replaced", "SMARTPOLL_TASK": "not-this"}}}}
            """)
        #expect(try supervisor.ctl("run", "show", "--wait").status == 0)
        #expect(try supervisor.ctl("result", "show").output == "/replaced|\(supervisor.socket)|show|1")
    }

    @Test func aDirectiveNamingAnUnknownTaskFailsTheRun() throws {
        let supervisor = try SupervisorHarness(
            """
            {"tasks": {"typo": {"command": ["sh", "-c", "smartpollctl hook schedule pubilsh 0s"], "on_failure": "continue"}}}
            """)
        #expect(try supervisor.ctl("run", "typo", "--wait").status == 1)
        guard case .object(let last)? = try statusRow(supervisor, "typo")["last"] else {
            throw HarnessError("no last run")
        }
        #expect(last["error"] == .string("invalid directive 1: no task is named \"pubilsh\""))
    }

    @Test func cancellingARunIsNotAFatalFailure() throws {
        let supervisor = try SupervisorHarness(#"{"tasks": {"long": {"command": ["sleep", "100"]}}}"#)
        let events = try supervisor.watch(["long"])
        #expect(try supervisor.ctl("run", "long").status == 0)
        try events.until { started($0, "long") }
        #expect(try supervisor.ctl("cancel", "long").status == 0)
        try events.finishes(of: "long")
        let status = try json(try supervisor.ctl("--json", "status").output)
        guard case .object(let loop)? = status["loop"] else { throw HarnessError("no loop") }
        #expect(loop["state"] == .string("running"), "on_failure fatal is for the task failing, not for a cancel")
        // A cancel is the operator's doing: it counts as cancelled, not as a failure.
        let row = try statusRow(supervisor, "long")
        #expect(row["failures"] == .int(0))
        #expect(row["cancelled"] == .int(1))
        #expect(row["runs"] == .int(1))
    }

    @Test func runsTheLoopsEndInterruptsCountAsCancelled() throws {
        let supervisor = try SupervisorHarness(#"{"tasks": {"long": {"command": ["sleep", "100"]}}}"#)
        let events = try supervisor.watch(["long"])
        #expect(try supervisor.ctl("run", "long").status == 0)
        try events.until { started($0, "long") }
        #expect(try supervisor.ctl("stop", "--wait").status == 0)
        let row = try statusRow(supervisor, "long")
        #expect(row["failures"] == .int(0))
        #expect(row["cancelled"] == .int(1))
        let table = try supervisor.ctl("status")
        let long = try #require(table.output.split(separator: "\n").first { $0.hasPrefix("long ") })
        #expect(long.split(separator: " ", omittingEmptySubsequences: true).suffix(3) == ["1", "0", "1"])
    }
}

/// Waits (bounded) until `pid` no longer exists; processes have no exit event for non-parents.
func waitUntilGone(_ pid: Int32, seconds: Double = 5) -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if kill(pid, 0) != 0 && errno == ESRCH { return true }
        // A zombie reparented to a slow init still answers kill(0): look at its state too.
        if let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            stat.split(separator: ")").last?.split(separator: " ").first == "Z"
        {
            return true
        }
        usleep(10_000)
    }
    return false
}
