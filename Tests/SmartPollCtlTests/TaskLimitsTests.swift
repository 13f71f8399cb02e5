import Foundation
import SmartPollProtocol
import Testing

/// The task keys `nice` and `rlimits` (issue 15, item 5), end to end: the real supervisor
/// starts the real child with them, and a limit the kernel enforces shows in `status`.
@Suite(.endToEnd)
struct TaskLimitsTests {
    @Test func aTaskRunsWithItsNiceValueAndResourceLimits() throws {
        let supervisor = try SupervisorHarness(
            """
            {"tasks": {
              "limited": {"command": ["sh", "-c", "echo $(nice) $(ulimit -n) $(ulimit -c)"],
                          "nice": 5, "rlimits": {"nofile": 64, "core": 0}},
              "plain": {"command": ["sh", "-c", "echo $(nice) $(ulimit -n)"]}}}
            """)
        #expect(try supervisor.ctl("run", "limited", "--wait").status == 0)
        #expect(try supervisor.ctl("result", "limited").output == "5 64 0\n")
        // Without the keys, the supervisor's own (its nice value and descriptor limit are the
        // harness's, which are this test's).
        var limit = rlimit()
        #expect(getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0)
        #expect(try supervisor.ctl("run", "plain", "--wait").status == 0)
        #expect(try supervisor.ctl("result", "plain").output == "\(Glibc.nice(0)) \(limit.rlim_cur)\n")
    }

    /// The supervisor raises its own soft limit of open descriptors to the hard one (a running
    /// run holds about ten), and its children start with the soft limit it was given, or with
    /// their own `rlimits.nofile`.
    @Test func theSupervisorRaisesItsDescriptorLimitAndItsChildrenGetTheGivenOne() throws {
        var limit = rlimit()
        #expect(getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0)
        try #require(limit.rlim_max > 256, "the hard limit here leaves nothing to raise")
        let supervisor = try SupervisorHarness(
            """
            {"tasks": {
              "plain": {"command": ["sh", "-c", "echo $(ulimit -Sn) $(ulimit -Hn)"]},
              "own": {"command": ["sh", "-c", "echo $(ulimit -Sn) $(ulimit -Hn)"], "rlimits": {"nofile": 64}}}}
            """, launcher: ["/bin/sh", "-c", #"ulimit -Sn 256 && exec "$0" "$@""#])
        let limits = try String(contentsOfFile: "/proc/\(supervisor.pid)/limits", encoding: .utf8)
        let line = limits.split(separator: "\n").first { $0.hasPrefix("Max open files") }
        let fields = line.map { $0.split(separator: " ", omittingEmptySubsequences: true) } ?? []
        // A number: the kernel refuses a hard limit of descriptors above fs.nr_open.
        let hard = "\(limit.rlim_max)"
        #expect(fields.count >= 5 && fields[3] != "256" && fields[4] == Substring(hard), "\(line ?? "")")
        #expect(try supervisor.ctl("run", "plain", "--wait").status == 0)
        #expect(try supervisor.ctl("result", "plain").output == "256 \(hard)\n")
        #expect(try supervisor.ctl("run", "own", "--wait").status == 0)
        #expect(try supervisor.ctl("result", "own").output == "64 64\n")
    }

    @Test func aTaskOverItsCPULimitIsKilledAndStatusShowsTheSignal() throws {
        let supervisor = try SupervisorHarness(
            """
            {"tasks": {"spin": {"command": ["sh", "-c", "while :; do :; done"],
                                "rlimits": {"cpu": 1}, "timeout": "30s", "on_failure": "continue"}}}
            """)
        let started = Date()
        let wait = try supervisor.ctl("run", "spin", "--wait")
        // The soft and hard limits are both 1 s: the kernel sends SIGKILL at once (SIGXCPU
        // when only the soft limit is reached).
        #expect(wait.status == 128 + SIGKILL || wait.status == 128 + SIGXCPU, "\(wait)")
        // One second of CPU time, on a busy machine more wall time; far from the timeout.
        #expect(Date().timeIntervalSince(started) < Double(15 * Sanitizer.slowdown))
        let row = try supervisor.statusRow("spin")
        guard case .object(let last)? = row["last"] else { throw HarnessError("no last run in \(row)") }
        #expect(last["signal"] == .int(Int64(SIGKILL)) || last["signal"] == .int(Int64(SIGXCPU)), "\(last)")
        #expect(last["timed_out"] == .bool(false))
        #expect(last["succeeded"] == .bool(false))
        #expect(try supervisor.ctl("status", "spin").output.contains("KILL"), "the table names the signal")
    }

    @Test func aReloadThatChangesThemIsATaskChangeAndTheNextRunUsesThem() throws {
        let supervisor = try SupervisorHarness(
            """
            {"tasks": {"t": {"command": ["sh", "-c", "echo $(nice) $(ulimit -n)"],
                             "nice": 3, "rlimits": {"nofile": 64}}}}
            """)
        #expect(try supervisor.ctl("run", "t", "--wait").status == 0)
        #expect(try supervisor.ctl("result", "t").output == "3 64\n")
        try """
        {"tasks": {"t": {"command": ["sh", "-c", "echo $(nice) $(ulimit -n)"],
                         "nice": 7, "rlimits": {"nofile": 32}}}}
        """.write(toFile: supervisor.configurationPath, atomically: true, encoding: .utf8)
        let reply = try json(try supervisor.ctl("--json", "reload").output)
        #expect(reply["changed"] == ["t"], "\(reply)")
        #expect(try supervisor.ctl("run", "t", "--wait").status == 0)
        #expect(try supervisor.ctl("result", "t").output == "7 32\n")
    }

    @Test func aLimitTheKernelRefusesFailsTheRunNamingTheStep() throws {
        // Above /proc/sys/fs/nr_open: refused even to a supervisor running as root.
        let supervisor = try SupervisorHarness(
            """
            {"tasks": {"greedy": {"command": ["true"], "rlimits": {"nofile": 1099511627776},
                                  "on_failure": "continue"}}}
            """)
        let wait = try supervisor.ctl("--json", "run", "greedy", "--wait")
        let reply = try json(wait.output)
        #expect(
            reply["error"]
                == .string(
                    #"cannot run "true": cannot set its rlimit nofile to 1099511627776: Operation not permitted"#),
            "\(reply)")
        #expect(supervisor.logText.contains("cannot set its rlimit nofile"))
    }
}
