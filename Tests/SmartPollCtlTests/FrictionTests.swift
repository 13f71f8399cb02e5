import Foundation
import SmartPollProtocol
import Testing

/// What operators, scripts and workers tripped over (issue 14), each as they met it.
@Suite(.timeLimit(.minutes(2)))
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
}
