import Glibc
import SmartPollProtocol
import Testing

@testable import SmartPollSupervisor

private func parse(_ text: String, file: String = "test.json") throws(SupervisorError) -> SupervisorConfiguration {
    try SupervisorConfiguration.parse(Array(text.utf8), file: file)
}

/// The problems reported for `text`, one per line; fails the test if it parsed.
private func problems(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) -> [String] {
    do {
        _ = try parse(text)
        Issue.record("expected the configuration to be rejected", sourceLocation: sourceLocation)
        return []
    } catch {
        #expect(error.code == .invalidConfiguration, sourceLocation: sourceLocation)
        return error.message.split(separator: "\n").map(String.init)
    }
}

@Suite struct SupervisorConfigurationTests {
    @Test func specExampleParsesWithEveryValue() throws {
        let configuration = try parse(
            """
            // The example of SPEC section 4, comments and all.
            {
              "socket": "/run/smartpoll/supervisor.sock",
              "socket_mode": "0600",
              "state_dir": "/var/lib/smartpoll",
              "max_running": 0,
              "tasks": {
                "weather1": {
                  "command": ["./fetch", "--api", "1"],
                  "cwd": ".", "env": {"API_KEY": "..."},
                  "start": "0s", "every": "10s", "jitter": "1s",
                  "timeout": "30s", "kill_grace": "5s",
                  "on_failure": "retry", "backoff": {"initial": "1s", "max": "5m", "factor": 2},
                  "on_change": ["publish"], "capture": 1048576
                },
                "publish": {"command": ["./publish"]} /* depends on weather1 */
              },
              "hooks": {
                "refresh": {"schedule": {"weather1": "0s", "publish": 1.5}}
              }
            }
            """)
        #expect(configuration.socket == "/run/smartpoll/supervisor.sock")
        #expect(configuration.socketMode == 0o600)
        #expect(configuration.stateDirectory == "/var/lib/smartpoll")
        #expect(configuration.taskNames == ["publish", "weather1"])
        let weather = try #require(configuration.tasks["weather1"])
        #expect(weather.command == ["./fetch", "--api", "1"])
        #expect(weather.workingDirectory == ".")
        #expect(weather.environment == [EnvironmentVariable(name: "API_KEY", value: "...")])
        #expect(weather.start == .zero)
        #expect(weather.every == .seconds(10))
        #expect(weather.jitter == .seconds(1))
        #expect(weather.timeout == .seconds(30))
        #expect(weather.killGrace == .seconds(5))
        #expect(weather.onFailure == .retry)
        #expect(weather.backoff == .init(initial: .seconds(1), maximum: .seconds(300), factor: 2))
        #expect(weather.onChange == ["publish"])
        #expect(weather.capture == 1_048_576)
        #expect(
            configuration.hooks["refresh"]
                == .schedule([
                    .init(task: "weather1", delay: .zero), .init(task: "publish", delay: .milliseconds(1500)),
                ]))
    }

    @Test func defaultsAreTheSpecOnes() throws {
        let configuration = try parse(#"{"tasks": {"t": {"command": ["true"]}}}"#)
        #expect(configuration.socket == nil)
        #expect(configuration.socketMode == 0o600)
        #expect(configuration.maximumRunning == 0)
        #expect(configuration.maximumLineBytes == 1 << 20)
        #expect(configuration.maximumConnections == 256)
        #expect(configuration.maximumDirectives == 1_000)
        let task = try #require(configuration.tasks["t"])
        #expect(task.start == nil && task.every == nil && task.timeout == nil)
        #expect(task.killGrace == .seconds(5))
        #expect(task.killSignal == SIGTERM)
        #expect(task.onFailure == .fatal)
        #expect(task.capture == 1 << 20)
        #expect(task.jitter == .zero)
    }

    @Test func everyProblemIsListedInOnePass() {
        let found = problems(
            """
            {"tasks": {
              "fetch": {"comand": ["./fetch"], "every": "10", "on_change": ["pubilsh"]},
              "publish": {"command": ["./publish"]},
              "a b": {"every": "0s"}},
             "hooks": {"re fresh": {"schedule": {"fech": "0s"}}}}
            """)
        #expect(
            found.contains {
                $0.hasPrefix(#"test.json: tasks.fetch.comand: unknown key (did you mean "command"?); expected one of "#)
            }, "\(found)")
        #expect(found.contains("test.json: tasks.fetch.command: missing; a task needs a command (an array of strings)"))
        #expect(found.contains { $0.hasPrefix("test.json: tasks.fetch.every: missing unit") })
        #expect(
            found.contains(
                #"test.json: tasks.fetch.on_change[0]: no task is named "pubilsh" (did you mean "publish"?)"#))
        #expect(found.contains { $0.hasPrefix(#"test.json: tasks."a b": invalid name"#) })
        #expect(found.contains { $0.hasPrefix(#"test.json: tasks."a b".command: missing"#) })
        #expect(found.contains(#"test.json: tasks."a b".every: must be greater than zero, got 0s"#))
        #expect(found.contains { $0.hasPrefix(#"test.json: hooks."re fresh": invalid name"#) })
        // A task whose definition has problems is still a task: naming it is no second problem.
        #expect(
            found.contains(
                #"test.json: hooks."re fresh".schedule.fech: no task is named "fech" (did you mean "fetch"?)"#))
        #expect(found.count == 9, "\(found)")
    }

    @Test func everyWithoutStartStartsWithTheLoopAndNullStartOptsOut() throws {
        let configuration = try parse(
            """
            {"tasks": {
              "poll": {"command": ["true"], "every": "10s"},
              "later": {"command": ["true"], "every": "10s", "start": "5s"},
              "manual": {"command": ["true"], "every": "10s", "start": null},
              "plain": {"command": ["true"]}}}
            """)
        #expect(configuration.tasks["poll"]?.start == .zero)
        #expect(configuration.tasks["later"]?.start == .seconds(5))
        #expect(configuration.tasks["manual"]?.start == nil)
        #expect(configuration.tasks["plain"]?.start == nil)
        #expect(
            configuration.firstRunSummary == [
                "  later   first runs 5s after the loop starts, then every 10s",
                "  manual  runs only when asked (smartpollctl run or schedule, or a directive); then every 10s",
                "  plain   runs only when asked (smartpollctl run or schedule, or a directive)",
                "  poll    first runs when the loop starts, then every 10s",
            ])
    }

    @Test func everyFromIsEndByDefaultDueWhenAskedAndCheckedAtLoad() throws {
        let configuration = try parse(
            """
            {"tasks": {
              "drift": {"command": ["true"], "every": "10s"},
              "end": {"command": ["true"], "every": "10s", "every_from": "end"},
              "grid": {"command": ["true"], "every": "1s", "every_from": "due"}}}
            """)
        #expect(configuration.tasks["drift"]?.everyFrom == .end)
        #expect(configuration.tasks["end"]?.everyFrom == .end)
        #expect(configuration.tasks["grid"]?.everyFrom == .due)
        #expect(
            configuration.firstRunSummary == [
                "  drift  first runs when the loop starts, then every 10s",
                "  end    first runs when the loop starts, then every 10s",
                "  grid   first runs when the loop starts, then every 1s from its due time",
            ])
        let found = problems(
            """
            {"tasks": {"a": {"command": ["true"], "every": "1s", "every_from": "start"},
                       "b": {"command": ["true"], "every": "1s", "every_from": 1}}}
            """)
        #expect(found.contains(#"test.json: tasks.a.every_from: expected "end" or "due", got "start""#))
        #expect(found.contains("test.json: tasks.b.every_from: expected a string, got 1"))
        #expect(found.count == 2, "\(found)")
    }

    @Test func unknownKeysAreRejectedAtEveryLevelWithTheirPath() {
        let found = problems(
            """
            {"sockt": "x", "tasks": {"t": {"command": ["true"], "evry": "1s", "backoff": {"inital": "1s"}}},
             "hooks": {"h": {"schedule": {"t": "0s"}, "extra": 1}}}
            """)
        #expect(
            found.contains {
                $0.hasPrefix(#"test.json: sockt: unknown key (did you mean "socket"?); expected one of socket,"#)
            })
        #expect(found.contains { $0.hasPrefix("test.json: tasks.t.evry: unknown key") })
        #expect(found.contains { $0.hasPrefix("test.json: tasks.t.backoff.inital: unknown key") })
        #expect(found.contains { $0.hasPrefix("test.json: hooks.h.extra: unknown key") })
        #expect(found.count == 4)
    }

    @Test func wrongTypesNameTheKeyAndWhatWasFound() {
        let found = problems(
            """
            {"max_running": "2", "tasks": {"t": {"command": "true", "env": {"A": 1}},
                                           "u": {"command": ["x", 2], "on_failure": "sometimes"}}}
            """)
        #expect(found.contains("test.json: max_running: expected a whole number, got \"2\""))
        #expect(found.contains("test.json: tasks.t.command: expected an array of strings, got \"true\""))
        #expect(found.contains("test.json: tasks.t.env.A: expected a string, got 1"))
        #expect(found.contains("test.json: tasks.u.command[1]: expected a string, got 2"))
        #expect(
            found.contains(
                "test.json: tasks.u.on_failure: expected \"fatal\", \"continue\" or \"retry\", got \"sometimes\""))
    }

    @Test func containmentAndCgroupRootAreReadAndChecked() throws {
        let defaults = try parse(#"{"tasks": {"t": {"command": ["true"]}}}"#)
        #expect(defaults.containment == .auto && defaults.cgroupRoot == nil)
        let forced = try parse(
            #"{"containment": "subreaper", "cgroup_root": "/sys/fs/cgroup/x", "tasks": {"t": {"command": ["true"]}}}"#)
        #expect(forced.containment == .subreaper && forced.cgroupRoot == "/sys/fs/cgroup/x")
        let found = problems(
            #"{"containment": "jail", "cgroup_root": "relative", "tasks": {"t": {"command": ["true"]}}}"#)
        #expect(found.contains("test.json: containment: must be \"auto\", \"cgroup\" or \"subreaper\""))
        #expect(found.contains("test.json: cgroup_root: must be an absolute path"))
        #expect(found.count == 2)
    }

    @Test func metricsListenTakesAnIPv4OrBracketedIPv6AddressAndAPort() throws {
        let none = try parse(#"{"tasks": {"t": {"command": ["true"]}}}"#)
        #expect(none.metricsListen == nil)
        let cases: [(String, String, UInt16, Bool)] = [
            ("127.0.0.1:9464", "127.0.0.1", 9464, false), ("0.0.0.0:0", "0.0.0.0", 0, false),
            ("[::1]:9464", "::1", 9464, true), ("[::]:65535", "::", 65535, true),
            ("[fe80::1:2]:80", "fe80::1:2", 80, true),
        ]
        for (text, host, port, isIPv6) in cases {
            let configuration = try parse(#"{"metrics_listen": "\#(text)", "tasks": {"t": {"command": ["true"]}}}"#)
            #expect(
                configuration.metricsListen == MetricsListenAddress(host: host, port: port, isIPv6: isIPv6), "\(text)")
            #expect(configuration.metricsListen?.description == text)
        }
        let form =
            "must be HOST:PORT, an IPv4 address or a bracketed IPv6 address and a port, such as \"127.0.0.1:9464\" or \"[::1]:9464\""
        let bad: [(String, String)] = [
            ("9464", form), (":9464", form), ("[::1]", form), ("[::1]9464", form), ("[::1:9464", form),
            (
                "localhost:9464",
                "\"localhost\" is not an IPv4 address (host names are not looked up: 127.0.0.1, 0.0.0.0, [::1])"
            ),
            (
                "256.0.0.1:80",
                "\"256.0.0.1\" is not an IPv4 address (host names are not looked up: 127.0.0.1, 0.0.0.0, [::1])"
            ),
            ("[127.0.0.1]:80", "\"127.0.0.1\" is not an IPv6 address"),
            ("::1:9464", "an IPv6 address goes in brackets: \"[::1]:9464\""),
            ("127.0.0.1:65536", "the port must be a number from 0 to 65535, not \"65536\""),
            ("127.0.0.1:", "the port must be a number from 0 to 65535, not \"\""),
            ("127.0.0.1:+80", "the port must be a number from 0 to 65535, not \"+80\""),
            ("127.0.0.1:http", "the port must be a number from 0 to 65535, not \"http\""),
        ]
        for (text, reason) in bad {
            let found = problems(#"{"metrics_listen": "\#(text)", "tasks": {"t": {"command": ["true"]}}}"#)
            #expect(found == ["test.json: metrics_listen: " + reason], "\(text)")
        }
        #expect(
            problems(#"{"metrics_listen": 9464, "tasks": {"t": {"command": ["true"]}}}"#) == [
                "test.json: metrics_listen: expected a string, got 9464"
            ])
    }

    @Test func logRateAndLogBurstAreReadOnTasksAndCommandHooksAndChecked() throws {
        let defaults = try parse(#"{"tasks": {"t": {"command": ["true"]}}, "hooks": {"h": {"command": ["true"]}}}"#)
        #expect(defaults.tasks["t"]?.logRate == 1_000 && defaults.tasks["t"]?.logBurst == 10_000)
        #expect(defaults.hooks["h"] == .command(HookConfiguration.CommandHook(command: ["true"])))
        let set = try parse(
            """
            {"tasks": {"t": {"command": ["true"], "log_rate": 0, "log_burst": 50}},
             "hooks": {"h": {"command": ["true"], "log_rate": 5, "log_burst": 0}}}
            """)
        #expect(set.tasks["t"]?.logRate == 0 && set.tasks["t"]?.logBurst == 50)
        guard case .command(let hook)? = set.hooks["h"] else { throw HarnessFailure("no command hook") }
        #expect(hook.logRate == 5 && hook.logBurst == 0)
        let found = problems(
            """
            {"tasks": {"t": {"command": ["true"], "log_rate": -1, "log_burst": 1.5}},
             "hooks": {"h": {"schedule": {"t": "0s"}, "log_rate": 10}}}
            """)
        #expect(found.contains("test.json: tasks.t.log_rate: must be at least 0 and at most 1000000000, got -1"))
        #expect(found.contains { $0.hasPrefix("test.json: tasks.t.log_burst: expected a whole number") })
        #expect(found.contains("test.json: hooks.h.log_rate: only a command hook takes log_rate"))
        #expect(found.count == 3)
    }

    @Test func logLinesIsReadOnTasksOnlyAndChecked() throws {
        let defaults = try parse(#"{"tasks": {"t": {"command": ["true"]}}}"#)
        #expect(defaults.tasks["t"]?.logLines == 1_000)
        let set = try parse(
            #"{"tasks": {"t": {"command": ["true"], "log_lines": 0}, "u": {"command": ["true"], "log_lines": 5}}}"#)
        #expect(set.tasks["t"]?.logLines == 0 && set.tasks["u"]?.logLines == 5)
        let found = problems(
            """
            {"tasks": {"t": {"command": ["true"], "log_lines": -1}, "u": {"command": ["true"], "log_lines": "10"},
                       "v": {"command": ["true"], "log_lines": 1000001}},
             "hooks": {"h": {"command": ["true"], "log_lines": 10}}}
            """)
        #expect(found.contains("test.json: tasks.t.log_lines: must be at least 0 and at most 1000000, got -1"))
        #expect(found.contains { $0.hasPrefix("test.json: tasks.u.log_lines: expected a whole number") })
        #expect(found.contains("test.json: tasks.v.log_lines: must be at least 0 and at most 1000000, got 1000001"))
        #expect(found.contains("test.json: hooks.h.log_lines: only a task takes log_lines"))
        #expect(found.count == 4, "\(found)")
    }

    @Test func historyIsReadOnTasksOnlyAndChecked() throws {
        let defaults = try parse(#"{"tasks": {"t": {"command": ["true"]}}}"#)
        #expect(defaults.tasks["t"]?.history == 100)
        let set = try parse(
            #"{"tasks": {"t": {"command": ["true"], "history": 0}, "u": {"command": ["true"], "history": 100000}}}"#)
        #expect(set.tasks["t"]?.history == 0 && set.tasks["u"]?.history == 100_000)
        let found = problems(
            """
            {"tasks": {"t": {"command": ["true"], "history": -1}, "u": {"command": ["true"], "history": 2.5},
                       "v": {"command": ["true"], "history": 100001}},
             "hooks": {"h": {"command": ["true"], "history": 10}}}
            """)
        #expect(found.contains("test.json: tasks.t.history: must be at least 0 and at most 100000, got -1"))
        #expect(found.contains { $0.hasPrefix("test.json: tasks.u.history: expected a whole number") })
        #expect(found.contains("test.json: tasks.v.history: must be at least 0 and at most 100000, got 100001"))
        #expect(found.contains("test.json: hooks.h.history: only a task takes history"))
        #expect(found.count == 4, "\(found)")
    }

    @Test func badDurationsAreRejectedWithTheReason() {
        let found = problems(
            """
            {"tasks": {"t": {"command": ["true"], "every": "5x", "timeout": "0s", "start": "-1s",
                             "jitter": true, "kill_grace": 1e300}}}
            """)
        #expect(found.contains { $0.hasPrefix("test.json: tasks.t.every: ") && $0.contains("\"5x\"") })
        #expect(found.contains("test.json: tasks.t.timeout: must be greater than zero, got 0s"))
        #expect(found.contains("test.json: tasks.t.start: must be zero or more, got -1s"))
        #expect(found.contains { $0.hasPrefix("test.json: tasks.t.jitter: expected a duration") })
        #expect(found.contains { $0.hasPrefix("test.json: tasks.t.kill_grace: ") && $0.contains("out of range") })
        #expect(found.count == 5)
    }

    @Test func referencesToMissingTasksAreRejected() {
        let found = problems(
            """
            {"tasks": {"a": {"command": ["true"], "on_change": ["b", "ghost"], "on_success": ["a"]},
                       "b": {"command": ["true"]}},
             "hooks": {"h": {"schedule": {"phantom": "0s"}}}}
            """)
        #expect(
            found == [
                "test.json: hooks.h.schedule.phantom: no task is named \"phantom\"",
                "test.json: tasks.a.on_change[1]: no task is named \"ghost\"",
            ])
    }

    @Test func tasksAreRequiredAndNamesAreChecked() {
        #expect(problems(#"{}"#) == ["test.json: tasks: missing; at least one task is needed"])
        #expect(problems(#"{"tasks": {}}"#) == ["test.json: tasks: at least one task is needed"])
        #expect(
            problems(#"{"tasks": {"bad name": {"command": ["true"]}}}"#)
                == ["test.json: tasks.\"bad name\": invalid name; use 1 to 128 letters, digits and _ - . : @"])
        #expect(
            problems(#"{"tasks": {"t": {}}}"#)
                == ["test.json: tasks.t.command: missing; a task needs a command (an array of strings)"])
        #expect(problems(#"{"tasks": {"t": {"command": []}}}"#) == ["test.json: tasks.t.command: must not be empty"])
    }

    @Test func hooksNeedExactlyOneOfScheduleOrCommand() throws {
        let found = problems(
            """
            {"tasks": {"t": {"command": ["true"]}},
             "hooks": {"both": {"schedule": {}, "command": ["x"]}, "neither": {}, "cwd": {"schedule": {}, "cwd": "/"}}}
            """)
        #expect(found.contains("test.json: hooks.both: a hook has either schedule or command, not both"))
        #expect(found.contains { $0.hasPrefix("test.json: hooks.neither: a hook needs schedule") })
        #expect(found.contains("test.json: hooks.cwd.cwd: only a command hook takes cwd"))
        let configuration = try parse(
            """
            {"tasks": {"t": {"command": ["true"]}},
             "hooks": {"run": {"command": ["./on-event", "--verbose"], "env": {"X": "a=b\\nc"}, "timeout": "3s"}}}
            """)
        guard case .command(let hook)? = configuration.hooks["run"] else {
            Issue.record("expected a command hook")
            return
        }
        #expect(hook.command == ["./on-event", "--verbose"])
        #expect(hook.environment == [EnvironmentVariable(name: "X", value: "a=b\nc")])
        #expect(hook.timeout == .seconds(3))
    }

    @Test func socketModeAndKillSignalAcceptTheirUsualSpellings() throws {
        let configuration = try parse(
            """
            {"socket_mode": "660", "tasks": {"a": {"command": ["true"], "kill_signal": "sigint"},
                                              "b": {"command": ["true"], "kill_signal": 9},
                                              "c": {"command": ["true"], "kill_signal": "HUP"}}}
            """)
        #expect(configuration.socketMode == 0o660)
        #expect(configuration.tasks["a"]?.killSignal == SIGINT)
        #expect(configuration.tasks["b"]?.killSignal == 9)
        #expect(configuration.tasks["c"]?.killSignal == SIGHUP)
        let found = problems(
            """
            {"socket_mode": "0999", "tasks": {"a": {"command": ["true"], "kill_signal": "FOO"},
                                              "b": {"command": ["true"], "kill_signal": 65}}}
            """)
        #expect(found.contains { $0.hasPrefix("test.json: socket_mode: expected octal permission bits") })
        #expect(found.contains { $0.hasPrefix("test.json: tasks.a.kill_signal: unknown signal \"FOO\"") })
        #expect(found.contains("test.json: tasks.b.kill_signal: must be at least 1 and at most 64, got 65"))
    }

    @Test func environmentKeepsValuesWithEqualsAndNewlinesAndRejectsBadNames() throws {
        let configuration = try parse(#"{"tasks": {"t": {"command": ["env"], "env": {"B": "x=y", "A": "1\n2"}}}}"#)
        #expect(
            configuration.tasks["t"]?.environment == [
                EnvironmentVariable(name: "B", value: "x=y"), EnvironmentVariable(name: "A", value: "1\n2"),
            ])
        #expect(
            problems(#"{"tasks": {"t": {"command": ["env"], "env": {"A=B": "1"}}}}"#)
                == ["test.json: tasks.t.env.A=B: invalid environment variable name (empty, or holds = or NUL)"])
        #expect(
            problems(#"{"tasks": {"t": {"command": ["a\u0000b"]}}}"#)
                == ["test.json: tasks.t.command[0]: must not contain a NUL character"])
    }

    @Test func userAndGroupTakeNamesOrIdsAndOnlyARootSupervisorMayUseThem() throws {
        let user = #"{"tasks": {"t": {"command": ["id"], "user": "nobody"}}}"#
        let both = #"{"tasks": {"t": {"command": ["id"], "user": 65534, "group": "nogroup"}}}"#
        let groupOnly = #"{"tasks": {"t": {"command": ["id"], "group": "65534"}}}"#
        guard geteuid() == 0 else {
            // Not root: every one of them is refused, with the reason.
            for text in [user, both, groupOnly] {
                let reported = problems(text)
                #expect(reported.count == 1 && reported[0].contains("only a supervisor running as root"), "\(reported)")
            }
            return
        }
        // nobody's primary group, as the user database has it.
        let primary = try #require(getpwnam("nobody")).pointee.pw_gid
        #expect(try parse(user).tasks["t"]?.credentials == SpawnRequest.Credentials(userID: 65534, groupID: primary))
        #expect(try parse(both).tasks["t"]?.credentials == SpawnRequest.Credentials(userID: 65534, groupID: 65534))
        #expect(try parse(groupOnly).tasks["t"]?.credentials == SpawnRequest.Credentials(userID: 0, groupID: 65534))
        #expect(try parse(#"{"tasks": {"t": {"command": ["id"]}}}"#).tasks["t"]?.credentials == nil)
        #expect(
            problems(
                #"{"tasks": {"t": {"command": ["id"], "user": "no-such-user-here", "group": "no-such-group-here"}}}"#)
                == [
                    "test.json: tasks.t.user: no user is named \"no-such-user-here\"",
                    "test.json: tasks.t.group: no group is named \"no-such-group-here\"",
                ])
        // A uid the database does not know has no primary group to take.
        #expect(
            problems(#"{"tasks": {"t": {"command": ["id"], "user": 3999999}}}"#)
                == [
                    "test.json: tasks.t.group: missing; user 3999999 has no entry in the user database to give its primary group"
                ])
        #expect(
            try parse(#"{"tasks": {"t": {"command": ["id"], "user": 3999999, "group": 3999999}}}"#).tasks["t"]?
                .credentials
                == SpawnRequest.Credentials(userID: 3_999_999, groupID: 3_999_999))
        #expect(
            problems(#"{"tasks": {"t": {"command": ["id"], "user": -1}}}"#)
                == ["test.json: tasks.t.user: must be at least 0 and at most 4294967294, got -1"])
        #expect(
            problems(#"{"tasks": {"t": {"command": ["id"], "user": "4294967295"}}}"#)
                == ["test.json: tasks.t.user: must be at least 0 and at most 4294967294, got \"4294967295\""])
        #expect(
            problems(#"{"tasks": {"t": {"command": ["id"], "group": true}}}"#)
                == ["test.json: tasks.t.group: expected a group name or gid, got true"])
        #expect(
            problems(#"{"tasks": {"t": {"command": ["id"], "user": ""}}}"#)
                == ["test.json: tasks.t.user: expected a user name or uid, got \"\""])
    }

    @Test func backoffMaximumBelowInitialIsRejected() {
        #expect(
            problems(
                #"{"tasks": {"t": {"command": ["x"], "backoff": {"initial": "1m", "max": "10s", "factor": 0.5}}}}"#)
                == [
                    "test.json: tasks.t.backoff.factor: must be at least 1.0, got 0.5",
                    "test.json: tasks.t.backoff.max: must be at least initial (1m0s)",
                ])
    }

    @Test func syntaxErrorsGiveFileLineAndColumn() {
        let found = problems("{\n  \"tasks\": {\n    \"t\" {\"command\": [\"x\"]}\n  }\n}\n")
        #expect(found.count == 1)
        #expect(found.first?.hasPrefix("test.json: invalid JSON at line 3, column") == true)
    }

    @Test func trailingCommasAreForgiven() throws {
        let configuration = try parse(#"{"tasks": {"t": {"command": ["x", "y",],},},}"#)
        #expect(configuration.tasks["t"]?.command == ["x", "y"])
    }

    @Test func locateUsesExplicitThenEnvironmentAndNamesEveryPlaceTried() throws {
        #expect(try ConfigurationFile.locate(explicit: "/x/y.json", environment: [:]) == "/x/y.json")
        let directory = try TemporaryDirectory()
        let path = directory.path + "/conf.json"
        try directory.createFile("conf.json", contents: #"{"tasks": {"t": {"command": ["true"]}}}"#)
        #expect(try ConfigurationFile.locate(explicit: nil, environment: ["SMARTPOLL_CONFIG": path]) == path)
        #expect(
            try ConfigurationFile.locate(
                explicit: nil, environment: ["SMARTPOLL_CONFIG": directory.path + "/missing.json"])
                == directory.path + "/missing.json", "a named file is used as given, even when it is missing")
        let environment = ["XDG_CONFIG_HOME": directory.path + "/none"]
        do {
            _ = try ConfigurationFile.locate(explicit: nil, environment: environment)
            Issue.record("expected configurationNotFound")
        } catch {
            #expect(error.code == .configurationNotFound)
            #expect(error.message.contains("./smartpoll.json"))
            #expect(error.message.contains(directory.path + "/none/smartpoll/smartpoll.json"))
            #expect(error.message.contains("/etc/smartpoll/smartpoll.json"))
            #expect(!error.message.contains("\n"), "one line")
        }
        #expect(
            ConfigurationFile.candidates(environment: ["HOME": "/home/op"]).contains(
                "/home/op/.config/smartpoll/smartpoll.json"))
    }

    @Test func loadReadsAFileAndReportsOneItCannotRead() throws {
        let directory = try TemporaryDirectory()
        try directory.createFile("ok.json", contents: #"{"tasks": {"t": {"command": ["true"], "every": 2}}}"#)
        let configuration = try ConfigurationFile.load(directory.path + "/ok.json")
        #expect(configuration.tasks["t"]?.every == .seconds(2))
        #expect(configuration.file == directory.path + "/ok.json")
        do {
            _ = try ConfigurationFile.load(directory.path + "/absent.json")
            Issue.record("expected an error")
        } catch {
            #expect(error.code == .invalidConfiguration)
            #expect(error.message == "\(directory.path)/absent.json: cannot open: No such file or directory")
        }
    }
}
