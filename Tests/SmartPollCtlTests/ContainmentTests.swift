import Foundation
import Glibc
import SmartPollProtocol
import Testing

/// No process outlives its run (SPEC section 3, issue 12), whatever it does to escape: a new
/// session, a new process group, a double fork, a daemonizing helper; not after the run ends by
/// itself, nor after `cancel`, `stop` or `shutdown`, nor across a crash of the supervisor.
///
/// Survivors are found by a marker unique to the test in their argv (`sleep 41.<random>`), read
/// from /proc: a process that is a zombie or gone has no argv there.
@Suite(.endToEnd, .enabled(if: Containment.cgroupsUsable, "needs root and a cgroup2 mount"))
struct ContainmentTests {
    /// The modes the tests run in, each forced by configuration.
    static let modes = ["cgroup", "subreaper"]

    /// The ways a task's process can try to outlive its run, each starting `sleep MARKER` and
    /// exiting 0 soon after.
    static let escapes: [(name: String, command: @Sendable (String) -> [String])] = [
        ("new session", { ["sh", "-c", "setsid sleep \($0) & sleep 0.2"] }),
        ("job control", { ["sh", "-c", "set -m; sleep \($0) & sleep 0.2"] }),
        ("double fork", { ["sh", "-c", "(sleep \($0) &); sleep 0.2"] }),
        ("daemonizing helper", { ["sh", "-c", "setsid -f sleep \($0); sleep 0.2"] }),
        (
            "python start_new_session",
            {
                [
                    "python3", "-c",
                    "import subprocess, time; subprocess.Popen(['sleep', '\($0)'], start_new_session=True); time.sleep(0.2)",
                ]
            }
        ),
    ]

    private func configuration(_ mode: String, _ tasks: [String: [String]], extra: String = "") -> String {
        let entries = tasks.map { name, command in
            let argv = command.map { JSONValue.string($0).serialized() }.joined(separator: ", ")
            return #""\#(name)": {"command": [\#(argv)], "kill_grace": "1s", "on_failure": "continue"}"#
        }
        return #"{"containment": "\#(mode)", \#(extra) "tasks": {\#(entries.joined(separator: ", "))}}"#
    }

    @Test(arguments: modes)
    func nothingOfARunOutlivesItsEnd(mode: String) throws {
        let markers = Self.escapes.map { _ in Containment.marker() }
        var tasks: [String: [String]] = [:]
        for (index, escape) in Self.escapes.enumerated() { tasks["escape\(index)"] = escape.command(markers[index]) }
        let supervisor = try SupervisorHarness(configuration(mode, tasks))
        let status = try json(try supervisor.ctl("--json", "status").output)
        #expect(status["containment"]?.objectValue?["mode"] == .string(mode))
        for (index, escape) in Self.escapes.enumerated() {
            let result = try supervisor.ctl("run", "--wait", "escape\(index)")
            #expect(result.status == 0, "\(escape.name): \(result.error)")
            // The run is over: whatever it started is gone already, with no waiting.
            #expect(Containment.processes(marker: markers[index]).isEmpty, "\(escape.name) escaped its run")
        }
    }

