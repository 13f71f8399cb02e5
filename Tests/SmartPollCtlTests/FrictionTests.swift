import Foundation
import SmartPollProtocol
import Testing

/// What operators, scripts and workers tripped over (issue 14), each as they met it.
@Suite(.endToEnd)
struct FrictionTests {
    @Test func tasksGetAnAbsoluteSocketPathWhenTheSupervisorWasGivenARelativeOne() throws {
        // Relative to the supervisor's folder, where the harness starts it: the same file as
        // the harness's own (absolute) socket path.
        let supervisor = try SupervisorHarness(
            """
            {"tasks": {"probe": {"command": ["sh", "-c",
                "echo \\"$SMARTPOLL_SOCKET\\" > $DIR/seen; smartpollctl ping > $DIR/ping"], "cwd": "/"}}}
            """, arguments: ["--socket", "supervisor.sock"])
        let events = try supervisor.watch(["probe"])
        try supervisor.ctl("run", "probe")
        try events.finishes(of: "probe")
        #expect(supervisor.read("seen") == supervisor.socket + "\n")
        #expect(supervisor.read("ping")?.hasPrefix("smartpoll-supervisor ") == true, "the task reached the supervisor")
    }

    @Test func aWorkingDirectoryThatCannotBeEnteredIsNamedInTheError() throws {
        let locked = FileManager.default.temporaryDirectory.appendingPathComponent(
            "smartpoll-locked-\(UUID().uuidString.prefix(8))"
        ).path
        try FileManager.default.createDirectory(atPath: locked, withIntermediateDirectories: false)
        defer { try? FileManager.default.removeItem(atPath: locked) }
        // Root enters any folder: as root the task runs as nobody; otherwise the folder has no
        // permissions at all.
        let asRoot = getuid() == 0
        chmod(locked, asRoot ? 0o700 : 0o000)
        defer { chmod(locked, 0o700) }
        let user = asRoot ? #", "user": "nobody""# : ""
        let supervisor = try SupervisorHarness(
            """
            {"tasks": {
              "missing": {"command": ["true"], "cwd": "/nonexistent/folder", "on_failure": "continue"},
              "locked": {"command": ["true"], "cwd": "\(locked)", "on_failure": "continue"\(user)}}}
            """)
        let events = try supervisor.watch(["missing", "locked"])
        try supervisor.ctl("run", "missing")
        try supervisor.ctl("run", "locked")
        try events.finishes(of: "missing")
        try events.finishes(of: "locked")
        let status = try supervisor.ctl("--json", "status")
        #expect(
            status.output.contains(
                #"cannot run \"true\": cannot enter its working directory /nonexistent/folder: No such file or directory"#
            ),
            "\(status.output)")
        #expect(
            status.output.contains(#"cannot enter its working directory \#(locked): Permission denied"#),
            "\(status.output)")
    }

    @Test func scheduleNowSaysWhatHappened() throws {
        let supervisor = try SupervisorHarness(
            """
            {"tasks": {"t": {"command": ["sh", "-c", "sleep 2"]}}}
            """)
        let events = try supervisor.watch(["t"])
        let first = try supervisor.ctl("schedule", "t", "0")
        #expect(first.output == "t: starting now\n", "\(first.output)")
        let second = try supervisor.ctl("schedule", "t", "0s")
        #expect(second.output == "t: ready, after its current run\n", "\(second.output)")
        let machine = try json(try supervisor.ctl("--json", "schedule", "t", "0").output)
        #expect(machine["ready"] == .bool(true))
        #expect(machine["running"] == .bool(true))
        try supervisor.ctl("cancel", "t")
        try events.finishes(of: "t")
        let later = try supervisor.ctl("schedule", "t", "1h")
        #expect(later.output.hasPrefix("t: next in "))
    }

    @Test func aStartingLoopGivesAdviceThatFitsIt() throws {
        let supervisor = try SupervisorHarness(
            """
            {"tasks": {"stubborn": {"command": ["sh", "-c", "trap '' TERM; echo up; sleep 30 & wait; wait"],
                                    "kill_grace": "3s"}}}
            """)
        let events = try supervisor.watch(["stubborn"])
        try supervisor.ctl("run", "stubborn")
        _ = try events.until {
            if case .taskStarted = $0.kind { return true }
            return false
        }
        // The restart waits for the old run to end (TERM is ignored: up to kill_grace).
        #expect(try supervisor.ctl("restart").status == 0)
        let refused = try supervisor.ctl("schedule", "stubborn", "1s")
        #expect(refused.status == 1)
        #expect(refused.error.contains("the loop is starting"), "\(refused.error)")
        #expect(!refused.error.contains("start it with smartpollctl start"), "\(refused.error)")
        try supervisor.ctl("stop")
        let stopped = try supervisor.ctl("schedule", "stubborn", "1s")
        #expect(
            stopped.error.contains("the loop is starting") || stopped.error.contains("the loop is stopped"),
            "\(stopped.error)")
    }

    @Test func unknownTasksAndHooksGetASuggestion() throws {
        let supervisor = try SupervisorHarness(
            """
            {"tasks": {"weather1": {"command": ["true"]}}, "hooks": {"refresh": {"schedule": {"weather1": "0s"}}}}
            """)
        let task = try supervisor.ctl("run", "wether1")
        #expect(task.status == 1)
        #expect(task.error.contains(#"no task is named "wether1" (did you mean "weather1"?)"#), "\(task.error)")
        let hook = try supervisor.ctl("emit", "refrsh")
        #expect(hook.error.contains(#"(did you mean "refresh"?)"#), "\(hook.error)")
        let far = try supervisor.ctl("run", "zzz")
        #expect(!far.error.contains("did you mean"))
    }

    @Test func reloadNamesTheConfigurationByItsAbsolutePath() throws {
        // Relative to the supervisor's folder, where the harness starts it.
        let supervisor = try SupervisorHarness(
            """
            {"tasks": {"t": {"command": ["true"]}}}
            """, arguments: ["--config", "./smartpoll.json"])
        let reply = try json(try supervisor.ctl("--json", "reload").output)
        #expect(reply["file"] == .string(supervisor.configurationPath))
    }

    @Test func aTaskWithEveryAndNoStartRunsWhenTheLoopStartsAndAfterStopAndStart() throws {
        let supervisor = try SupervisorHarness(
            """
            {"tasks": {"poll": {"command": ["true"], "every": "1h"},
                       "manual": {"command": ["true"], "every": "1h", "start": null}}}
            """, waitsUntilListening: true)
        let events = try supervisor.watch(["poll", "manual"])
        // The first run may have begun before the watch: wait for it through status.
        let deadline = Date().addingTimeInterval(10)
        var runs: Int64 = 0
        while runs < 1, Date() < deadline {
            let status = try json(try supervisor.ctl("--json", "status", "poll").output)
            if case .array(let tasks)? = status["tasks"], case .object(let task)? = tasks.first,
                case .int(let count)? = task["runs"]
            {
                runs = count
            }
            if runs < 1 { try events.finishes(of: "poll") }
        }
        #expect(runs >= 1, "poll ran when the loop started")
        #expect(try supervisor.ctl("stop", "--wait").status == 0)
        #expect(try supervisor.ctl("start").status == 0)
        let finished = try events.finishes(of: "poll")
        #expect(!finished.isEmpty, "and again when the loop started again")
        let manual = try json(try supervisor.ctl("--json", "status", "manual").output)
        guard case .array(let tasks)? = manual["tasks"], case .object(let task)? = tasks.first else {
            Issue.record("no manual in \(manual)")
            return
        }
        #expect(task["runs"] == .int(0), "start: null opts out")
        #expect(task["scheduled"] == .bool(false))
    }

    @Test func aFailedLoopRestartsByItsPolicyAndStatusSaysWhen() throws {
        let supervisor = try SupervisorHarness(
            """
            {"restart": {"after": "1s", "max": "4s"},
             "tasks": {"flaky": {"command": ["sh", "-c", "exit 3"]}}}
            """)
        let events = try supervisor.watch()
        try supervisor.ctl("run", "flaky")
        _ = try events.until {
            if case .loopFailed = $0.kind { return true }
            return false
        }
        let table = try supervisor.ctl("status")
        #expect(table.output.hasPrefix("loop: failed, restarting in "), "\(table.output)")
        let status = try json(try supervisor.ctl("--json", "status").output)
        guard case .object(let loop)? = status["loop"], case .string(let restartAt)? = loop["restart_at"] else {
            Issue.record("no restart_at in \(status)")
            return
        }
        #expect(restartAt.hasSuffix("Z"))
        let started = Date()
        _ = try events.until {
            if case .loopStarted = $0.kind { return true }
            return false
        }
        let waited = Date().timeIntervalSince(started)
        #expect(waited < 1.5 * Double(Sanitizer.slowdown) + 1, "restarted after about 1 s, not \(waited) s")
        let running = try json(try supervisor.ctl("--json", "status").output)
        guard case .object(let again)? = running["loop"] else { return }
        #expect(again["state"] == .string("running"))
        #expect(again["restart_at"] == .null)
        // A second failure waits twice as long; stop cancels the restart.
        try supervisor.ctl("run", "flaky")
        _ = try events.until {
            if case .loopFailed = $0.kind { return true }
            return false
        }
        #expect(try supervisor.ctl("stop").status == 0)
        let stopped = try json(try supervisor.ctl("--json", "status").output)
        guard case .object(let loop2)? = stopped["loop"] else { return }
        #expect(loop2["state"] == .string("stopped"))
        #expect(loop2["restart_at"] == .null)
    }

    @Test func runWaitSaysHowARunFailed() throws {
        let supervisor = try SupervisorHarness(
            """
            {"tasks": {
              "exits": {"command": ["sh", "-c", "echo working >&2; echo 'HTTP 429 from api1' >&2; exit 3"],
                        "on_failure": "continue"},
              "killed": {"command": ["sh", "-c", "kill -9 $$"], "on_failure": "continue"},
              "slow": {"command": ["sleep", "30"], "timeout": "200ms", "kill_grace": "100ms", "on_failure": "continue"},
              "fine": {"command": ["sh", "-c", "echo fine >&2"]}}}
            """)
        let exits = try supervisor.ctl("run", "exits", "--wait")
        #expect(exits.status == 3)
        #expect(exits.error == "smartpollctl: exits run 1 failed: exit 3: HTTP 429 from api1\n", "\(exits.error)")
        let killed = try supervisor.ctl("run", "killed", "--wait")
        #expect(killed.status == 137)
        #expect(killed.error.hasPrefix("smartpollctl: killed run 2 failed: signal 9 (KILL)"), "\(killed.error)")
        let slow = try supervisor.ctl("run", "slow", "--wait")
        #expect(slow.status == 124)
        #expect(slow.error.hasPrefix("smartpollctl: slow run 3 failed: timed out"), "\(slow.error)")
        let fine = try supervisor.ctl("run", "fine", "--wait")
        #expect(fine.status == 0)
        #expect(fine.error.isEmpty, "a run that succeeded says nothing")
    }

    @Test func runWaitOfACancelledRunSaysCancelled() throws {
        let supervisor = try SupervisorHarness(
            """
            {"tasks": {"long": {"command": ["sleep", "30"], "on_failure": "continue"}}}
            """)
        let events = try supervisor.watch(["long"])
        let waiting = try supervisor.connect()
        try waiting.send(Request(id: .int(1), command: .run(task: "long", wait: true)))
        _ = try events.until {
            if case .taskStarted = $0.kind { return true }
            return false
        }
        try supervisor.ctl("cancel", "long")
        let reply = try Reply.decode(waiting.readLine(), for: .run(task: "long", wait: true))
        guard case .runFinished(let outcome) = reply.body else {
            Issue.record("not a run outcome: \(reply)")
            return
        }
        #expect(outcome.cancelled)
        #expect(!outcome.succeeded)
    }

    @Test func runWaitOutputPrintsThatRunsOwnStdoutFailedOrNot() throws {
        let supervisor = try SupervisorHarness(
            """
            {"tasks": {
              "counter": {"command": ["sh", "-c", "echo run $SMARTPOLL_RUN; [ $SMARTPOLL_RUN -ne 2 ]"],
                          "on_failure": "continue"},
              "binary": {"command": ["sh", "-c", "printf '\\\\377\\\\376abc'"]},
              "big": {"command": ["sh", "-c", "head -c 300000 /dev/zero | tr '\\\\0' x"]}}}
            """)
        let first = try supervisor.ctl("run", "counter", "--wait", "--output")
        #expect(first.status == 0)
        #expect(first.output == "run 1\n")
        // The second run fails: its own output still comes, while `result` keeps run 1's.
        let second = try supervisor.ctl("run", "counter", "--wait", "--output")
        #expect(second.status == 1)
        #expect(second.output == "run 2\n")
        #expect(try supervisor.ctl("result", "counter").output == "run 1\n")
        let binary = try supervisor.ctl("--json", "run", "binary", "--wait", "--output")
        #expect(try json(binary.output)["output_base64"] == .string("//5hYmM="), "\(binary.output)")
        // A big output leaves in slices (over 64 KiB): the same bytes.
        let big = try supervisor.ctl("run", "big", "--wait", "--output")
        #expect(big.output == String(repeating: "x", count: 300_000))
        let plain = try json(try supervisor.ctl("--json", "run", "counter", "--wait").output)
        #expect(plain["output"] == nil, "no output unless asked")
        let usage = try supervisor.ctl("run", "counter", "--output")
        #expect(usage.status == 2)
        #expect(usage.error.contains("--output needs --wait"))
    }

    @Test func emitPassesBytesThatAreNotUTF8Exactly() throws {
        let supervisor = try SupervisorHarness(
            """
            {"tasks": {"idle": {"command": ["true"]}},
             "hooks": {"h": {"command": ["sh", "-c", "cat > $DIR/got"]}}}
            """)
        let stdin = try runCommand(
            "/bin/sh", ["-c", #"printf '\377\376\000abc\n' | smartpollctl --socket "$0" emit h -"#, supervisor.socket],
            environment: ["PATH": Binaries.folder + ":/usr/bin:/bin"])
        #expect(stdin.status == 0, "\(stdin.error)")
        let got = try Data(contentsOf: URL(fileURLWithPath: supervisor.path("got")))
        #expect(Array(got) == [0xFF, 0xFE, 0x00, 0x61, 0x62, 0x63, 0x0A])
        // From the argument too (a shell can pass any bytes but NUL).
        let argument = try runCommand(
            "/bin/sh", ["-c", #"smartpollctl --socket "$0" emit h "$(printf '\377x\351')""#, supervisor.socket],
            environment: ["PATH": Binaries.folder + ":/usr/bin:/bin"])
        #expect(argument.status == 0, "\(argument.error)")
        let again = try Data(contentsOf: URL(fileURLWithPath: supervisor.path("got")))
        #expect(Array(again) == [0xFF, 0x78, 0xE9])
    }

    @Test func statusShowsTheCommandHookThatRunsAndThoseWaiting() throws {
        let supervisor = try SupervisorHarness(
            """
            {"tasks": {"idle": {"command": ["true"]}},
             "hooks": {"slow": {"command": ["sh", "-c", "echo started > $DIR/slow; sleep 30"]},
                       "next": {"command": ["true"]}}}
            """)
        let first = try supervisor.connect()
        try first.send(Request(id: .int(1), command: .emit(hook: "slow", data: nil)))
        let second = try supervisor.connect()
        try second.send(Request(id: .int(2), command: .emit(hook: "next", data: nil)))
        let deadline = Date().addingTimeInterval(10)
        var hooks: [JSONValue] = []
        while Date() < deadline {
            let status = try json(try supervisor.ctl("--json", "status").output)
            if case .array(let list)? = status["hooks"], list.count == 2 {
                hooks = list
                break
            }
            usleep(20_000)
        }
        guard hooks.count == 2, case .object(let running) = hooks[0], case .object(let waiting) = hooks[1] else {
            Issue.record("status never showed both hooks: \(hooks)")
            return
        }
        #expect(running["name"] == .string("slow") && running["running"] == .bool(true))
        #expect(running["pid"] != .null && running["run"] != .null)
        #expect(waiting["name"] == .string("next") && waiting["running"] == .bool(false))
        let table = try supervisor.ctl("status")
        #expect(table.output.contains("hook slow: running ("), "\(table.output)")
        #expect(table.output.contains("hook next: waiting"), "\(table.output)")
    }

    @Test func theCancelledCounterSurvivesARestart() throws {
        let first = try SupervisorHarness(
            """
            {"state_dir": "$DIR/state", "tasks": {"long": {"command": ["sleep", "100"]}}}
            """)
        first.keepsFolder = true
        let events = try first.watch(["long"])
        #expect(try first.ctl("run", "long").status == 0)
        _ = try events.until {
            if case .taskStarted = $0.kind { return true }
            return false
        }
        #expect(try first.ctl("cancel", "long").status == 0)
        try events.finishes(of: "long")
        #expect(try first.ctl("shutdown").status == 0)
        #expect(try first.waitForExit() == 0)
        let second = try SupervisorHarness(nil, folder: first.folder)
        let row = try second.statusRow("long")
        #expect(row["cancelled"] == .int(1), "\(row)")
        #expect(row["failures"] == .int(0))
        #expect(row["runs"] == .int(1))
    }
}
