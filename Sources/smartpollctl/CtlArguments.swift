import CSmartPollPosix
import SmartPollProtocol

#if !hasFeature(Embedded)
import Glibc
#endif

/// The parsed command line.
struct CtlArguments {
    var socket: String?
    var json = false
    /// `--utc`: times for people in UTC instead of local time.
    var utc = false
    var timeout: Duration?
    var request: Command?
    /// `hook ...`: a directive for descriptor 3 instead of a request.
    var directive: Command?
    /// `emit HOOK -`: read the data from stdin.
    var dataFromStandardInput = false

    struct UsageError: Error { var message: String }

    static func parse(_ arguments: [String], environment: (String) -> String?) throws(UsageError) -> CtlArguments {
        var parsed = CtlArguments()
        // Global options may stand anywhere on the line, recognized by their exact names (also as
        // --name=value); `--` ends the options, so that an argument such as `--json` can be
        // given after it. Other words stay arguments: `-1s` is a negative delay, not an option.
        var positional: [String] = []
        // Where the words after `--` begin in `positional`: they are arguments whatever they say.
        var literalFrom = Int.max
        var rest = arguments[...]
        var optionsEnded = false
        while let word = rest.popFirst() {
            if optionsEnded || !word.hasPrefix("-") || word == "-" {
                positional.append(word)
                continue
            }
            let (option, inlineValue) = splitOption(word)
            switch option {
            case "--":
                optionsEnded = true
                literalFrom = positional.count
            case "--socket":
                if let inlineValue { parsed.socket = inlineValue } else { parsed.socket = try value(option, &rest) }
            case "--timeout":
                let text: String
                if let inlineValue { text = inlineValue } else { text = try value(option, &rest) }
                guard let duration = try? DurationFormat.parse(text), duration > .zero else {
                    throw UsageError(message: "--timeout takes a positive duration such as 5s, not \"\(text)\"")
                }
                parsed.timeout = duration
            case "--json", "--utc":
                if inlineValue != nil { throw UsageError(message: "\(option) takes no value") }
                if option == "--json" { parsed.json = true } else { parsed.utc = true }
            default:
                if positional.isEmpty {
                    throw UsageError(
                        message: "unknown option \"\(word)\"" + suggestion(for: word, among: globalOptions))
                }
                positional.append(word)
            }
        }
        var remaining = positional[...]
        guard let name = remaining.popFirst() else { throw UsageError(message: "a command is needed") }
        var words: [String] = []
        var flags: Set<String> = []
        var at: String?
        // `logs -n N`.
        var lineCount: String?
        while let word = remaining.popFirst() {
            if remaining.startIndex > literalFrom {
                words.append(word)
                continue
            }
            switch word {
            case "--wait", "--sooner", "--output", "-f": flags.insert(word)
            case "--at": at = try value(word, &remaining)
            case "-n": lineCount = try value(word, &remaining)
            default:
                if word.hasPrefix("--at=") {
                    at = String(word.dropFirst(5))
                    continue
                }
                if word.hasPrefix("--") && word.count > 2 {
                    throw UsageError(
                        message: "unknown option \"\(word)\" for \(name)"
                            + suggestion(for: word, among: ["--wait", "--sooner", "--at", "--output"] + globalOptions))
                }
                words.append(word)
            }
        }
        func allow(_ allowed: Set<String>, at atAllowed: Bool = false) throws(UsageError) {
            if let extra = flags.subtracting(allowed).first {
                throw UsageError(message: "\(name) does not take \(extra)")
            }
            if at != nil && !atAllowed { throw UsageError(message: "\(name) does not take --at") }
            if lineCount != nil && name != "logs" && name != "history" {
                throw UsageError(message: "\(name) does not take -n")
            }
        }
        func count(_ range: ClosedRange<Int>) throws(UsageError) {
            guard range.contains(words.count) else {
                throw UsageError(
                    message:
                        "\(name) takes \(range.lowerBound == range.upperBound ? "\(range.lowerBound)" : "\(range.lowerBound) to \(range.upperBound)") argument\(range.upperBound == 1 ? "" : "s"), got \(words.count)"
                )
            }
        }
        switch name {
        case "status", "watch":
            try allow([])
            let tasks = words.isEmpty ? nil : words
            parsed.request = name == "status" ? .status(tasks: tasks) : .watch(tasks: tasks)
        case "schedule":
            try allow(["--sooner"], at: true)
            try count(at == nil ? 2...2 : 1...1)
            parsed.request = .schedule(
                task: words[0], when: try when(words.dropFirst().first, at: at), sooner: flags.contains("--sooner"))
        case "unschedule", "stop-timer", "cancel", "result", "pause", "resume":
            try allow([])
            try count(1...1)
            switch name {
            case "unschedule": parsed.request = .unschedule(task: words[0])
            case "stop-timer": parsed.request = .stopTimer(task: words[0])
            case "cancel": parsed.request = .cancel(task: words[0])
            case "pause": parsed.request = .pause(task: words[0])
            case "resume": parsed.request = .resume(task: words[0])
            default: parsed.request = .result(task: words[0])
            }
        case "logs":
            try allow(["-f"])
            try count(1...1)
            var lines: Int?
            if let lineCount {
                guard let number = Int(lineCount), number > 0 else {
                    throw UsageError(message: "-n takes a positive number of lines, not \"\(lineCount)\"")
                }
                lines = number
            }
            parsed.request = .logs(task: words[0], lines: lines, follow: flags.contains("-f"))
        case "history":
            try allow([])
            try count(1...1)
            var limit: Int?
            if let lineCount {
                guard let number = Int(lineCount), number >= 0 else {
                    throw UsageError(message: "-n takes a number of runs (0 or more), not \"\(lineCount)\"")
                }
                limit = number
            }
            parsed.request = .history(task: words[0], limit: limit)
        case "run":
            try allow(["--wait", "--output"])
            try count(1...1)
            if flags.contains("--output") && !flags.contains("--wait") {
                throw UsageError(message: "run --output needs --wait (it prints the output of the run waited for)")
            }
            parsed.request = .run(
                task: words[0], wait: flags.contains("--wait"), output: flags.contains("--output"))
        case "emit":
            try allow([])
            try count(1...2)
            parsed.dataFromStandardInput = words.count == 2 && words[1] == "-"
            let data = words.count == 2 && !parsed.dataFromStandardInput ? words[1] : nil
            parsed.request = .emit(hook: words[0], data: data.map { rawArgument($0) })
        case "start", "stop", "restart":
            try allow(["--wait"])
            try count(0...0)
            let wait = flags.contains("--wait")
            parsed.request =
                name == "start" ? .start(wait: wait) : name == "stop" ? .stop(wait: wait) : .restart(wait: wait)
        case "results", "reload", "shutdown", "ping", "metrics":
            try allow([])
            try count(0...0)
            switch name {
            case "results": parsed.request = .results
            case "reload": parsed.request = .reload
            case "shutdown": parsed.request = .shutdown
            case "metrics": parsed.request = .metrics
            default: parsed.request = .ping
            }
        case "hook":
            guard !words.isEmpty else { throw UsageError(message: "hook takes schedule, unschedule or stop-timer") }
            let verb = words.removeFirst()
            let ownTask = environment("SMARTPOLL_TASK")
            func task(_ explicit: String?) throws(UsageError) -> String {
                guard let task = explicit ?? ownTask, !task.isEmpty else {
                    throw UsageError(
                        message: "hook \(verb): name a task, or run inside a task ($SMARTPOLL_TASK is not set)")
                }
                return task
            }
            switch verb {
            case "schedule":
                try allow(["--sooner"], at: true)
                let needed = at == nil ? 1 : 0
                guard words.count == needed || words.count == needed + 1 else {
                    throw UsageError(message: "hook schedule takes [TASK] DELAY or [TASK] --at TIME")
                }
                let taskName = try task(words.count > needed ? words[0] : nil)
                parsed.directive = .schedule(
                    task: taskName, when: try when(at == nil ? words.last : nil, at: at),
                    sooner: flags.contains("--sooner"))
            case "unschedule", "stop-timer":
                try allow([])
                guard words.count <= 1 else { throw UsageError(message: "hook \(verb) takes at most one task") }
                let taskName = try task(words.first)
                parsed.directive = verb == "unschedule" ? .unschedule(task: taskName) : .stopTimer(task: taskName)
            default:
                throw UsageError(message: "hook takes schedule, unschedule or stop-timer, not \"\(verb)\"")
            }
        default:
            throw UsageError(message: "unknown command \"\(name)\"" + suggestion(for: name, among: commandNames))
        }
        if case .schedule(_, _, true)? = parsed.request ?? parsed.directive {
            if case .schedule(_, .after(let delay), _)? = parsed.request ?? parsed.directive, delay <= .zero {
                throw UsageError(message: "--sooner needs a positive delay")
            }
        }
        return parsed
    }

