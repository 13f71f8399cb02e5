import Foundation
import Testing

/// The shell completions in contrib/completions: the bash one loaded into a real bash and asked
/// for completions (task names from a live supervisor), and the zsh and fish ones read for the
/// commands they offer, which must be those of `smartpollctl --help`.
@Suite(.endToEnd)
struct CompletionTests {
    static let bashFile = Repository.root + "/contrib/completions/smartpollctl.bash"

    /// Sources the bash completion, checks that it is registered for both programs, and prints
    /// one line per `lines` entry: the completions (space-separated) of that command line, whose
    /// last word is the one being completed.
    static func bashCompletions(
        _ lines: [[String]], environment extra: [String: String] = [:]
    ) throws -> (lines: [String], error: String) {
        var script = """
            source "$1" || exit 1
            complete -p smartpollctl smartpoll-supervisor >/dev/null || exit 1
            complete_line() {
                local function
                function=$(complete -p "$1" | sed -n 's/.*-F \\([^ ]*\\) .*/\\1/p')
                COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); COMPREPLY=()
                "$function" "$1" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
                printf '%s\\n' "$(printf '%s\\n' "${COMPREPLY[@]}" | sort | tr '\\n' ' ')"
            }

            """
        for line in lines {
            script +=
                "complete_line "
                + line.map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }.joined(separator: " ") + "\n"
        }
        var environment = ProcessInfo.processInfo.environment
        environment["PATH"] = Binaries.folder + ":" + (environment["PATH"] ?? "/usr/bin:/bin")
        environment["SMARTPOLL_SOCKET"] = nil
        environment["XDG_RUNTIME_DIR"] = "/nonexistent"
        environment.merge(extra) { $1 }
        let result = try runCommand(
            "/bin/bash", ["--norc", "--noprofile", "-c", script, "bash", bashFile], environment: environment)
        #expect(result.status == 0, "bash: \(result.error)")
        return (
            result.output.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map {
                $0.trimmingCharacters(in: .whitespaces)
            }, result.error
        )
    }

    static func helpCommands() throws -> Set<String> {
        HelpSummary(try runCommand(Binaries.ctl, ["--help"]).output).commands.filter { !$0.contains(" ") }
    }

    @Test func bashCompletesCommandsAndOptionsOfHelp() throws {
        let (lines, _) = try Self.bashCompletions([
            ["smartpollctl", ""],
            ["smartpollctl", "st"],
            ["smartpollctl", "--"],
            ["smartpollctl", "--json", "run", "x", "--"],
            ["smartpollctl", "schedule", "x", "--"],
            ["smartpollctl", "hook", ""],
            ["smartpollctl", "hook", "schedule", "--"],
            ["smartpoll-supervisor", "--"],
            ["smartpoll-supervisor", "--log-level", ""],
        ])
        #expect(Set(lines[0].split(separator: " ").map(String.init)) == (try Self.helpCommands()).union(["help"]))
        #expect(lines[1] == "start status stop stop-timer")
        #expect(lines[2] == "--help --json --socket --timeout --utc --version")
        // The global options may follow the command too.
        #expect(lines[3] == "--json --output --socket --timeout --utc --wait")
        #expect(lines[4] == "--at --json --socket --sooner --timeout --utc")
        #expect(lines[5] == "schedule stop-timer unschedule")
        #expect(lines[6] == "--at --json --socket --sooner --timeout --utc")
        let supervisorOptions = HelpSummary(try runCommand(Binaries.supervisor, ["--help"]).output).options.subtracting(
            ["-h"])
        #expect(Set(lines[7].split(separator: " ").map(String.init)) == supervisorOptions)
        #expect(lines[8] == "debug error info warning")
    }

    @Test func bashCompletesTaskNamesFromTheRunningSupervisor() throws {
        let supervisor = try SupervisorHarness(
            #"""
            {"tasks": {"alpha": {"command": ["true"]}, "beta.2": {"command": ["true"]}, "w@home": {"command": ["true"]}}}
            """#)
        let socket = supervisor.socket
        let (lines, error) = try Self.bashCompletions(
            [
                ["smartpollctl", "--socket", socket, "run", ""],
                ["smartpollctl", "--socket", socket, "status", "alpha", "b"],
                ["smartpollctl", "--socket", socket, "run", "alpha", ""],
                ["smartpollctl", "--socket", socket, "hook", "schedule", "w"],
                ["smartpollctl", "cancel", ""],
            ], environment: ["SMARTPOLL_SOCKET": socket])
        #expect(lines == ["alpha beta.2 w@home", "beta.2", "", "w@home", "alpha beta.2 w@home"])
        #expect(error.isEmpty)
    }

    @Test func bashOffersNoTaskNamesAndSaysNothingWithoutASupervisor() throws {
        let missing = FileManager.default.temporaryDirectory.appendingPathComponent(
            "smartpoll-none-\(UUID().uuidString.prefix(8))/s.sock"
        ).path
        let (lines, error) = try Self.bashCompletions(
            [
                ["smartpollctl", "--socket", missing, "run", ""],
                ["smartpollctl", "status", ""],
                ["smartpollctl", "--socket", missing, "ru"],
            ], environment: ["SMARTPOLL_SOCKET": missing])
        #expect(lines == ["", "", "run"])
        #expect(error.isEmpty, "completion wrote: \(error)")
    }

    @Test func zshAndFishCompleteTheCommandsOfHelp() throws {
        let expected = (try Self.helpCommands()).union(["help"])
        let zsh = try Repository.read("contrib/completions/_smartpollctl")
        // The entries of `commands=( 'name:description' ... )`.
        let zshBlock = try #require(
            zsh.components(separatedBy: "  commands=(\n").dropFirst().first?.components(separatedBy: "\n  )").first)
        let zshCommands = Set(
            zshBlock.split(separator: "\n").compactMap { line -> String? in
                let text = line.trimmingCharacters(in: .whitespaces)
                guard text.hasPrefix("'"), let colon = text.firstIndex(of: ":") else { return nil }
                return String(text[text.index(after: text.startIndex)..<colon])
            })
        #expect(zshCommands == expected)
        let fish = try Repository.read("contrib/completions/smartpollctl.fish")
        let fishCommands = Set(
            fish.split(separator: "\n").compactMap { line -> String? in
                let words = line.split(separator: " ").map(String.init)
                guard words.starts(with: ["complete", "-c", "smartpollctl", "-n", "$before_command", "-a"]),
                    words.count > 6
                else { return nil }
                return words[6]
            })
        #expect(fishCommands == expected)
        // Every option of --help is offered by each shell.
        let options = HelpSummary(try runCommand(Binaries.ctl, ["--help"]).output).options
        for option in options where option.hasPrefix("--") {
            #expect(zsh.contains("\(option)[") || zsh.contains(",\(option)}"), "zsh lacks \(option)")
            #expect(fish.contains("-l \(option.dropFirst(2)) "), "fish lacks \(option)")
        }
    }
}