    /// A run's end ends its own orphans while another run goes on, and leaves that run's
    /// processes alone (in subreaper mode the end looks below its own main process and the
    /// orphans the supervisor adopted, not below other runs' main processes).
    @Test(arguments: modes)
    func aRunsEndEndsItsOrphansAndNotAnotherRunningRunsProcesses(mode: String) throws {
        let long = Containment.marker()
        let orphan = Containment.marker()
        let supervisor = try SupervisorHarness(
            configuration(
                mode,
                [
                    "long": ["sh", "-c", "sleep \(long) & wait"],
                    "escape": ["sh", "-c", "(sleep \(orphan) &); sleep 0.2"],
                ]
            ))
        #expect(try supervisor.ctl("run", "long").status == 0)
        #expect(
            try Containment.eventually { !Containment.processes(marker: long).isEmpty }, "long's sleep never started")
        let result = try supervisor.ctl("run", "--wait", "escape")
        #expect(result.status == 0, "\(result.error)")
        #expect(Containment.processes(marker: orphan).isEmpty, "the orphan outlived its run")
        #expect(!Containment.processes(marker: long).isEmpty, "the end of one run killed another run's process")
        #expect(try supervisor.ctl("cancel", "long").status == 0)
        #expect(try Containment.eventually { Containment.processes(marker: long).isEmpty }, "cancel left long's sleep")
    }

    @Test(arguments: modes)
    func nothingOfACommandHookOutlivesIt(mode: String) throws {
        let marker = Containment.marker()
        let hook = #""hooks": {"h": {"command": ["sh", "-c", "setsid sleep \#(marker) & sleep 0.2"]}},"#
        let supervisor = try SupervisorHarness(configuration(mode, ["t": ["true"]], extra: hook))
        let events = try supervisor.watch()
        #expect(try supervisor.ctl("emit", "h").status == 0)
        try events.until { if case .hookRan("h") = $0.kind { true } else { false } }
        #expect(Containment.processes(marker: marker).isEmpty, "the hook's escapee outlived it")
    }

    @Test(arguments: modes)
    func cancelStopAndShutdownEndEveryProcessOfTheRun(mode: String) throws {
        let markers = (0..<3).map { _ in Containment.marker() }
        let tasks = Dictionary(
            uniqueKeysWithValues: markers.enumerated().map { index, marker in
                ("long\(index)", ["sh", "-c", "setsid sleep \(marker) & sleep 60"])
            })
        let supervisor = try SupervisorHarness(configuration(mode, tasks))
        let events = try supervisor.watch()
        func startAndFindEscapee(_ index: Int) throws {
            #expect(try supervisor.ctl("run", "long\(index)").status == 0)
            // No event says the grandchild exists: poll for it.
            #expect(try Containment.eventually { !Containment.processes(marker: markers[index]).isEmpty })
        }

        try startAndFindEscapee(0)
        #expect(try supervisor.ctl("cancel", "long0").status == 0)
        try events.finishes(of: "long0")
        #expect(Containment.processes(marker: markers[0]).isEmpty, "cancel left the escapee")

        try startAndFindEscapee(1)
        #expect(try supervisor.ctl("stop", "--wait").status == 0)
        #expect(Containment.processes(marker: markers[1]).isEmpty, "stop left the escapee")

        #expect(try supervisor.ctl("start").status == 0)
        try startAndFindEscapee(2)
        #expect(try supervisor.ctl("shutdown").status == 0)
        #expect(try supervisor.waitForExit() == 0)
        #expect(Containment.processes(marker: markers[2]).isEmpty, "shutdown left the escapee")
    }

    @Test(arguments: modes)
    func aRestartAfterACrashEndsThePreviousRunsProcessesBeforeTheNextRun(mode: String) throws {
        let marker = Containment.marker()
        // The main process outlasts the test's steps even on a loaded machine: the crash cuts
        // the run short (with `sleep 1`, a slow test saw the run end, and its leftover ended).
        let text = configuration(mode, ["crash": ["sh", "-c", "sleep \(marker) & sleep 30"]])
        var first: SupervisorHarness? = try SupervisorHarness(text)
        first!.keepsFolder = true
        let folder = first!.folder
        defer { try? FileManager.default.removeItem(atPath: folder) }
        #expect(try first!.ctl("run", "crash").status == 0)
        #expect(try Containment.eventually { !Containment.processes(marker: marker).isEmpty })
        let old = Containment.processes(marker: marker)
        let oldStarts = old.map(Containment.startTime)
        first!.signal(SIGKILL)
        _ = try first!.waitForExit()
        first = nil
        #expect(Containment.processes(marker: marker) == old, "the crash itself leaves the grandchild")

        let second = try SupervisorHarness(nil, folder: folder)
        // Listening means the cleanup is done, and no run has started yet.
        #expect(Containment.processes(marker: marker).isEmpty, "the previous life's run outlived the restart")
        #expect(second.logText.contains("previous run"), "the log says what was ended:\n\(second.logText)")
        #expect(try second.ctl("run", "crash").status == 0)
        #expect(try Containment.eventually { !Containment.processes(marker: marker).isEmpty })
        let new = Containment.processes(marker: marker)
        #expect(Set(new.map(Containment.startTime)).isDisjoint(with: Set(oldStarts)), "only the new run's")
    }

    @Test(arguments: modes)
    func twoSupervisorsUnderOneParentLeaveEachOthersRunsAlone(mode: String) throws {
        let (markerA, markerB) = (Containment.marker(), Containment.marker())
        let a = try SupervisorHarness(configuration(mode, ["a": ["sh", "-c", "setsid sleep \(markerA) & sleep 60"]]))
        let b = try SupervisorHarness(configuration(mode, ["b": ["sh", "-c", "setsid sleep \(markerB) & sleep 60"]]))
        #expect(try a.ctl("run", "a").status == 0)
        #expect(try b.ctl("run", "b").status == 0)
        #expect(try Containment.eventually { !Containment.processes(marker: markerA).isEmpty })
        #expect(try Containment.eventually { !Containment.processes(marker: markerB).isEmpty })
        let rootA = try json(try a.ctl("--json", "status").output)["containment"]?.objectValue?["root"]
        let rootB = try json(try b.ctl("--json", "status").output)["containment"]?.objectValue?["root"]
        if mode == "cgroup" {
            #expect(rootA != rootB && rootA != nil)
        } else {
            #expect(rootA == .null && rootB == .null)
        }

        // A crash and restart of one, then its shutdown: the other's run goes on untouched.
        a.keepsFolder = true
        let folder = a.folder
        defer { try? FileManager.default.removeItem(atPath: folder) }
        a.signal(SIGKILL)
        _ = try a.waitForExit()
        let again = try SupervisorHarness(nil, folder: folder)
        #expect(try again.ctl("shutdown").status == 0)
        _ = try again.waitForExit()
        #expect(Containment.processes(marker: markerA).isEmpty)
        #expect(!Containment.processes(marker: markerB).isEmpty, "one supervisor ended the other's run")
        let status = try json(try b.ctl("--json", "status", "b").output)
        #expect(status["tasks"]?.arrayValue?.first?.objectValue?["running"] == .bool(true))
    }

    @Test func cgroupModeRefusesToStartWithoutAUsableCgroupAndSaysWhy() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent(
            "smartpoll-e2e-\(UUID().uuidString.prefix(8))"
        ).path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        // A directory that is not a cgroup: the subtree is made, but it has no cgroup.kill.
        let text = configuration("cgroup", ["t": ["true"]], extra: #""cgroup_root": "\#(folder)","#)
        try text.write(toFile: folder + "/smartpoll.json", atomically: true, encoding: .utf8)
        let result = try runCommand(
            Binaries.supervisor, ["--config", folder + "/smartpoll.json", "--socket", folder + "/s.sock"])
        #expect(result.status == 1)
        #expect(result.error.contains("containment is \"cgroup\""), "\(result.error)")
        #expect(result.error.contains("cgroup.kill"), "\(result.error)")
        // The same in auto mode falls back to the subreaper, and says why.
        let auto = try SupervisorHarness(
            configuration("auto", ["t": ["true"]], extra: #""cgroup_root": "\#(folder)","#))
        #expect(auto.logText.contains("mode=subreaper"), "\(auto.logText)")
        #expect(
            try json(try auto.ctl("--json", "status").output)["containment"]?.objectValue?["mode"]
                == .string("subreaper"))
    }

    @Test func aReloadDoesNotChangeTheContainmentInForce() throws {
        let supervisor = try SupervisorHarness(configuration("cgroup", ["t": ["true"]]))
        try configuration("subreaper", ["t": ["true"]], extra: #""cgroup_root": "/sys/fs/cgroup/x","#)
            .write(toFile: supervisor.configurationPath, atomically: true, encoding: .utf8)
        let reply = try json(try supervisor.ctl("--json", "reload").output)
        #expect(reply["restart_needed"] == [.string("containment"), .string("cgroup_root")], "\(reply)")
        let status = try json(try supervisor.ctl("--json", "status").output)
        #expect(status["containment"]?.objectValue?["mode"] == .string("cgroup"))
    }

    /// Runs take empty cgroups (slots) and give them back once empty; a later run reuses one,
    /// and its CPU time is its own, not the slot's total. Shutdown removes the spare slots and
    /// the subtree.
    @Test func aLaterRunReusesAnEmptySlotAndCountsOnlyItsOwnCPUTime() throws {
        let show = "grep '^0::' /proc/self/cgroup"
        let spin = "python3 -c 'import time\nwhile time.process_time() < 0.3: pass'"
        let supervisor = try SupervisorHarness(
            configuration("cgroup", ["busy": ["sh", "-c", spin + "; " + show], "quick": ["sh", "-c", show]]))
        let events = try supervisor.watch()
        #expect(try supervisor.ctl("run", "busy", "--wait").status == 0)
        #expect(try supervisor.ctl("run", "quick", "--wait").status == 0)
        let busyFinish = try #require(try events.finishes(of: "busy").first)
        let quickFinish = try #require(try events.finishes(of: "quick").first)
        guard case .taskFinished(_, _, _, _, _, _, _, let busyCPU, _) = busyFinish.kind,
            case .taskFinished(_, _, _, _, _, _, _, let quickCPU, _) = quickFinish.kind
        else { throw HarnessError("not finishes: \(busyFinish) \(quickFinish)") }
        #expect(try #require(busyCPU) >= 290)
        #expect(try #require(quickCPU) < 100, "the slot's earlier CPU time was counted again: \(quickCPU ?? -1)")
        let busyCgroup = try supervisor.ctl("result", "busy").output
        let quickCgroup = try supervisor.ctl("result", "quick").output
        let root = try #require(
            try json(try supervisor.ctl("--json", "status").output)["containment"]?.objectValue?["root"]?
                .stringValue)
        #expect(busyCgroup.hasSuffix("/slot-0\n"), "\(busyCgroup)")
        #expect(busyCgroup == quickCgroup, "the second run did not reuse the empty slot")
        #expect(FileManager.default.fileExists(atPath: root + "/slot-0"), "a spare slot is kept")
        #expect(try supervisor.ctl("shutdown").status == 0)
        _ = try supervisor.waitForExit()
        #expect(!FileManager.default.fileExists(atPath: root), "shutdown leaves the subtree behind")
    }

    /// A run killed through `cgroup.kill` (a timeout whose process ignores SIGTERM) does not
    /// leave its slot to a later run: Linux 6.14 on kills every child later born in a cgroup that
    /// was killed once (`CLONE_INTO_CGROUP`, how runs enter their slots), so such a slot is
    /// removed and the later runs, here three, start and succeed in another.
    @Test func aSlotKilledOnceIsNotTheNextRunsDeathTrap() throws {
        let show = "grep '^0::' /proc/self/cgroup"
        let supervisor = try SupervisorHarness(
            #"{"containment": "cgroup", "tasks": {"#
                + #""stubborn": {"command": ["sh", "-c", "trap '' TERM; \#(show) >&2; sleep 30"], "timeout": "200ms", "kill_grace": "100ms", "on_failure": "continue"}, "#
                + #""quick": {"command": ["sh", "-c", "\#(show)"], "on_failure": "continue"}}}"#)
        let stubborn = try supervisor.ctl("run", "stubborn", "--wait")
        #expect(stubborn.status != 0, "the run that ignored SIGTERM was not killed: \(stubborn.output)")
        let last = try #require(
            try json(try supervisor.ctl("--json", "status", "stubborn").output)["tasks"]?.arrayValue?.first?
                .objectValue?["last"]?.objectValue)
        #expect(last["timed_out"]?.boolValue == true, "stubborn's run did not time out")
        let killed = try #require(last["stderr_tail"]?.stringValue?.split(separator: "\n").first)
        let root = try #require(
            try json(try supervisor.ctl("--json", "status").output)["containment"]?.objectValue?["root"]?
                .stringValue)
        let killedSlot = try #require(killed.split(separator: "/").last.map(String.init))
        #expect(killedSlot.hasPrefix("slot-"), "\(killed)")
        #expect(!FileManager.default.fileExists(atPath: root + "/" + killedSlot), "the killed slot was kept")
        for attempt in 1...3 {
            let quick = try supervisor.ctl("run", "quick", "--wait")
            #expect(quick.status == 0, "run \(attempt) after the kill: \(quick.output) \(quick.error)")
            let cgroup = try supervisor.ctl("result", "quick").output
            #expect(cgroup.contains("/slot-"), "run \(attempt) was not in a slot: \(cgroup)")
            #expect(!cgroup.hasSuffix("/" + killedSlot + "\n"), "run \(attempt) reused the killed slot")
        }
        #expect(!supervisor.logText.contains("through cgroup.procs from now on"), "births were turned off")
    }

    /// A launch that fails leaves its slot empty, and the slot goes to the next run (a kill, and
    /// so a new slot, is only for a slot with something in it).
    @Test func aFailedLaunchGivesItsEmptySlotToTheNextRun() throws {
        let show = "grep '^0::' /proc/self/cgroup"
        let supervisor = try SupervisorHarness(
            configuration("cgroup", ["missing": ["/nonexistent/smartpoll-program"], "quick": ["sh", "-c", show]]))
        #expect(try supervisor.ctl("run", "missing", "--wait").status != 0)
        #expect(try supervisor.ctl("run", "quick", "--wait").status == 0)
        let cgroup = try supervisor.ctl("result", "quick").output
        #expect(cgroup.hasSuffix("/slot-0\n"), "the empty slot was not reused: \(cgroup)")
    }

    @Test(arguments: modes)
    func cpuTimeOfABusyRunIsPlausibleAgainstItsWallTime(mode: String) throws {
        let busy = "import time\nwhile time.process_time() < 0.3: pass"
        let supervisor = try SupervisorHarness(configuration(mode, ["busy": ["python3", "-c", busy]]))
        let events = try supervisor.watch()
        #expect(try supervisor.ctl("run", "busy").status == 0)
        let finish = try #require(try events.finishes(of: "busy").first)
        guard case .taskFinished(_, _, _, _, _, let succeeded, let wall, let cpu, _) = finish.kind else {
            throw HarnessError("not a finish: \(finish)")
        }
        #expect(succeeded)
        let cpuMilliseconds = try #require(cpu, "task_finished has no cpu_ms")
        let processors = Double(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        #expect(cpuMilliseconds >= 290, "the task spun for 300 ms of CPU time")
        #expect(cpuMilliseconds <= wall * processors + 50, "more CPU time than the wall time allows")
        let last = try json(try supervisor.ctl("--json", "status", "busy").output)["tasks"]?.arrayValue?.first?
            .objectValue?["last"]?.objectValue
        #expect(last?["cpu_ms"]?.doubleValue == cpuMilliseconds)
    }
}

