import Foundation
import Glibc
import SmartPollProtocol
import Testing

/// End-to-end robustness (SPEC sections 5, 7 and 8): bad input, limits, many clients, signals,
/// a second or stale supervisor, foreign users, output floods and what a task process sees.
@Suite(.endToEnd)
struct RobustnessTests {
    static let minimal = """
        {"tasks": {"idle": {"command": ["true"]}}}
        """

    // MARK: - Bad input and limits on the socket

    @Test func malformedLinesGetErrorRepliesAndTheConnectionStaysUsable() throws {
        let supervisor = try SupervisorHarness(Self.minimal)
        let connection = try RawSocket(supervisor.socket)
        let malformed: [(line: String, code: String, id: JSONValue)] = [
            ("garbage", "bad_request", .null),
            ("[]", "bad_request", .null),
            (#"{"cmd":"nope"}"#, "unknown_command", .null),
            (#"{"id":"x","cmd":"nope"}"#, "unknown_command", .string("x")),
            (#"{"id":7,"cmd":"ping","extra":1}"#, "bad_request", .int(7)),
            (#"{"id":[1],"cmd":"ping"}"#, "bad_request", .null),
        ]
        for (line, code, id) in malformed {
            #expect(connection.send(line + "\n"))
            let reply = try connection.reply()
            expectError(reply, code: code, id: id, "for \(line)")
        }
        #expect(connection.send(#"{"id":8,"cmd":"ping"}"# + "\n"))
        let ping = try connection.reply()
        #expect(ping["ok"] == .bool(true))
        #expect(ping["id"] == .int(8))
        #expect(ping["pid"] == .int(Int64(supervisor.pid)))

        // The same lines written in one go, followed by a ping: replies in order, ping last.
        let batch = malformed.map { $0.line + "\n" }.joined() + #"{"id":9,"cmd":"ping"}"# + "\n"
        #expect(connection.send(batch))
        for (line, code, id) in malformed {
            expectError(try connection.reply(), code: code, id: id, "for \(line) (pipelined)")
        }
        let last = try connection.reply()
        #expect(last["ok"] == .bool(true) && last["id"] == .int(9))
    }

    @Test func fiveHundredPipelinedRequestsAreAnsweredInOrder() throws {
        let supervisor = try SupervisorHarness(Self.minimal)
        let connection = try RawSocket(supervisor.socket)
        // Mostly pings, every third a status, so that two handlers interleave.
        let requests = (1...500).map { id in
            id % 3 == 0 ? #"{"id":\#(id),"cmd":"status","tasks":["idle"]}"# : #"{"id":\#(id),"cmd":"ping"}"#
        }
        #expect(connection.send(requests.joined(separator: "\n") + "\n"))
        var ids: [Int64] = []
        var failures: [JSONObject] = []
        for _ in 1...500 {
            let reply = try connection.reply()
            ids.append(reply["id"]?.int64Value ?? -1)
            if reply["ok"] != .bool(true) { failures.append(reply) }
        }
        #expect(ids == Array(1...500))
        #expect(failures.isEmpty, "failed replies: \(failures.prefix(3))")
    }

    @Test func anOversizedLineGetsTooLargeAndOnlyThatConnectionIsClosed() throws {
        let supervisor = try SupervisorHarness(Self.minimal)
        let bystander = try RawSocket(supervisor.socket)
        try expectPing(bystander, id: 1)
        let offender = try RawSocket(supervisor.socket)
        // 1.5 MiB without a newline; the write may fail part-way once the supervisor closes.
        _ = offender.send([UInt8](repeating: UInt8(ascii: "a"), count: 3 << 19))
        let reply = try #require(try offender.readLine(), "no reply before the connection closed")
        expectError(try json(reply), code: "too_large", id: .null)
        #expect(try offender.readLine() == nil, "the connection should be closed after too_large")
        try expectPing(bystander, id: 2)
        try expectPing(try RawSocket(supervisor.socket), id: 3)
    }

    @Test func theLineLimitFollowsMaxLineBytes() throws {
        let supervisor = try SupervisorHarness(
            """
            {"max_line_bytes": 4096, "tasks": {"idle": {"command": ["true"]}}}
            """)
        // Just under the limit: a ping whose id makes the line 4000 bytes long.
        let longID = String(repeating: "i", count: 4000 - #"{"id":"","cmd":"ping"}"#.utf8.count)
        let fits = try RawSocket(supervisor.socket)
        #expect(fits.send(#"{"id":"\#(longID)","cmd":"ping"}"# + "\n"))
        let fitted = try fits.reply()
        #expect(fitted["ok"] == .bool(true))
        #expect(fitted["id"] == .string(longID))

        let offender = try RawSocket(supervisor.socket)
        _ = offender.send(String(repeating: "b", count: 5000) + "\n")
        let reply = try #require(try offender.readLine(), "no reply before the connection closed")
        expectError(try json(reply), code: "too_large", id: .null)
        #expect(try offender.readLine() == nil)
        try expectPing(fits, id: 2)
    }

    @Test func aClientThatHalfClosesStillGetsEveryReply() throws {
        // As `printf '...' | nc -N -U SOCKET` does: the requests, then end of input, then read.
        let supervisor = try SupervisorHarness(
            """
            {"tasks": {"brief": {"command": ["sh", "-c", "sleep 0.2"]}}}
            """)
        let watcher = try RawSocket(supervisor.socket)
        #expect(watcher.send(#"{"id":0,"cmd":"watch","tasks":["brief"]}"# + "\n"))
        watcher.shutdownWriting()
        #expect(try watcher.reply()["ok"] == .bool(true))

        let connection = try RawSocket(supervisor.socket)
        #expect(
            connection.send(
                #"{"id":1,"cmd":"run","task":"brief","wait":true}"# + "\n" + #"{"id":2,"cmd":"ping"}"# + "\n"))
        connection.shutdownWriting()
        let waited = try connection.reply()
        #expect(waited["id"] == .int(1) && waited["succeeded"] == .bool(true), "\(waited)")
        let ping = try connection.reply()
        #expect(ping["id"] == .int(2) && ping["ok"] == .bool(true), "\(ping)")
        #expect(try connection.readLine() == nil, "closed once every reply was sent")
        // A watcher that half-closed keeps its stream: scheduled, started, finished.
        var names: [String] = []
        while names.last != "task_finished" {
            let event = try watcher.reply()
            #expect(event["task"] == .string("brief"), "\(event)")
            names.append(event["event"]?.stringValue ?? "\(event)")
        }
        #expect(names.contains("task_started"), "\(names)")
    }

    @Test func idleClientsWithHalfALineDoNotDelayOthers() throws {
        let supervisor = try SupervisorHarness(Self.minimal)
        var idle: [RawSocket] = []
        for index in 0..<50 {
            let client = try RawSocket(supervisor.socket)
            #expect(client.send(#"{"id":\#(index),"cmd":"pi"#))
            idle.append(client)
        }
        let clock = ContinuousClock()
        let start = clock.now
        let client = try RawSocket(supervisor.socket)
        #expect(client.send(#"{"id":"fresh","cmd":"ping"}"# + "\n"))
        let reply = try client.reply(timeout: 5)
        let elapsed = clock.now - start
        #expect(reply["ok"] == .bool(true) && reply["id"] == .string("fresh"))
        #expect(elapsed < .seconds(1), "the ping took \(elapsed)")
        // The half lines were kept: finishing one gives its reply.
        #expect(idle[17].send("ng\"}\n"))
        let finished = try idle[17].reply()
        #expect(finished["ok"] == .bool(true) && finished["id"] == .int(17))
    }

    @Test func twoHundredConcurrentClientsAllGetAReply() throws {
        // Room for both rounds below at once (400 connections; the default limit is 256).
        let supervisor = try SupervisorHarness(
            """
            {"max_connections": 512, "tasks": {"idle": {"command": ["true"]}}}
            """)
        // 200 connections open at once, each with a ping in flight before any reply is read.
        let clients = try (0..<200).map { _ in try RawSocket(supervisor.socket) }
        for (index, client) in clients.enumerated() {
            #expect(client.send(#"{"id":\#(index),"cmd":"ping"}"# + "\n"))
        }
        var answered = 0
        for (index, client) in clients.enumerated() {
            let reply = try client.reply()
            if reply["ok"] == .bool(true) && reply["id"] == .int(Int64(index)) { answered += 1 }
        }
        #expect(answered == 200)

        // 200 threads, each connecting, pinging and reading on its own, while the 200
        // connections above stay open.
        let socket = supervisor.socket
        let results = Box<[String]>()
        results.value = []
        let lock = NSLock()
        let group = DispatchGroup()
        for index in 0..<200 {
            group.enter()
            Thread {
                var outcome = "ok"
                do {
                    let client = try RawSocket(socket)
                    if !client.send(#"{"id":\#(index),"cmd":"ping"}"# + "\n") { outcome = "\(index): send failed" }
                    let reply = try client.reply()
                    if reply["ok"] != .bool(true) || reply["id"] != .int(Int64(index)) {
                        outcome = "\(index): \(reply)"
                    }
                } catch {
                    outcome = "\(index): \(error)"
                }
                lock.lock()
                results.value?.append(outcome)
                lock.unlock()
                group.leave()
            }.start()
        }
        #expect(group.wait(timeout: .now() + 60) == .success)
        lock.lock()
        let outcomes = results.value ?? []
        lock.unlock()
        #expect(outcomes.count == 200)
        #expect(outcomes.filter { $0 != "ok" }.isEmpty, "\(outcomes.filter { $0 != "ok" }.prefix(3))")
        try expectPing(clients[0], id: 1000)
        withExtendedLifetime(clients) {}
    }

    @Test func theConnectionLimitAnswersBusyAndFreesASlotOnClose() throws {
        let supervisor = try SupervisorHarness(
            """
            {"max_connections": 4, "tasks": {"idle": {"command": ["true"]}}}
            """)
        var held: [RawSocket] = []
        for index in 0..<4 {
            let client = try RawSocket(supervisor.socket)
            try expectPing(client, id: Int64(index))  // answered, so accepted and counted
            held.append(client)
        }
        let fifth = try RawSocket(supervisor.socket)
        let refusal = try #require(try fifth.readLine(), "the fifth connection got no reply")
        expectError(try json(refusal), code: "busy", id: .null)
        #expect(try fifth.readLine() == nil, "the refused connection should be closed")
        // As smartpollctl does it: the request is written first; the refusal is still read.
        let sixth = try RawSocket(supervisor.socket)
        _ = sixth.send(#"{"id":5,"cmd":"ping"}"# + "\n")
        expectError(try sixth.reply(), code: "busy", id: .null)
        #expect(try sixth.readLine() == nil)

        held[0].close()
        // A barrier: once another held connection is answered, the supervisor has seen the
        // hang-up that came before it (level-triggered epoll reports it in the same or an
        // earlier batch).
        try expectPing(held[1], id: 10)
        try expectPing(try RawSocket(supervisor.socket), id: 11)
        try expectPing(held[3], id: 12)
    }

    // MARK: - smartpoll-supervisor's command line

    @Test func checkReportsBadConfigurationsWithExitStatus78() throws {
        let folder = try TemporaryFolder()
        let missing = folder.path + "/missing.json"
        let absent = try runCommand(Binaries.supervisor, ["--check", "--config", missing])
        #expect(absent.status == 78)
        #expect(absent.error.contains(missing), "\(absent.error)")

        let invalid = folder.path + "/invalid.json"
        try "{\n  \"tasks\": {\"a\": {\"command\": [\"true\"]}}\n  \"x\": 1\n}\n".write(
            toFile: invalid, atomically: true, encoding: .utf8)
        let broken = try runCommand(Binaries.supervisor, ["--check", "--config", invalid])
        #expect(broken.status == 78)
        #expect(broken.error.contains(invalid))
        #expect(broken.error.contains("line 3, column"), "\(broken.error)")

        let unknown = folder.path + "/unknown.json"
        try #"{"tasks": {"a": {"command": ["true"], "evrey": "10s"}}}"#.write(
            toFile: unknown, atomically: true, encoding: .utf8)
        let typo = try runCommand(Binaries.supervisor, ["--check", "--config", unknown])
        #expect(typo.status == 78)
        #expect(typo.error.contains("\(unknown): tasks.a.evrey: unknown key"), "\(typo.error)")

        let valid = folder.path + "/valid.json"
        try
            #"{"tasks": {"a": {"command": ["true"]}, "b": {"command": ["true"]}}, "hooks": {"h": {"schedule": {"a": "0s"}}}}"#
            .write(toFile: valid, atomically: true, encoding: .utf8)
        let good = try runCommand(
            Binaries.supervisor, ["--check", "--config", valid, "--socket", folder.path + "/s.sock"])
        #expect(good.status == 0, "\(good.error)")
        #expect(
            good.output == """
                \(valid): valid: 2 tasks, 1 hook; socket \(folder.path)/s.sock
                  a  runs when scheduled: hook h
                  b  runs only when asked (smartpollctl run or schedule, or a directive)

                """)
        #expect(!FileManager.default.fileExists(atPath: folder.path + "/s.sock"), "--check must not listen")
    }

    @Test func withoutAnyConfigurationTheSupervisorNamesThePlacesTried() throws {
        let folder = try TemporaryFolder()
        let work = folder.path + "/work"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: false)
        // SMARTPOLL_CONFIG empty counts as unset; XDG_CONFIG_HOME and HOME lead nowhere.
        let environment = [
            "PATH": "/usr/bin:/bin",
            "SMARTPOLL_CONFIG": "",
            "XDG_CONFIG_HOME": folder.path + "/xdg",
            "HOME": folder.path + "/home",
        ]
        // Run it from an empty folder, so that ./smartpoll.json does not exist either.
        let inEmptyFolder = ["-c", #"cd "$1" && exec "$2" --check"#, "sh", work, Binaries.supervisor]
        let result = try runCommand("/bin/sh", inEmptyFolder, environment: environment)
        let etc = "/etc/smartpoll/smartpoll.json"
        if FileManager.default.fileExists(atPath: etc) {
            // This machine has a system-wide configuration, so "none anywhere" cannot be set up:
            // only check that the search reached it (after the places that do not exist).
            #expect(result.error.contains(etc) || result.output.hasPrefix(etc), "\(result)")
        } else {
            #expect(result.status == 78)
            let lines = result.error.split(separator: "\n", omittingEmptySubsequences: false)
            #expect(lines.count == 2 && lines[1].isEmpty, "one line expected: \(result.error)")
            for place in ["./smartpoll.json", folder.path + "/xdg/smartpoll/smartpoll.json", etc] {
                #expect(result.error.contains(place), "\(place) not named in \(result.error)")
            }

            // Without XDG_CONFIG_HOME, ~/.config is searched instead.
            var withoutXDG = environment
            withoutXDG["XDG_CONFIG_HOME"] = nil
            let home = try runCommand("/bin/sh", inEmptyFolder, environment: withoutXDG)
            #expect(home.status == 78)
            #expect(home.error.contains(folder.path + "/home/.config/smartpoll/smartpoll.json"), "\(home.error)")
        }

        // SMARTPOLL_CONFIG naming a file that does not exist: 78, and that file is named.
        var named = environment
        named["SMARTPOLL_CONFIG"] = folder.path + "/nothing/smartpoll.json"
        let missing = try runCommand("/bin/sh", inEmptyFolder, environment: named)
        #expect(missing.status == 78)
        #expect(missing.error.contains(folder.path + "/nothing/smartpoll.json"), "\(missing.error)")
    }

    @Test func aSecondSupervisorIsRefusedAndAStaleSocketIsReplaced() throws {
        let first = try SupervisorHarness(Self.minimal)
        let second = try runCommand(
            Binaries.supervisor, ["--config", first.configurationPath, "--socket", first.socket])
        #expect(second.status != 0)
        #expect(second.error.contains("another supervisor is already listening on \(first.socket)"), "\(second.error)")
        let ping = try json(try first.ctl("--json", "ping").output)
        #expect(ping["pid"] == .int(Int64(first.pid)))
        #expect(first.isRunning)

        let killed = try SupervisorHarness(Self.minimal)
        #expect(kill(killed.pid, SIGKILL) == 0)
        _ = try killed.waitForExit()
        #expect(FileManager.default.fileExists(atPath: killed.socket), "SIGKILL should leave the socket file")
        #expect(try killed.ctl("ping").status == 69)
        let replacement = try SupervisorHarness(Self.minimal, arguments: ["--socket", killed.socket])
        let answered = try json(try killed.ctl("--json", "ping").output)
        #expect(answered["pid"] == .int(Int64(replacement.pid)))
    }

    @Test func sigtermEndsRunningTasksRemovesTheSocketAndExitsZero() throws {
        let supervisor = try SupervisorHarness(
            """
            {"tasks": {"sleeper": {"command": ["sleep", "100"]}}}
            """)
        let events = try supervisor.watch(["sleeper"])
        let waiter = try RawSocket(supervisor.socket)
        #expect(waiter.send(#"{"id":"w","cmd":"run","task":"sleeper","wait":true}"# + "\n"))
        var startedPid: Int?
        try events.until { event in
            if case .taskStarted(_, _, let pid, _, _) = event.kind { startedPid = pid; return true }
            return false
        }
        let status = try json(try supervisor.ctl("--json", "status", "sleeper").output)
        let row = try #require(status["tasks"]?.arrayValue?.first?.objectValue)
        let pid = try #require(row["pid"]?.int64Value, "no pid in \(row)")
        #expect(Int(pid) == startedPid)
        #expect(kill(pid_t(pid), 0) == 0)

        #expect(kill(supervisor.pid, SIGTERM) == 0)
        // A run --wait in flight gets the run's outcome (ended by SIGTERM) before the close.
        let outcome = try waiter.reply()
        #expect(outcome["id"] == .string("w") && outcome["signal"] == .int(Int64(SIGTERM)), "\(outcome)")
        #expect(outcome["succeeded"] == .bool(false))
        #expect(try waiter.readLine() == nil)
        #expect(try supervisor.waitForExit() == 0)
        #expect(!FileManager.default.fileExists(atPath: supervisor.socket))
        // Nothing to wait on for a process that is not ours: poll, with a deadline.
        let deadline = Date().addingTimeInterval(10)
        var gone = false
        while Date() < deadline {
            if kill(pid_t(pid), 0) == -1 && errno == ESRCH { gone = true; break }
            usleep(10_000)
        }
        #expect(gone, "the task \(pid) outlived the supervisor")
    }

    @Test func aPeerWithAnotherUidIsRefused() throws {
        // uid 65534 must reach the socket (every parent traversable) and run smartpollctl. The
        // harness folder is under temporaryDirectory (/tmp, mode 1777, here); if that is not
        // traversable by others, the socket goes into a folder of this test's own instead.
        var arguments: [String] = []
        var ownFolder: TemporaryFolder?
        if !isReachableByOthers(FileManager.default.temporaryDirectory.path) {
            let folder = try TemporaryFolder(in: isReachableByOthers("/tmp") ? "/tmp" : "/var/tmp", mode: 0o755)
            arguments = ["--socket", folder.path + "/supervisor.sock"]
            ownFolder = folder
        }
        let supervisor = try SupervisorHarness(
            """
            {"socket_mode": "0666", "tasks": {"idle": {"command": ["true"]}}}
            """, arguments: arguments, folderMode: 0o755)
        let socket = ownFolder.map { $0.path + "/supervisor.sock" } ?? supervisor.socket
        chmod(supervisor.folder, 0o755)
        #expect(isReachableByOthers((socket as NSString).deletingLastPathComponent))
        var info = stat()
        #expect(stat(socket, &info) == 0 && info.st_mode & 0o777 == 0o666)
        var ctl = Binaries.ctl
        if !isReachableByOthers(ctl) {  // the binary too must be executable by others
            ctl = supervisor.folder + "/smartpollctl"
            try FileManager.default.copyItem(atPath: Binaries.ctl, toPath: ctl)
            chmod(ctl, 0o755)
        }
        let refused = try runCommand(
            "/usr/bin/setpriv",
            [
                "--reuid=65534", "--regid=65534", "--clear-groups", ctl, "--socket", socket, "ping",
            ])
        #expect(refused.status == 1, "\(refused)")
        #expect(refused.error.hasPrefix("smartpollctl: permission_denied: "), "\(refused.error)")
        #expect(refused.error.hasSuffix("\n") && refused.error.dropLast().contains("\n") == false)
        // Its own user still gets in, and the supervisor is unharmed.
        #expect(try runCommand(Binaries.ctl, ["--socket", socket, "ping"]).status == 0)
        withExtendedLifetime(ownFolder) {}
    }

    // MARK: - What a task sees and sends

    @Test func anOutputFloodIsCappedWithoutGrowingTheSupervisor() throws {
        let supervisor = try SupervisorHarness(
            """
            {"tasks": {"flood": {"command": ["head", "-c", "60000000", "/dev/zero"], "capture": 4096}}}
            """)
        let run = try supervisor.ctl("run", "flood", "--wait")
        #expect(run.status == 0, "\(run)")
        let reply = try json(try supervisor.ctl("--json", "result", "flood").output)
        #expect(reply["truncated"] == .bool(true))
        let output: [UInt8]
        if let encoded = reply["output_base64"]?.stringValue {
            output = try #require(Base64.decode(encoded))
        } else {
            output = Array(try #require(reply["output"]?.stringValue).utf8)
        }
        #expect(output.count == 4096)
        #expect(output.allSatisfy { $0 == 0 })
        let memory = try residentMemory(of: supervisor.pid)
        #expect(memory.current < Sanitizer.memory(64 << 20), "VmRSS \(memory.current >> 20) MiB")
        #expect(memory.peak < Sanitizer.memory(64 << 20), "VmHWM \(memory.peak >> 20) MiB")
        #expect(try supervisor.ctl("ping").status == 0)
    }

    @Test func aTaskSeesOnlyDescriptorsZeroToThree() throws {
        // `ls` lists the descriptors of the shell that started it, not its own. (A glob over
        // /proc/$$/fd would not do: expanding it opens the folder, one more descriptor.)
        let supervisor = try SupervisorHarness(
            """
            {"tasks": {"fds": {"command": ["sh", "-c", "ls /proc/$$/fd"]}}}
            """)
        // Connections the supervisor holds (a watcher among them) must not leak either.
        let bystanders = try (0..<3).map { _ in try RawSocket(supervisor.socket) }
        for (index, client) in bystanders.enumerated() { try expectPing(client, id: Int64(index)) }
        let watcher = try supervisor.watch()
        #expect(try supervisor.ctl("run", "fds", "--wait").status == 0)
        withExtendedLifetime((bystanders, watcher)) {}
        let result = try supervisor.ctl("result", "fds")
        #expect(result.output.split(separator: "\n").sorted() == ["0", "1", "2", "3"], "\(result.output)")
    }

    @Test func aTaskGetsItsSmartPollEnvironmentAndNullStdin() throws {
        let supervisor = try SupervisorHarness(
            """
            {"tasks": {"envy": {"command": ["sh", "-c",
              "echo \\"$SMARTPOLL_TASK $SMARTPOLL_RUN $SMARTPOLL_SOCKET $SMARTPOLL_HOOK_FD\\"; readlink /proc/$$/fd/0; cat; echo \\"cat=$?\\""]}}}
            """)
        let run = try json(try supervisor.ctl("--json", "run", "envy", "--wait").output)
        #expect(run["succeeded"] == .bool(true))
        let runID = try #require(run["run"]?.int64Value)
        #expect(runID > 0)
        let lines = try supervisor.ctl("result", "envy").output.split(separator: "\n", omittingEmptySubsequences: false)
            .map(String.init)
        #expect(lines == ["envy \(runID) \(supervisor.socket) 3", "/dev/null", "cat=0", ""])
        let again = try json(try supervisor.ctl("--json", "run", "envy", "--wait").output)
        #expect((again["run"]?.int64Value ?? 0) > runID, "run ids are unique")
    }
}

// MARK: - Helpers

/// Checks an error reply: `ok` false, the code, the echoed id and a message.
func expectError(
    _ reply: JSONObject, code: String, id: JSONValue, _ context: String = "",
    sourceLocation: SourceLocation = #_sourceLocation
) {
    #expect(reply["ok"] == .bool(false), "\(context): \(reply)", sourceLocation: sourceLocation)
    let error = reply["error"]?.objectValue
    #expect(error?["code"] == .string(code), "\(context): \(reply)", sourceLocation: sourceLocation)
    let message = error?["message"]?.stringValue ?? ""
    #expect(message.count > 0, "\(context): \(reply)", sourceLocation: sourceLocation)
    #expect(reply["id"] == id, "\(context): \(reply)", sourceLocation: sourceLocation)
}

/// Sends a ping and checks its reply.
func expectPing(_ client: RawSocket, id: Int64, sourceLocation: SourceLocation = #_sourceLocation) throws {
    #expect(client.send(#"{"id":\#(id),"cmd":"ping"}"# + "\n"), sourceLocation: sourceLocation)
    let reply = try client.reply()
    #expect(reply["ok"] == .bool(true) && reply["id"] == .int(id), "\(reply)", sourceLocation: sourceLocation)
}

/// Whether `path` and every directory above it have the execute (traverse) bit for others.
private func isReachableByOthers(_ path: String) -> Bool {
    var current = URL(fileURLWithPath: path)
    while true {
        var info = stat()
        guard stat(current.path, &info) == 0, info.st_mode & 0o001 != 0 else { return false }
        if current.path == "/" { return true }
        current.deleteLastPathComponent()
    }
}

/// VmRSS and VmHWM of a process, in bytes.
func residentMemory(of pid: Int32) throws -> (current: Int, peak: Int) {
    let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
    func value(_ key: String) throws -> Int {
        guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix(key + ":") }),
            let kilobytes = Int(line.dropFirst(key.count + 1).trimmingCharacters(in: .whitespaces).dropLast(3))
        else { throw HarnessError("no \(key) in /proc/\(pid)/status") }
        return kilobytes << 10
    }
    return (try value("VmRSS"), try value("VmHWM"))
}

/// A folder of the test's own, removed when released.
private final class TemporaryFolder {
    let path: String

    init(in parent: String = FileManager.default.temporaryDirectory.path, mode: mode_t = 0o700) throws {
        path = parent + "/smartpoll-e2e-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        chmod(path, mode)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// A raw, blocking Unix-socket connection: bytes out, lines in (with a deadline).
final class RawSocket {
    private let descriptor: Int32
    private var buffer: [UInt8] = []
    private var start = 0
    private var scanned = 0
    private var atEnd = false
    private var isClosed = false

    init(_ path: String) throws {
        let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw HarnessError("socket: \(String(cString: strerror(errno)))") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            Glibc.close(descriptor)
            throw HarnessError("socket path too long: \(path)")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard connected == 0 else {
            let reason = String(cString: strerror(errno))
            Glibc.close(descriptor)
            throw HarnessError("cannot connect to \(path): \(reason)")
        }
        // A supervisor that stops reading must not hang a test in send.
        var timeout = timeval(tv_sec: 20, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        self.descriptor = descriptor
    }

    deinit { close() }

    func close() {
        guard !isClosed else { return }
        isClosed = true
        Glibc.close(descriptor)
    }

    /// Ends the stream towards the peer (it reads end of file); replies can still be read.
    func shutdownWriting() {
        shutdown(descriptor, Int32(SHUT_WR))
    }

    /// Writes every byte; false when the peer closed (or the write timed out) first.
    @discardableResult
    func send(_ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes.withUnsafeBytes {
                Glibc.send(descriptor, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL))
            }
            if sent < 0 {
                if errno == EINTR { continue }
                return false
            }
            offset += sent
        }
        return true
    }

    @discardableResult
    func send(_ text: String) -> Bool { send(Array(text.utf8)) }

    /// Sends what the socket takes now, without waiting: the count (0 when it is full), or -1
    /// once the peer has closed the connection.
    func sendSome(_ bytes: ArraySlice<UInt8>) -> Int {
        let sent = bytes.withUnsafeBytes {
            Glibc.send(descriptor, $0.baseAddress!, $0.count, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT))
        }
        if sent >= 0 { return sent }
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1
    }

    /// Closes with a reset (SO_LINGER 0) instead of an orderly end of stream.
    func reset() {
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        close()
    }

    /// The next line without its newline; nil once the peer closed (or reset) the connection.
    func readLine(timeout: TimeInterval = 20) throws -> String? {
        let deadline = Date().addingTimeInterval(timeout)
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            if let newline = buffer[max(start, scanned)...].firstIndex(of: 10) {
                let line = String(decoding: buffer[start..<newline], as: UTF8.self)
                start = newline + 1
                scanned = start
                if start > 65_536 {
                    buffer.removeFirst(start)
                    start = 0
                    scanned = 0
                }
                return line
            }
            // A long line arrives in many reads: look for its end only in what is new.
            scanned = buffer.count
            if atEnd { return nil }
            let remaining = deadline.timeIntervalSinceNow
            guard remaining > 0 else { throw HarnessError("no line within \(timeout) s") }
            var entry = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            let ready = poll(&entry, 1, Int32(remaining * 1000) + 1)
            if ready < 0 && errno != EINTR { throw HarnessError("poll: \(String(cString: strerror(errno)))") }
            if ready <= 0 { continue }
            let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR || errno == EAGAIN { continue }
                if errno == ECONNRESET { atEnd = true; continue }
                throw HarnessError("read: \(String(cString: strerror(errno)))")
            }
            if count == 0 { atEnd = true; continue }
            buffer.append(contentsOf: chunk[..<count])
        }
    }

    /// The next line as a JSON object; throws at end of stream.
    func reply(timeout: TimeInterval = 20) throws -> JSONObject {
        guard let line = try readLine(timeout: timeout) else {
            throw HarnessError("the connection closed before a reply")
        }
        return try json(line)
    }
}
