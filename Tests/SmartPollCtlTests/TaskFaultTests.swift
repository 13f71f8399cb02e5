import Foundation
import Glibc
import SmartPollProtocol
import Testing

/// What a task can do wrong (SPEC sections 3 and 8), each with the outcome the supervisor must
/// report, and the supervisor unharmed after it. (A hang past `timeout` with a grandchild, and
/// a task that ignores SIGTERM until `kill_grace`, are in SemanticsTests.)
@Suite(.endToEnd)
struct TaskFaultTests {
    private func lastRun(_ supervisor: SupervisorHarness, _ task: String) throws -> JSONObject {
        let reply = try json(try supervisor.ctl("--json", "status", task).output)
        guard let row = reply["tasks"]?.arrayValue?.first?.objectValue, let last = row["last"]?.objectValue else {
            throw HarnessError("no last run of \(task) in \(reply)")
        }
        return last
    }

    @Test func everyExitCodeFromOneTo255IsAFailedRunWithThatCode() throws {
        let tasks = (1...255).map {
            #""exit\#($0)": {"command": ["sh", "-c", "exit \#($0)"], "on_failure": "continue"}"#
        }
        let supervisor = try SupervisorHarness(#"{"tasks": {\#(tasks.joined(separator: ", "))}}"#)
        let events = try supervisor.watch()
        // All of them at once, pipelined on one connection.
        let connection = try RawSocket(supervisor.socket)
        #expect(
            connection.send(
                (1...255).map { #"{"id":\#($0),"cmd":"run","task":"exit\#($0)"}"# }.joined(separator: "\n") + "\n"))
        for _ in 1...255 { #expect(try connection.reply()["ok"] == .bool(true)) }
        var codes: [String: Int] = [:]
        try events.until { event in
            if case .taskFinished(let task, _, let code, let signal, _, let succeeded, _, _, _) = event.kind {
                #expect(!succeeded && signal == nil, "\(event)")
                codes[task] = code ?? -1
            }
            return codes.count == 255
        }
        #expect(codes == Dictionary(uniqueKeysWithValues: (1...255).map { ("exit\($0)", $0) }))
        // run --wait passes the code on as smartpollctl's own status.
        for code in [1, 2, 42, 126, 127, 128, 255] {
            #expect(try supervisor.ctl("run", "exit\(code)", "--wait").status == Int32(code))
        }
        let last = try lastRun(supervisor, "exit42")
        #expect(last["exit_code"] == .int(42) && last["error"] == .string("exited with status 42"))
        #expect(
            try json(try supervisor.ctl("--json", "status").output)["loop"]?.objectValue?["state"] == .string("running")
        )
    }

    @Test func deathBySignalIsReportedWithTheSignal() throws {
        let supervisor = try SupervisorHarness(
            """
            {"tasks": {
              "segv": {"command": ["sh", "-c", "kill -SEGV $$"], "on_failure": "continue"},
              "kill": {"command": ["sh", "-c", "kill -KILL $$"], "on_failure": "continue"},
              "abrt": {"command": ["sh", "-c", "kill -ABRT $$"], "on_failure": "continue"}
            }}
            """)
        for (task, signal, name) in [
            ("segv", SIGSEGV, "SIGSEGV"), ("kill", SIGKILL, "SIGKILL"), ("abrt", SIGABRT, "SIGABRT"),
        ] {
            #expect(try supervisor.ctl("run", task, "--wait").status == 128 + signal, "\(task)")
            let last = try lastRun(supervisor, task)
            #expect(last["signal"] == .int(Int64(signal)) && last["exit_code"] == .null, "\(last)")
            #expect(last["error"] == .string("killed by \(name)"), "\(last)")
        }
        #expect(try supervisor.ctl("ping").status == 0)
    }

    @Test func aGrandchildHoldingThePipesDoesNotKeepTheRunAliveAndIsEnded() throws {
        // The grandchild inherits stdout, stderr and descriptor 3 and outlives its parent.
        let supervisor = try SupervisorHarness(
            """
            {"tasks": {"leaver": {"command": ["sh", "-c", "sleep 100 & echo $! > $DIR/grandchild; echo parent-done"]}}}
            """)
        let began = Date()
        #expect(try supervisor.ctl("run", "leaver", "--wait").status == 0)
        #expect(Date().timeIntervalSince(began) < 5, "the run waited for the grandchild")
        #expect(try supervisor.ctl("result", "leaver").output == "parent-done\n")
        let pid = try #require(
            Int32(supervisor.read("grandchild")?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""))
        #expect(waitUntilGone(pid), "the grandchild outlived the run")
    }

    @Test func aThousandBackgroundProcessesAllEndWithTheirGroup() throws {
        let supervisor = try SupervisorHarness(
            """
            {"tasks": {"spawner": {"command": ["sh", "-c", "i=0; while [ $i -lt 1000 ]; do sleep 100 & echo $!; i=$((i+1)); done"]}}}
            """)
        #expect(try supervisor.ctl("run", "spawner", "--wait").status == 0)
        let pids = try supervisor.ctl("result", "spawner").output.split(separator: "\n").compactMap { Int32($0) }
        #expect(pids.count == 1000)
        let survivors = pids.filter { !waitUntilGone($0, seconds: 10) }
        #expect(survivors.isEmpty, "\(survivors.count) background processes outlived their run")
    }

    @Test func aHundredMegabytesOnStdoutAndOnStderrStreamThroughWithoutGrowingTheSupervisor() throws {
        // Both at once: stderr from a background pipeline, stdout from the foreground one.
        let supervisor = try SupervisorHarness(
            """
            {"tasks": {"flood": {"command": ["sh", "-c",
              "head -c 100000000 /dev/zero | tr '\\\\0' e >&2 & head -c 100000000 /dev/zero | tr '\\\\0' o; wait"]}}}
            """)
        let began = Date()
        #expect(try supervisor.ctl("run", "flood", "--wait").status == 0)
        let elapsed = Date().timeIntervalSince(began)
        let result = try json(try supervisor.ctl("--json", "result", "flood").output)
        #expect(result["truncated"] == .bool(true))
        #expect(result["output"]?.stringValue?.utf8.count == 1 << 20)
        let last = try lastRun(supervisor, "flood")
        #expect(last["stderr_tail"] == .string(String(repeating: "e", count: 4096)), "the last 4 KiB of stderr")
        let memory = try residentMemory(of: supervisor.pid)
        #expect(memory.peak < Sanitizer.memory(64 << 20), "VmHWM \(memory.peak >> 20) MiB after 200 MB in \(elapsed) s")
        #expect(try supervisor.ctl("ping").status == 0)
    }

    @Test func stderrIsLoggedLineByLineWithLongLinesInPiecesOf4KiB() throws {
        let supervisor = try SupervisorHarness(
            """
            {"tasks": {"talker": {"command": ["sh", "-c",
              "printf 'one\\ntwo\\n\\n' >&2; head -c 8192 /dev/zero | tr '\\\\0' x >&2; printf '\\nend' >&2"]}}}
            """)
        #expect(try supervisor.ctl("run", "talker", "--wait").status == 0)
        // The log is written by a thread of its own: the reply can come before the last lines.
        #expect(supervisor.logEventuallyContains(" end task=talker"))
        let messages = supervisor.logText.split(separator: "\n").filter { $0.contains(" stream=stderr") }.map { line in
            let afterLevel = line.split(separator: " ", maxSplits: 2)[2]
            return String(afterLevel[..<afterLevel.range(of: " task=")!.lowerBound])
        }
        let x = String(repeating: "x", count: 4096)
        // The empty line is logged too; a line of exactly 8 KiB is two pieces and no empty third.
        #expect(messages.map { $0.count } == [3, 3, 0, 4096, 4096, 3], "\(messages.map { $0.prefix(10) })")
        #expect(messages == ["one", "two", "", x, x, "end"])
    }

    @Test func tenThousandDirectivesFailARunBeyondTheLimitAndApplyWithinIt() throws {
        let writer = #"yes '{"cmd":"schedule","task":"target","after":"1h"}' | head -n 10000 >&3"#
        let strict = try SupervisorHarness(
            """
            {"tasks": {"chatty": {"command": ["sh", "-c", \(JSONValue.string(writer).serialized())], "on_failure": "continue"},
                       "target": {"command": ["true"]}}}
            """)
        #expect(try strict.ctl("run", "chatty", "--wait").status == 1)
        let last = try lastRun(strict, "chatty")
        #expect(
            last["exit_code"] == .int(0) && last["error"] == .string("more than 1000 directives in one run"), "\(last)")
        let target = try json(try strict.ctl("--json", "status", "target").output)["tasks"]?.arrayValue?.first?
            .objectValue
        #expect(target?["scheduled"] == .bool(false), "a failed run's directives are discarded")

        let generous = try SupervisorHarness(
            """
            {"max_directives": 10000,
             "tasks": {"chatty": {"command": ["sh", "-c", \(JSONValue.string(writer).serialized())]},
                       "target": {"command": ["true"]}}}
            """)
        #expect(try generous.ctl("run", "chatty", "--wait").status == 0)
        let scheduled = try json(try generous.ctl("--json", "status", "target").output)["tasks"]?.arrayValue?.first?
            .objectValue
        #expect(scheduled?["scheduled"] == .bool(true))
    }

    @Test func directivesSplitAcrossWritesAreAssembledAndAPartialLineSpoilsOnlyItsRun() throws {
        let supervisor = try SupervisorHarness(
            #"""
            {"tasks": {
              "split": {"command": ["sh", "-c",
                "printf '{\"cmd\":\"sched' >&3; sleep 0.2; printf 'ule\",\"task\":\"a\",\"after\":\"1h\"}\\n{\"cmd\":\"sch' >&3; sleep 0.2; printf 'edule\",\"task\":\"b\",\"after\":\"2h\"}\\n' >&3"]},
              "garbled": {"command": ["sh", "-c",
                "printf '{\"cmd\":' >&3; sleep 0.1; printf '\\n{\"cmd\":\"schedule\",\"task\":\"a\",\"after\":\"0s\"}\\n' >&3"],
                "on_failure": "continue"},
              "a": {"command": ["true"]}, "b": {"command": ["true"]}
            }}
            """#)
        #expect(try supervisor.ctl("run", "split", "--wait").status == 0)
        let rows = try #require(try json(try supervisor.ctl("--json", "status", "a", "b").output)["tasks"]?.arrayValue)
        #expect(
            rows.map { $0.objectValue?["scheduled"] } == [.bool(true), .bool(true)], "both directives applied: \(rows)")

        #expect(try supervisor.ctl("run", "garbled", "--wait").status == 1)
        let last = try lastRun(supervisor, "garbled")
        #expect(last["error"]?.stringValue?.hasPrefix("invalid directive 1: ") == true, "\(last)")
        #expect(
            try json(try supervisor.ctl("--json", "status", "a").output)["tasks"]?.arrayValue?.first?.objectValue?[
                "runs"] == .int(0),
            "the valid directive after it was discarded with the run")
    }

    @Test func aMissingOrNonExecutableCommandIsAClearFailedRun() throws {
        let supervisor = try SupervisorHarness(
            """
            {"tasks": {
              "missing": {"command": ["/nonexistent/program"], "on_failure": "continue"},
              "unknown": {"command": ["no-such-program-anywhere"], "on_failure": "continue"},
              "plain": {"command": ["$DIR/plain-file"], "on_failure": "continue"},
              "folder": {"command": ["$DIR"], "on_failure": "continue"},
              "newline": {"command": ["/no\\nsuch"], "on_failure": "continue"},
              "fatal": {"command": ["/nonexistent/program"]}
            }}
            """)
        try "#!/bin/sh\necho never\n".write(toFile: supervisor.path("plain-file"), atomically: true, encoding: .utf8)
        chmod(supervisor.path("plain-file"), 0o644)
        let expected = [
            ("missing", "cannot run \"/nonexistent/program\": No such file or directory"),
            ("unknown", "cannot run \"no-such-program-anywhere\": No such file or directory"),
            ("plain", "cannot run \"\(supervisor.path("plain-file"))\": Permission denied"),
            ("folder", "cannot run \"\(supervisor.folder)\": Permission denied"),
            ("newline", #"cannot run "/no\nsuch": No such file or directory"#),
        ]
        for (task, message) in expected {
            #expect(try supervisor.ctl("run", task, "--wait").status == 127, "\(task)")
            let last = try lastRun(supervisor, task)
            #expect(last["exit_code"] == .int(127) && last["succeeded"] == .bool(false))
            #expect(last["error"] == .string(message), "\(last)")
        }
        // With the default on_failure, it is fatal like any failed run: the loop stops, says why.
        #expect(try supervisor.ctl("run", "fatal", "--wait").status == 127)
        let loop = try json(try supervisor.ctl("--json", "status").output)["loop"]?.objectValue
        #expect(loop?["state"] == .string("failed"))
        #expect(
            loop?["error"]?.stringValue?.contains("No such file or directory") == true, "\(String(describing: loop))")
        #expect(try supervisor.ctl("ping").status == 0)
        // One log line an event, whatever the program's name holds.
        let strays = supervisor.logText.split(separator: "\n").filter { !$0.hasPrefix("20") }
        #expect(strays.isEmpty, "log lines that are not events: \(strays)")
    }

    @Test func closingDescriptorThreeEarlyIsFine() throws {
        let supervisor = try SupervisorHarness(
            #"""
            {"tasks": {
              "closer": {"command": ["sh", "-c", "exec 3>&-; sleep 0.1; echo still-here"]},
              "sayer": {"command": ["sh", "-c", "printf '{\"cmd\":\"schedule\",\"task\":\"t\",\"after\":\"1h\"}\\n' >&3; exec 3>&-; sleep 0.1; echo said"]},
              "t": {"command": ["true"]}
            }}
            """#)
        #expect(try supervisor.ctl("run", "closer", "--wait").status == 0)
        #expect(try supervisor.ctl("result", "closer").output == "still-here\n")
        #expect(try supervisor.ctl("run", "sayer", "--wait").status == 0)
        #expect(
            try json(try supervisor.ctl("--json", "status", "t").output)["tasks"]?.arrayValue?.first?.objectValue?[
                "scheduled"] == .bool(true))
    }
}