/// Finding a test's processes, and whether cgroups can be used here.
enum Containment {
    /// Root, and a cgroup2 file system mounted (as the supervisor looks for it).
    static let cgroupsUsable: Bool = {
        guard getuid() == 0, let mounts = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)
        else { return false }
        return mounts.split(separator: "\n").contains { $0.contains(" - cgroup2 ") }
    }()

    /// Removes the cgroup subtree of the supervisor named by `identity` (its state_dir, or its
    /// socket without one) under this process's cgroup, and the run cgroups in it, if they are
    /// empty (rmdir refuses them otherwise).
    static func removeSubtree(identity: String) {
        guard cgroupsUsable, let own = ownCgroupDirectory() else { return }
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in identity.utf8 {
            hash ^= UInt64(byte)
            hash &*= 0x100_0000_01b3
        }
        let digits = String(hash, radix: 16)
        let subtree = own + "/smartpoll-" + String(repeating: "0", count: 16 - digits.count) + digits
        for run in (try? FileManager.default.contentsOfDirectory(atPath: subtree)) ?? [] where run.hasPrefix("slot-") {
            rmdir(subtree + "/" + run)
        }
        rmdir(subtree)
    }

    /// This process's cgroup directory in the unified hierarchy (the cgroup2 mount joined with
    /// the `0::` line of /proc/self/cgroup), or nil.
    static func ownCgroupDirectory() -> String? {
        guard let cgroups = try? String(contentsOfFile: "/proc/self/cgroup", encoding: .utf8),
            let mounts = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8),
            let line = cgroups.split(separator: "\n").first(where: { $0.hasPrefix("0::") })
        else { return nil }
        let own = String(line.dropFirst(3))
        for mount in mounts.split(separator: "\n") {
            let halves = mount.components(separatedBy: " - ")
            guard halves.count == 2, halves[1].hasPrefix("cgroup2 ") else { continue }
            let fields = halves[0].split(separator: " ")
            guard fields.count >= 5 else { continue }
            let root = String(fields[3])
            guard root == "/" || own.hasPrefix(root) else { continue }
            let relative = root == "/" ? own : String(own.dropFirst(root.count))
            return String(fields[4]) + (relative == "/" ? "" : relative)
        }
        return nil
    }

    /// A `sleep` argument no other test uses: 41 seconds and a random fraction.
    static func marker() -> String {
        "41.\(UInt32.random(in: 100_000_000...999_999_999))"
    }

    /// The live (not zombie) processes whose argv has `marker` as an argument.
    static func processes(marker: String) -> [Int32] {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        return entries.compactMap(Int32.init).filter { pid in
            guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
            return data.split(separator: 0).contains { String(decoding: $0, as: UTF8.self) == marker }
        }.sorted()
    }

    /// The start time of a process in clock ticks since boot (field 22 of /proc/PID/stat), or 0.
    static func startTime(_ pid: Int32) -> UInt64 {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return 0 }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        return fields.count > 19 ? UInt64(fields[19]) ?? 0 : 0
    }

    /// Polls `condition` until it holds or `timeout` passes (only where no event says so).
    static func eventually(_ timeout: TimeInterval = 10, _ condition: () throws -> Bool) throws -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if try condition() { return true }
            usleep(10_000)
        }
        return try condition()
    }
}
