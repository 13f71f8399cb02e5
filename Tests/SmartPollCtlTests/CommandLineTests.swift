import Foundation
import SmartPollProtocol
import Testing

/// smartpollctl's command line as people and scripts type it (issue 14): global options
/// anywhere, local time or `--utc`, suggestions for typos, and the descriptor 3 hint.
@Suite(.endToEnd)
struct CommandLineTests {
    static let config = """
        {"tasks": {"echo": {"command": ["sh", "-c", "echo hello"]}}}
        """

    @Test func globalOptionsMayFollowTheCommandAndItsArguments() throws {
        let supervisor = try SupervisorHarness(Self.config)
        // The harness puts --socket first; these give it again after the command, in both forms.
        let after = try runCommand(Binaries.ctl, ["status", "echo", "--socket", supervisor.socket, "--json"])
        #expect(after.status == 0, "\(after.error)")
        #expect(try json(after.output)["ok"] == .bool(true))
        let inline = try runCommand(
            Binaries.ctl, ["ping", "--timeout=5s", "--socket=\(supervisor.socket)", "--json"])
        #expect(inline.status == 0, "\(inline.error)")
        #expect(try json(inline.output)["protocol"] == .int(1))
        // A negative delay is an argument, not an option, wherever the options stand.
        let clear = try runCommand(Binaries.ctl, ["schedule", "echo", "-1s", "--socket", supervisor.socket])
        #expect(clear.status == 0, "\(clear.error)")
        #expect(clear.output == "echo: not scheduled\n")
    }

    @Test func wordsAfterDoubleDashAreArgumentsEvenWhenTheyLookLikeOptions() throws {
        let supervisor = try SupervisorHarness(
            """
            {"tasks": {"idle": {"command": ["true"]}}, "hooks": {"h": {"command": ["sh", "-c", "cat > $DIR/got"]}}}
            """)
        let emitted = try runCommand(
            Binaries.ctl, ["--socket", supervisor.socket, "emit", "h", "--", "--json"])
        #expect(emitted.status == 0, "\(emitted.error)")
        #expect(emitted.output.isEmpty, "--json after -- is the data, not the option")
        #expect(supervisor.read("got") == "--json")
    }

    @Test func humanTimesAreLocalAndUTCWithTheOption() throws {
        let supervisor = try SupervisorHarness(Self.config)
        let reply = try supervisor.ctl("schedule", "echo", "1h")
        #expect(reply.status == 0)
        var environment = ProcessInfo.processInfo.environment
        // A fixed zone without DST: UTC+05:30, shown as +0530 by glibc's POSIX TZ rules.
        environment["TZ"] = "IST-5:30"
        let local = try runCommand(
            Binaries.ctl, ["--socket", supervisor.socket, "schedule", "echo", "1h"], environment: environment)
        let utc = try runCommand(
            Binaries.ctl, ["--socket", supervisor.socket, "schedule", "echo", "1h", "--utc"], environment: environment)
        #expect(local.status == 0 && utc.status == 0)
        // echo: next in 1h00m (2026-12-02 22:35:03.123 IST)
        #expect(local.output.contains(" IST)"), "\(local.output)")
        #expect(utc.output.contains(" UTC)"), "\(utc.output)")
        func clock(_ line: String) -> Int? {
            guard let open = line.lastIndex(of: "(") else { return nil }
            let fields = line[line.index(after: open)...].split(separator: " ")
            guard fields.count >= 2 else { return nil }
            let parts = fields[1].split(separator: ":").compactMap { Int($0.prefix(2)) }
            return parts.count == 3 ? parts[0] * 60 + parts[1] : nil
        }
        let localMinutes = try #require(clock(local.output))
        let utcMinutes = try #require(clock(utc.output))
        let offset = ((localMinutes - utcMinutes) % 1440 + 1440) % 1440
        #expect(offset == 330, "local \(local.output) utc \(utc.output)")
        // --json is the protocol's UTC whatever TZ says.
        let machine = try runCommand(
            Binaries.ctl, ["--socket", supervisor.socket, "--json", "schedule", "echo", "1h"], environment: environment)
        guard case .string(let next)? = try json(machine.output)["next"] else {
            Issue.record("no next in \(machine.output)")
            return
        }
        #expect(next.hasSuffix("Z"))
    }

    @Test func typosGetASuggestion() throws {
        let command = try runCommand(Binaries.ctl, ["stauts"])
        #expect(command.status == 2)
        #expect(command.error.contains("unknown command \"stauts\" (did you mean \"status\"?)"), "\(command.error)")
        let option = try runCommand(Binaries.ctl, ["--jsno", "status"])
        #expect(option.status == 2)
        #expect(option.error.contains("(did you mean \"--json\"?)"), "\(option.error)")
        let commandOption = try runCommand(Binaries.ctl, ["run", "t", "--wiat"])
        #expect(commandOption.status == 2)
        #expect(commandOption.error.contains("(did you mean \"--wait\"?)"), "\(commandOption.error)")
        let nothingClose = try runCommand(Binaries.ctl, ["frobnicate"])
        #expect(!nothingClose.error.contains("did you mean"))
    }

    @Test func hookWithoutDescriptorThreeSaysHowToPassIt() throws {
        var environment = ProcessInfo.processInfo.environment
        environment["SMARTPOLL_HOOK_FD"] = "3"
        environment["SMARTPOLL_TASK"] = "t"
        // Foundation's Process closes every descriptor above 2 in the child, as Python's
        // subprocess does by default.
        let result = try runCommand(Binaries.ctl, ["hook", "schedule", "1s"], environment: environment)
        #expect(result.status == 1)
        #expect(
            result.error.contains("descriptor 3 ($SMARTPOLL_HOOK_FD) is not open in this process"), "\(result.error)")
        #expect(result.error.contains("pass_fds=(3,)"))
    }
}
