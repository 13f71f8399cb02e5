import Foundation
import SmartPollClient
import SmartPollProtocol
import Testing

/// The configuration must be a regular file (SPEC section 7, issue 13 case 5): a FIFO, a
/// folder or a device at its path is refused with the reason, at once, at start and on reload;
/// it never blocks the supervisor in open(2).
@Suite(.endToEnd)
struct ConfigurationKindTests {
    /// Replaces the file at `path` by a FIFO nobody writes to.
    private func plantFIFO(at path: String) throws {
        try FileManager.default.removeItem(atPath: path)
        guard mkfifo(path, 0o600) == 0 else { throw HarnessError("mkfifo \(path): errno \(errno)") }
    }

    @Test func aFIFOInPlaceOfTheConfigurationFailsTheReloadWithTheReasonAndTheLoopStaysResponsive() throws {
        let supervisor = try SupervisorHarness(#"{"tasks": {"a": {"command": ["true"], "start": "1h"}}}"#)
        // On a supervisor stuck in open(2) SIGTERM does nothing; the harness would wait for ever.
        defer { if supervisor.isRunning { supervisor.signal(SIGKILL) } }
        try plantFIFO(at: supervisor.configurationPath)
        let reason = "\(supervisor.configurationPath): not a regular file (a FIFO)"

        let reload = try supervisor.ctl("--timeout", "\(3 * Sanitizer.slowdown)s", "reload")
        #expect(reload.status == 1, "\(reload)")
        #expect(
            reload.error.contains("the configuration was not reloaded: \(reason)"),
            "the reply says why: \(reload.error)")

        supervisor.signal(SIGHUP)
        let logged = {
            supervisor.logText.components(separatedBy: "reload failed; the running configuration stays").count
        }
        let deadline = Date().addingTimeInterval(Double(3 * Sanitizer.slowdown))
        while logged() < 3 && Date() < deadline { usleep(10_000) }
        #expect(logged() == 3, "the reload by SIGHUP is refused and logged too:\n\(supervisor.logText)")
        #expect(supervisor.logText.contains(reason))

        let client = try ControlClient(path: supervisor.socket)
        client.setTimeout(.seconds(Sanitizer.slowdown))
        let sent = Date()
        let (reply, _) = try client.call(Request(id: .int(1), command: .ping))
        #expect(reply.isSuccess && Date().timeIntervalSince(sent) < Double(Sanitizer.slowdown), "ping within 1 s")
        guard case .status(let status) = try supervisor.call(.status(tasks: nil)).body else {
            throw HarnessError("no status")
        }
        #expect(status.tasks.map(\.name) == ["a"], "the running configuration stays")

        supervisor.signal(SIGTERM)
        #expect(try supervisor.waitForExit(timeout: Double(5 * Sanitizer.slowdown)) == 0, "SIGTERM still ends it")
    }

    @Test func aFIFOAFolderOrADeviceAsTheConfigurationIsRefusedAtStartAndByCheckAtOnce() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent(
            "smartpoll-e2e-\(UUID().uuidString.prefix(8))"
        ).path
        try FileManager.default.createDirectory(
            atPath: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let fifo = folder + "/smartpoll.json"
        guard mkfifo(fifo, 0o600) == 0 else { throw HarnessError("mkfifo: errno \(errno)") }
        let cases = [(fifo, "a FIFO"), (folder, "a folder"), ("/dev/null", "a character device")]
        for (path, kind) in cases {
            for extra in [["--check"], []] {
                let started = Date()
                // A supervisor blocked in open(2) is ended by runCommand's SIGTERM after the timeout.
                let outcome = try runCommand(
                    Binaries.supervisor, extra + ["--config", path, "--socket", folder + "/s.sock"],
                    timeout: Double(5 * Sanitizer.slowdown))
                #expect(outcome.status == 78, "\(extra) \(path): \(outcome)")
                #expect(
                    outcome.error.contains("\(path): not a regular file (\(kind))"),
                    "\(extra) \(path): \(outcome.error)")
                #expect(Date().timeIntervalSince(started) < Double(2 * Sanitizer.slowdown), "promptly")
            }
        }
    }

    @Test func aSymbolicLinkToARegularFileIsAcceptedAsTheConfiguration() throws {
        let supervisor = try SupervisorHarness(#"{"tasks": {"a": {"command": ["true"], "start": "1h"}}}"#)
        // Operators link the configuration from elsewhere (/etc, a checkout): that stays allowed.
        let target = supervisor.path("real.json")
        try #"{"tasks": {"a": {"command": ["true"], "start": "1h"}, "b": {"command": ["true"], "start": "1h"}}}"#
            .write(toFile: target, atomically: true, encoding: .utf8)
        try FileManager.default.removeItem(atPath: supervisor.configurationPath)
        try FileManager.default.createSymbolicLink(atPath: supervisor.configurationPath, withDestinationPath: target)
        let reload = try supervisor.ctl("reload")
        #expect(reload.status == 0, "\(reload)")
        let check = try runCommand(
            Binaries.supervisor, ["--check", "--config", supervisor.configurationPath, "--socket", supervisor.socket])
        #expect(check.status == 0 && check.output.contains("valid: 2 tasks"), "\(check)")
    }
}