    static let globalOptions = ["--socket", "--json", "--timeout", "--utc"]
    static let commandNames = [
        "status", "schedule", "unschedule", "stop-timer", "run", "cancel", "pause", "resume", "result", "results",
        "emit", "watch", "logs", "history",
        "start", "stop", "restart", "reload", "shutdown", "ping", "metrics", "hook",
    ]

    /// The arguments after the program's name as `CommandLine.arguments` has them (invalid
    /// UTF-8 repaired with U+FFFD), read from argv: Embedded Swift has no `CommandLine`.
    static func programArguments() -> [String] {
        let count = Int(sp_argc())
        guard count > 1, let argv = sp_argv() else { return [] }
        var arguments: [String] = []
        arguments.reserveCapacity(count - 1)
        for index in 1..<count {
            guard let pointer = argv[index] else { break }
            arguments.append(
                String(decoding: UnsafeRawBufferPointer(start: pointer, count: strlen(pointer)), as: UTF8.self))
        }
        return arguments
    }

    /// The bytes of the argument that reads as `word`: exactly as given, also when they are not
    /// UTF-8 (which ``programArguments()`` repairs with U+FFFD), so that `emit` passes them on
    /// unchanged.
    ///
    /// The last argument that reads so is taken: `emit`'s data is its last word (a hook name
    /// before it that reads the same is not).
    static func rawArgument(_ word: String) -> [UInt8] {
        guard word.unicodeScalars.contains("\u{FFFD}") else { return Array(word.utf8) }
        guard let argv = sp_argv() else { return Array(word.utf8) }
        for index in stride(from: Int(sp_argc()) - 1, through: 1, by: -1) {
            guard let pointer = argv[index] else { continue }
            let bytes = Array(UnsafeBufferPointer(start: pointer, count: strlen(pointer))).map { UInt8(bitPattern: $0) }
            if String(decoding: bytes, as: UTF8.self) == word { return bytes }
        }
        return Array(word.utf8)
    }

    /// `--name=value` as (`--name`, `value`); any other word as (word, nil).
    private static func splitOption(_ word: String) -> (String, String?) {
        guard word.hasPrefix("--"), let equals = word.firstIndex(of: "=") else { return (word, nil) }
        return (String(word[..<equals]), String(word[word.index(after: equals)...]))
    }

    /// ` (did you mean "status"?)` when one of `candidates` is close to `word`, else empty.
    static func suggestion(for word: String, among candidates: [String]) -> String {
        Suggestion.closest(to: word, among: candidates).map { " (did you mean \"\($0)\"?)" } ?? ""
    }

    private static func value(_ option: String, _ rest: inout ArraySlice<String>) throws(UsageError) -> String {
        guard let value = rest.popFirst() else { throw UsageError(message: "\(option) needs a value") }
        return value
    }

    private static func when(_ delay: String?, at: String?) throws(UsageError) -> ScheduleTime {
        if let at {
            do {
                return .at(try Timestamp.parse(at))
            } catch {
                throw UsageError(message: "--at: \(error.message)")
            }
        }
        guard let delay else { throw UsageError(message: "a delay is needed") }
        do {
            return .after(try DurationFormat.parse(delay))
        } catch {
            throw UsageError(message: error.message)
        }
    }
}
