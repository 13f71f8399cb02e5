import Foundation
import Glibc
import Testing

/// Privilege and trust (SPEC sections 3, 7 and 8): tasks as another user, the socket's folder,
/// a symbolic link in the socket's place, and no shell between a task's argv and its program.
/// Runs as root in CI; where root is needed, the non-root case asserts what a non-root
/// supervisor does instead.
@Suite(.endToEnd)
struct SecurityTests {
    static let isRoot = getuid() == 0

    // MARK: - Tasks as another user

    @Test func aTaskRunsAsItsUserAndGroupWithoutSupplementaryGroups() throws {
        let configuration = """
            {"tasks": {
              "as-nobody": {"command": ["sh", "-c", "id -u; id -g; id -G; grep '^Groups:' /proc/self/status"],
                            "user": "nobody", "group": "nogroup", "cwd": "/"},
              "as-root": {"command": ["id", "-u"]}
            }}
            """
        guard Self.isRoot else {
            let folder = try ScratchFolder()
            try folder.write("smartpoll.json", configuration)
            let refused = try runCommand(
                Binaries.supervisor, ["--config", folder.path + "/smartpoll.json", "--socket", folder.path + "/s.sock"])
            #expect(refused.status == 78)
            #expect(
                refused.error.contains("tasks.as-nobody.user: only a supervisor running as root"), "\(refused.error)")
            return
        }
        let supervisor = try SupervisorHarness(configuration)
        #expect(try supervisor.ctl("run", "as-nobody", "--wait").status == 0)
        let lines = try supervisor.ctl("result", "as-nobody").output.split(separator: "\n")
            .map { $0.trimmingCharacters(in: .whitespaces) }
        #expect(lines == ["65534", "65534", "65534", "Groups:"], "id -u, id -g, id -G (no supplementary group)")
        // The other task keeps the supervisor's user.
        #expect(try supervisor.ctl("run", "as-root", "--wait").status == 0)
        #expect(try supervisor.ctl("result", "as-root").output == "0\n")
    }

    @Test func aTaskAsAnotherUserEndsWithTheSupervisor() throws {
        // Changing the user clears the parent-death signal, so the spawn sets it afterwards.
        guard Self.isRoot else { return #expect(!Self.isRoot, "needs root to run a task as nobody") }
        let supervisor = try SupervisorHarness(
            """
            {"tasks": {"sleeper": {"command": ["sleep", "100"], "user": "nobody"}}}
            """)
        let events = try supervisor.watch(["sleeper"])
        #expect(try supervisor.ctl("run", "sleeper").status == 0)
        var pid: Int32 = 0
        try events.until { event in
            if case .taskStarted(_, _, let started, _, _) = event.kind { pid = Int32(started); return true }
            return false
        }
        #expect(try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8).contains("Uid:\t65534"))
        supervisor.signal(SIGKILL)  // no shutdown: only the parent-death signal can end it
        #expect(waitUntilGone(pid, seconds: 10), "task \(pid), run as nobody, outlived the supervisor")
    }

    @Test func aConfigurationWithUserIsRefusedUnlessTheSupervisorIsRoot() throws {
        let folder = try ScratchFolder(mode: 0o755)
        try folder.write("smartpoll.json", #"{"tasks": {"t": {"command": ["true"], "group": "nogroup"}}}"#)
        let file = folder.path + "/smartpoll.json"
        let expectedForOthers =
            "smartpoll-supervisor: \(file): tasks.t.group: only a supervisor running as root can run a task as another user or group"
        if Self.isRoot {
            let check = try runCommand(
                Binaries.supervisor, ["--check", "--config", file, "--socket", folder.path + "/s.sock"])
            #expect(check.status == 0, "\(check.error)")
            let asNobody = try runCommand(
                "/usr/bin/setpriv",
                [
                    "--reuid=65534", "--regid=65534", "--clear-groups", try reachableCopyOfSupervisor(in: folder),
                    "--check", "--config", file, "--socket", folder.path + "/s.sock",
                ])
            #expect(asNobody.status == 78)
            #expect(asNobody.error.hasPrefix(expectedForOthers + " (this one runs as uid 65534)"), "\(asNobody.error)")
        } else {
            let check = try runCommand(Binaries.supervisor, ["--check", "--config", file])
            #expect(check.status == 78)
            #expect(check.error.hasPrefix(expectedForOthers), "\(check.error)")
        }
    }

    // MARK: - The socket's folder and path

    @Test func aSocketFolderOthersCanWriteIsRefused() throws {
        let folder = try ScratchFolder()
        try folder.write("smartpoll.json", #"{"tasks": {"t": {"command": ["true"]}}}"#)
        for (mode, who) in [(0o770, "its group"), (0o777, "everyone"), (0o1777, "everyone"), (0o720, "its group")]
            as [(mode_t, String)]
        {
            let socketFolder = folder.path + "/sock-\(String(mode, radix: 8))"
            #expect(mkdir(socketFolder, 0o700) == 0 && chmod(socketFolder, mode) == 0)
            let result = try runCommand(
                Binaries.supervisor,
                ["--config", folder.path + "/smartpoll.json", "--socket", socketFolder + "/s.sock"])
            #expect(result.status == 1, "mode \(String(mode, radix: 8)): \(result)")
            #expect(
                result.error
                    == "smartpoll-supervisor: refusing the socket's folder \(socketFolder): it is writable by \(who) (mode 0\(String(mode, radix: 8))), who could replace the socket; use a folder of its own that only its owner can write (mode 0700)\n"
            )
            #expect(!FileManager.default.fileExists(atPath: socketFolder + "/s.sock"))
        }
        // A folder owned by another user: only root can make one here.
        let foreign = folder.path + "/foreign"
        #expect(mkdir(foreign, 0o755) == 0)
        if Self.isRoot {
            #expect(chown(foreign, 65534, 65534) == 0)
            let result = try runCommand(
                Binaries.supervisor, ["--config", folder.path + "/smartpoll.json", "--socket", foreign + "/s.sock"])
            #expect(result.status == 1)
            #expect(
                result.error.contains(
                    "refusing the socket's folder \(foreign): it belongs to uid 65534, not to uid 0 or root"),
                "\(result.error)")
        } else {
            // The folders this user owns are accepted: the same run, in a 0755 folder of its own.
            let result = try runCommand(
                Binaries.supervisor,
                ["--check", "--config", folder.path + "/smartpoll.json", "--socket", foreign + "/s.sock"])
            #expect(result.status == 0)
        }
        // The folder the supervisor creates itself is 0700, and accepted.
        let created = try SupervisorHarness(
            #"{"tasks": {"t": {"command": ["true"]}}}"#, arguments: ["--socket", folder.path + "/made/s.sock"])
        var info = stat()
        #expect(stat(folder.path + "/made", &info) == 0 && info.st_mode & 0o7777 == 0o700)
        #expect(try runCommand(Binaries.ctl, ["--socket", folder.path + "/made/s.sock", "ping"]).status == 0)
        withExtendedLifetime(created) {}
    }

    @Test func aSymbolicLinkOrAFileAtTheSocketPathIsNeitherFollowedNorReplaced() throws {
        let folder = try ScratchFolder()
        try folder.write("smartpoll.json", #"{"tasks": {"t": {"command": ["true"]}}}"#)
        try folder.write("target", "precious\n")
        chmod(folder.path + "/target", 0o640)
        let socket = folder.path + "/s.sock"
        #expect(symlink(folder.path + "/target", socket) == 0)
        let linked = try runCommand(
            Binaries.supervisor, ["--config", folder.path + "/smartpoll.json", "--socket", socket])
        #expect(linked.status == 1)
        #expect(
            linked.error
                == "smartpoll-supervisor: \(socket) exists and is a symbolic link; refusing to follow or replace it (remove it if it is yours)\n"
        )
        var info = stat()
        #expect(lstat(socket, &info) == 0 && info.st_mode & S_IFMT == S_IFLNK, "the link is still there")
        #expect(
            stat(folder.path + "/target", &info) == 0 && info.st_mode & 0o7777 == 0o640,
            "the target's mode is unchanged")
        #expect(try String(contentsOfFile: folder.path + "/target", encoding: .utf8) == "precious\n")

        // A link to a live supervisor's socket is not taken for that supervisor either.
        let live = try SupervisorHarness(#"{"tasks": {"t": {"command": ["true"]}}}"#)
        let toLive = folder.path + "/live.sock"
        #expect(symlink(live.socket, toLive) == 0)
        let second = try runCommand(
            Binaries.supervisor, ["--config", folder.path + "/smartpoll.json", "--socket", toLive])
        #expect(second.status == 1)
        #expect(second.error.contains("\(toLive) exists and is a symbolic link"), "\(second.error)")
        #expect(try live.ctl("ping").status == 0)

        // A regular file is not replaced.
        let file = folder.path + "/file.sock"
        try folder.write("file.sock", "mine\n")
        let onFile = try runCommand(
            Binaries.supervisor, ["--config", folder.path + "/smartpoll.json", "--socket", file])
        #expect(onFile.status == 1)
        #expect(onFile.error.contains("\(file) exists and is a regular file"), "\(onFile.error)")
        #expect(try String(contentsOfFile: file, encoding: .utf8) == "mine\n")
    }

    // MARK: - No shell

    @Test func argumentsReachTheProgramUninterpretedAndEnvironmentValuesPassThrough() throws {
        let supervisor = try SupervisorHarness(
            #"""
            {"tasks": {
              "literal": {"command": ["printf", "[%s]\n", "$(id)", "`id`", "a b", "*", ";", "$HOME", "x\ny", "it's", "\"q\"", "> out"]},
              "environment": {"command": ["printenv", "MULTI", "EQUALS", "EMPTY"],
                              "env": {"MULTI": "line1\nline2=still", "EQUALS": "a=b==c", "EMPTY": ""}}
            }}
            """#)
        #expect(try supervisor.ctl("run", "literal", "--wait").status == 0)
        #expect(
            try supervisor.ctl("result", "literal").output
                == "[$(id)]\n[`id`]\n[a b]\n[*]\n[;]\n[$HOME]\n[x\ny]\n[it's]\n[\"q\"]\n[> out]\n")
        #expect(!FileManager.default.fileExists(atPath: supervisor.path("out")), "no shell redirected anything")
        #expect(try supervisor.ctl("run", "environment", "--wait").status == 0)
        #expect(try supervisor.ctl("result", "environment").output == "line1\nline2=still\na=b==c\n\n")
    }
}

/// A folder of a test's own (mode 0700 unless told), removed when released.
final class ScratchFolder {
    let path: String

    init(mode: mode_t = 0o700) throws {
        path = FileManager.default.temporaryDirectory.path + "/smartpoll-e2e-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        chmod(path, mode)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    func write(_ name: String, _ text: String) throws {
        try text.write(toFile: path + "/" + name, atomically: false, encoding: .utf8)
    }
}

/// The supervisor binary where uid 65534 can run it: in place when every folder above it lets
/// others through, else a copy in `folder` (which must be 0755).
func reachableCopyOfSupervisor(in folder: ScratchFolder) throws -> String {
    var current = URL(fileURLWithPath: Binaries.supervisor)
    var reachable = true
    while current.path != "/" {
        var info = stat()
        if stat(current.path, &info) != 0 || info.st_mode & 0o001 == 0 { reachable = false; break }
        current.deleteLastPathComponent()
    }
    if reachable { return Binaries.supervisor }
    let copy = folder.path + "/smartpoll-supervisor"
    try FileManager.default.copyItem(atPath: Binaries.supervisor, toPath: copy)
    chmod(copy, 0o755)
    return copy
}
