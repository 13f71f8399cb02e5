import Foundation
import SmartPollClient
import SmartPollProtocol
import Testing

/// What the supervisor does with a `state_dir` someone else could write or tamper with, and with
/// files that are not what they should be (issue 13, cases 5, 6 and 8): it never blocks on them,
/// never follows them, refuses a shared folder at start, and never hands a run id out twice,
/// even across a crash while its disk was full.
@Suite(.endToEnd)
struct StateFileSafetyTests {
    static let isRoot = getuid() == 0

    private func freshFolder() throws -> String {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent(
            "smartpoll-e2e-\(UUID().uuidString.prefix(8))"
        ).path
        try FileManager.default.createDirectory(
            atPath: folder + "/state", withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        return folder
    }

    private func statusRow(_ supervisor: SupervisorHarness, _ task: String) throws -> TaskStatus {
        guard case .status(let status) = try supervisor.call(.status(tasks: [task])).body,
            let row = status.tasks.first
        else { throw HarnessError("no status reply") }
        return row
    }

    private func stateFile(_ supervisor: SupervisorHarness) throws -> StateFileStatus? {
        guard case .status(let status) = try supervisor.call(.status(tasks: nil)).body else {
            throw HarnessError("no status reply")
        }
        return status.stateFile
    }

    /// Runs `task` and returns the id of the run.
    private func run(_ supervisor: SupervisorHarness, _ task: String) throws -> Int {
        guard case .runFinished(let outcome) = try supervisor.call(.run(task: task, wait: true)).body else {
            throw HarnessError("no run reply")
        }
        return outcome.run
    }

    private func eventually(_ timeout: TimeInterval = 10, _ condition: () throws -> Bool) throws -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if try condition() { return true }
            usleep(10_000)
        }
        return try condition()
    }

    @Test func aFIFOAtTheStateFileIsMovedAsideAndTheSupervisorAnswers() throws {
        let folder = try freshFolder()
        #expect(mkfifo(folder + "/state/state.json", 0o600) == 0)
        let supervisor = try SupervisorHarness(
            #"{"state_dir": "$DIR/state", "tasks": {"t": {"command": ["echo", "ok"]}}}"#, folder: folder)
        #expect(try supervisor.ctl("ping").status == 0)
        #expect(
            supervisor.logText.contains(
                "\(folder)/state/state.json is unusable (cannot read it: it is a FIFO, not a regular file); "
                    + "moved it aside to \(folder)/state/state.json.corrupt-"))
        #expect(try eventually { try stateFile(supervisor)?.saved != nil && stateFile(supervisor)?.error == nil })
    }

    @Test func aFIFOAtAResultFileIsMovedAsideAndOnlyThatResultIsLost() throws {
        let first = try SupervisorHarness(
            #"{"state_dir": "$DIR/state", "tasks": {"t": {"command": "# + FileResult.command
                + #"}, "u": {"command": ["echo", "u"]}}}"#)
        first.keepsFolder = true
        let runT = try run(first, "t")
        #expect(try run(first, "u") > runT)
        first.signal(SIGTERM)
        _ = try first.waitForExit()
        let resultFile = first.path("state/results/t.\(runT)")
        #expect(unlink(resultFile) == 0 && mkfifo(resultFile, 0o600) == 0)
        let second = try SupervisorHarness(nil, folder: first.folder)
        #expect(try second.ctl("ping").status == 0)
        #expect(
            second.logText.contains(
                "\(resultFile) is unusable (cannot be read: it is a FIFO, not a regular file); "
                    + "moved it aside to \(resultFile).corrupt; task t starts without its result"))
        #expect(try second.ctl("result", "u").output == "u\n", "the other result (inline) is kept")
    }

    @Test func aStateDirectoryOthersCanWriteIsRefusedAtStart() throws {
        let folder = try freshFolder()
        try #"{"state_dir": "\#(folder)/state", "tasks": {"t": {"command": ["true"]}}}"#.write(
            toFile: folder + "/smartpoll.json", atomically: true, encoding: .utf8)
        for mode in [0o777, 0o1777, 0o770] as [mode_t] {
            #expect(chmod(folder + "/state", mode) == 0)
            let result = try runCommand(
                Binaries.supervisor, ["--config", folder + "/smartpoll.json", "--socket", folder + "/s.sock"])
            let who = mode & 0o002 != 0 ? "everyone" : "its group"
            #expect(result.status == 1, "mode \(String(mode, radix: 8)): \(result)")
            #expect(
                result.error.contains(
                    "refusing the state directory \(folder)/state: it is writable by \(who) "
                        + "(mode 0\(String(mode, radix: 8))), who could replace the state files"), "\(result.error)")
            #expect(!FileManager.default.fileExists(atPath: folder + "/state/state.json"))
        }
        try? FileManager.default.removeItem(atPath: folder)
    }

    @Test func aStateDirectoryThatCannotBeOpenedAtStartIsRefusedRatherThanForgotten() throws {
        let folder = try freshFolder()
        // A results folder that is a file: the directory and its state.json cannot be used.
        try FileManager.default.createDirectory(atPath: folder + "/state", withIntermediateDirectories: true)
        chmod(folder + "/state", 0o700)
        try "{}".write(toFile: folder + "/state/results", atomically: true, encoding: .utf8)
        try #"{"state_dir": "\#(folder)/state", "tasks": {"t": {"command": ["true"]}}}"#.write(
            toFile: folder + "/smartpoll.json", atomically: true, encoding: .utf8)
        let result = try runCommand(
            Binaries.supervisor, ["--config", folder + "/smartpoll.json", "--socket", folder + "/s.sock"])
        #expect(result.status == 1, "\(result)")
        #expect(result.error.contains("cannot open \(folder)/state/results"), "\(result.error)")
        try? FileManager.default.removeItem(atPath: folder)
    }

    @Test func aSymbolicLinkPlantedAtATemporaryNameDoesNotStopWrites() throws {
        let supervisor = try SupervisorHarness(
            #"{"state_dir": "$DIR/state", "tasks": {"t": {"command": ["echo", "ok"]}}}"#)
        #expect(try eventually { try stateFile(supervisor)?.saved != nil })
        let outside = supervisor.path("outside")
        try "mine\n".write(toFile: outside, atomically: true, encoding: .utf8)
        for name in ["state.json.tmp", "journal.tmp"] {
            #expect(symlink(outside, supervisor.path("state/" + name)) == 0)
        }
        let runID = try run(supervisor, "t")
        #expect(try stateFile(supervisor)?.error == nil)
        supervisor.keepsFolder = true
        supervisor.signal(SIGKILL)
        _ = try supervisor.waitForExit()
        let second = try SupervisorHarness(nil, folder: supervisor.folder)
        #expect(try statusRow(second, "t").last?.run == runID, "the run was saved")
        #expect(try second.ctl("result", "t").output == "ok\n")
        #expect(try String(contentsOfFile: outside, encoding: .utf8) == "mine\n", "never written through")
        #expect(
            second.logText.contains("state: removed \(second.path("state/state.json.tmp")), it was a symbolic link"))
    }

    /// Item 8a: run ids handed out while writes failed (a full disk) are not handed out again
    /// after a crash. As root, a tiny tmpfs fills up; otherwise only the crash is tested.
    @Test func runIDsNeverRepeatAcrossACrashEvenWhenTheDiskWasFull() throws {
        let folder = try freshFolder()
        let state = folder + "/state"
        var mounted = false
        if Self.isRoot {
            let mount = try runCommand("/bin/mount", ["-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs", state])
            mounted = mount.status == 0
            #expect(mounted, "mount: \(mount.error)")
        }
        defer {
            if mounted { _ = try? runCommand("/bin/umount", ["-l", state]) }
            try? FileManager.default.removeItem(atPath: folder)
        }
        // A result file per run: appends of small records might still fit the journal's last page.
        let configuration = #"{"state_dir": "$DIR/state", "tasks": {"t": {"command": "# + FileResult.command + "}}}"
        var handedOut: [Int] = []
        do {
            let first = try SupervisorHarness(configuration, folder: folder)
            first.keepsFolder = true
            handedOut.append(try run(first, "t"))
            if mounted {
                // Fill the file system: every later write fails (ENOSPC).
                _ = try runCommand("/bin/sh", ["-c", "dd if=/dev/zero of=\(state)/fill bs=4k 2>/dev/null; sync"])
                handedOut.append(try run(first, "t"))
                handedOut.append(try run(first, "t"))
                #expect(try eventually { try stateFile(first)?.error?.contains("No space left on device") == true })
            } else {
                handedOut.append(try run(first, "t"))
            }
            first.signal(SIGKILL)
            _ = try first.waitForExit()
        }
        if mounted { #expect(unlink(state + "/fill") == 0) }
        let second = try SupervisorHarness(nil, folder: folder)
        second.keepsFolder = true
        let after = try run(second, "t")
        #expect(after > handedOut.max()!, "run \(after) after a crash; handed out before: \(handedOut)")
        second.signal(SIGKILL)
        _ = try second.waitForExit()
        let third = try SupervisorHarness(nil, folder: folder)
        third.keepsFolder = true
        #expect(try run(third, "t") > after)
    }

    /// Item 8b: failures above runs cannot come from a supervisor: the file is moved aside.
    @Test func aStateFileWhoseCountersContradictEachOtherIsMovedAside() throws {
        let folder = try freshFolder()
        let text =
            #"{"format":"smartpoll-state","version":1,"written":"2026-11-30T01:44:32.123Z","pid":1,"last_run":5,"#
            + #""tasks":{"t":{"runs":1,"failures":7,"consecutive_failures":0,"next":null,"interrupted_run":null,"#
            + #""last":null,"result":null}}}"#
        try text.write(toFile: folder + "/state/state.json", atomically: true, encoding: .utf8)
        let supervisor = try SupervisorHarness(
            #"{"state_dir": "$DIR/state", "tasks": {"t": {"command": ["true"]}}}"#, folder: folder)
        #expect(
            supervisor.logText.contains(
                "\(folder)/state/state.json is unusable (its counters contradict each other: task \"t\" has more "
                    + "failures (7) than runs (1)); moved it aside"), "\(supervisor.logText)")
        #expect(try statusRow(supervisor, "t").failures == 0)
    }
}
