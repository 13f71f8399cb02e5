import Foundation
import Testing

/// Who may use the control socket: the supervisor's user, root, and `socket_group` (CI runs as
/// root, so other users are played with setpriv).
@Suite(.endToEnd)
struct SocketAccessTests {
    private func ctlAs(_ uid: Int, gid: Int, _ socket: String, _ arguments: String...) throws -> CommandResult {
        try runCommand(
            "/usr/bin/setpriv",
            ["--reuid=\(uid)", "--regid=\(gid)", "--clear-groups", Binaries.ctl, "--socket", socket] + arguments)
    }

    @Test func socketGroupMembersAreAdmittedAndOthersRefused() throws {
        #expect(getuid() == 0, "these tests play other users with setpriv, which needs root")
        let supervisor = try SupervisorHarness(
            """
            {"socket_mode": "0660", "socket_group": "nogroup", "tasks": {"t": {"command": ["true"]}}}
            """, folderMode: 0o755)
        var info = stat()
        #expect(stat(supervisor.socket, &info) == 0)
        #expect(info.st_gid == 65534, "the socket belongs to socket_group")
        #expect(info.st_mode & 0o777 == 0o660)
        let member = try ctlAs(65534, gid: 65534, supervisor.socket, "ping")
        #expect(member.status == 0, "\(member.error)")
        // A user outside the group cannot even open a 0660 socket it does not own.
        let outsider = try ctlAs(1, gid: 1, supervisor.socket, "ping")
        #expect(outsider.status == 69)
    }

    @Test func aPeerAllowedByTheFileModeButNotByPolicyGetsPermissionDenied() throws {
        let supervisor = try SupervisorHarness(
            """
            {"socket_mode": "0666", "socket_group": "nogroup", "tasks": {"t": {"command": ["true"]}}}
            """, folderMode: 0o755)
        let refused = try ctlAs(1, gid: 1, supervisor.socket, "ping")
        #expect(refused.status == 1)
        #expect(refused.error.hasPrefix("smartpollctl: permission_denied: uid 1 may not use this socket"))
        #expect(try supervisor.ctl("ping").status == 0, "the refusal disturbed nobody else")
    }

    @Test func anUnknownSocketGroupIsAConfigurationError() throws {
        let folder = NSTemporaryDirectory() + "smartpoll-group-\(getpid())"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try #"{"socket_group": "no-such-group-here", "tasks": {"t": {"command": ["true"]}}}"#
            .write(toFile: folder + "/c.json", atomically: true, encoding: .utf8)
        let result = try runCommand(
            Binaries.supervisor, ["--config", folder + "/c.json", "--socket", folder + "/s.sock"])
        #expect(result.status == 78)
        #expect(result.error.contains("socket_group: no group is named \"no-such-group-here\""))
        #expect(!FileManager.default.fileExists(atPath: folder + "/s.sock"))
    }
}
