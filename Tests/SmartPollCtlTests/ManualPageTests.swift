import Foundation
import Testing

/// The top of the repository, for the files that ship beside the binaries.
enum Repository {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().path

    static func read(_ path: String) throws -> String {
        try String(contentsOfFile: root + "/" + path, encoding: .utf8)
    }
}

/// What a program's `--help` lists: its commands (with `hook` verbs as `hook schedule` and so
/// on) and every option it mentions.
struct HelpSummary {
    var commands: Set<String> = []
    var options: Set<String> = []

    init(_ text: String) {
        var section = ""
        for line in text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) {
            if !line.hasPrefix(" ") { section = line }
            options.formUnion(Self.options(in: line))
            // A command line is indented by two spaces; its description follows two or more.
            guard section == "Commands:", line.hasPrefix("  "), !line.hasPrefix("   ") else { continue }
            let synopsis = line.dropFirst(2).components(separatedBy: "  ")[0]
            for alternative in synopsis.components(separatedBy: " | ") {
                let words = alternative.split(separator: " ").map(String.init)
                guard let first = words.first, first.first?.isLetter == true else { continue }
                commands.insert(first)
                if first == "hook", words.count > 1 { commands.insert("hook " + words[1]) }
            }
        }
    }

    /// `--word` and `-x` tokens of a line.
    static func options(in line: String) -> Set<String> {
        var found: Set<String> = []
        for token in line.split(whereSeparator: { " ,|[]()".contains($0) }) {
            let text = token.trimmingCharacters(in: CharacterSet(charactersIn: ":;."))
            if text.range(of: #"^--[a-z][a-z-]*$|^-[a-z]$"#, options: .regularExpression) != nil { found.insert(text) }
        }
        return found
    }
}

/// An mdoc page's items: `.It Cm ...` of its COMMANDS section (with `hook` verbs) and the
/// flags of `.It Fl ...` in its OPTIONS section.
struct ManualSummary {
    var commands: Set<String> = []
    var options: Set<String> = []
    var sections: [String] = []

    init(_ source: String) {
        var section = ""
        for line in source.split(separator: "\n").map(String.init) {
            if line.hasPrefix(".Sh ") {
                section = String(line.dropFirst(4))
                sections.append(section)
                continue
            }
            guard line.hasPrefix(".It ") else { continue }
            let words = line.split(separator: " ").map(String.init)
            if section == "COMMANDS", words.count > 2, words[1] == "Cm" {
                commands.insert(words[2])
                if words[2] == "hook", words.count > 3 { commands.insert("hook " + words[3]) }
            }
            if section == "OPTIONS" {
                for (index, word) in words.enumerated() where word == "Fl" && index + 1 < words.count {
                    options.insert("-" + words[index + 1])
                }
            }
        }
    }
}

/// The man pages and `--help` describe the same commands and options, so that they cannot drift.
@Suite(.endToEnd)
struct ManualPageTests {
    /// The classic sections, in order (DESIGN.md), as far as each page has them.
    static let classicOrder = [
        "NAME", "SYNOPSIS", "DESCRIPTION", "COMMANDS", "OPTIONS", "ENVIRONMENT", "FILES",
        "SIGNALS", "EXIT STATUS", "EXAMPLES", "SEE ALSO",
    ]

    @Test func smartpollctlHelpAndManualListTheSameCommandsAndOptions() throws {
        let help = HelpSummary(try runCommand(Binaries.ctl, ["--help"]).output)
        let manual = ManualSummary(try Repository.read("man/smartpollctl.1"))
        #expect(help.commands.count >= 17, "commands parsed from --help: \(help.commands.sorted())")
        #expect(
            help.commands == manual.commands,
            "only in --help: \(help.commands.subtracting(manual.commands).sorted()); only in the man page: \(manual.commands.subtracting(help.commands).sorted())"
        )
        #expect(help.options.contains("--wait") && help.options.contains("--socket"))
        #expect(
            help.options == manual.options,
            "only in --help: \(help.options.subtracting(manual.options).sorted()); only in the man page: \(manual.options.subtracting(help.options).sorted())"
        )
    }

    @Test func supervisorHelpAndManualListTheSameOptions() throws {
        let help = HelpSummary(try runCommand(Binaries.supervisor, ["--help"]).output)
        let manual = ManualSummary(try Repository.read("man/smartpoll-supervisor.8"))
        #expect(help.options.contains("--log-level"))
        #expect(
            help.options == manual.options,
            "only in --help: \(help.options.subtracting(manual.options).sorted()); only in the man page: \(manual.options.subtracting(help.options).sorted())"
        )
    }

    @Test func manualPagesHaveTheirSectionsInTheClassicOrder() throws {
        let expected: [String: [String]] = [
            "man/smartpollctl.1": [
                "NAME", "SYNOPSIS", "DESCRIPTION", "COMMANDS", "OPTIONS", "ENVIRONMENT", "FILES", "EXIT STATUS",
                "EXAMPLES", "SEE ALSO",
            ],
            "man/smartpoll-supervisor.8": [
                "NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "ENVIRONMENT", "FILES", "SIGNALS", "EXIT STATUS",
                "EXAMPLES", "SEE ALSO",
            ],
            "man/smartpoll.json.5": ["NAME", "DESCRIPTION", "FILES", "EXAMPLES", "SEE ALSO"],
            "man/smartpoll-protocol.7": ["NAME", "DESCRIPTION", "COMMANDS", "EXAMPLES", "SEE ALSO"],
        ]
        for (page, required) in expected {
            let sections = ManualSummary(try Repository.read(page)).sections
            for section in required {
                #expect(sections.contains(section), "\(page) lacks \(section)")
            }
            let classic = sections.filter(Self.classicOrder.contains)
            #expect(
                classic
                    == classic.sorted { Self.classicOrder.firstIndex(of: $0)! < Self.classicOrder.firstIndex(of: $1)! },
                "\(page): \(classic)")
        }
    }

    @Test func everyConfigurationKeyIsDocumentedWithTypeDefaultAndExample() throws {
        let page = try Repository.read("man/smartpoll.json.5")
        // The keys the configuration reader accepts, from its error message for an unknown key.
        // A regular file: the configuration may not be a pipe such as /dev/stdin.
        let file = FileManager.default.temporaryDirectory.appendingPathComponent(
            "smartpoll-keys-\(UUID().uuidString.prefix(8)).json"
        ).path
        try
            #"{"bogus": 1, "tasks": {"t": {"command": ["true"], "bogus": 1, "backoff": {"bogus": 1}}}, "hooks": {"h": {"schedule": {}, "bogus": 1}}}"#
            .write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let probe = try runCommand(Binaries.supervisor, ["--check", "--config", file])
        let keys = Set(
            probe.error.split(separator: "\n").flatMap { line -> [String] in
                guard let range = line.range(of: "expected one of ") else { return [] }
                return line[range.upperBound...].components(separatedBy: ", ")
            })
        #expect(
            keys.isSuperset(of: ["socket", "tasks", "command", "every", "initial", "schedule", "max_directives"]),
            "\(probe.error)")
        // Each key is an item of its own, `.It Cm KEY`, whose paragraph gives a default and an example.
        let items = page.components(separatedBy: "\n.It ")
        for key in keys.sorted() {
            let item = items.first { $0.hasPrefix("Cm \(key)\n") || $0.hasPrefix("Cm \(key) ") }
            guard let item else {
                Issue.record("smartpoll.json(5) has no item for \(key)")
                continue
            }
            #expect(item.contains("Default") || item.contains("required"), "\(key): no default")
            #expect(item.contains("Example"), "\(key): no example")
        }
    }
}
