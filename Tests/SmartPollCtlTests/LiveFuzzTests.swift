import Foundation
import Glibc
import SmartPollProtocol
import SmartPollTestSupport
import Testing

/// Random, mutated and truncated input for a running supervisor (SPEC section 8): request lines
/// on the socket, split at random byte boundaries over many connections at once; directives on
/// descriptor 3; configuration files for `--check`. The supervisor must answer every complete
/// line with one well-formed reply, stay up, keep its memory, and answer `ping` after.
///
/// The figures scale with the environment: SMARTPOLL_LIVE_FUZZ_FRAMES request lines (default
/// 100,000), SMARTPOLL_LIVE_FUZZ_RUNS directive runs (300) and SMARTPOLL_LIVE_FUZZ_CONFIGS
/// configuration files (300); each test prints what it sent.
// Long enough for `make fuzz`'s million lines.
@Suite(.timeLimit(.minutes(15)))
struct LiveFuzzTests {
    static func scale(_ name: String, _ fallback: Int) -> Int {
        ProcessInfo.processInfo.environment[name].flatMap(Int.init) ?? fallback
    }

    static let taskNames: Set<String> = ["weather1", "weather2", "publish"]

    /// Whether a request that succeeds turns its connection into an event stream (`watch` of
    /// tasks that exist, `logs` with `follow` of one): its further lines are not requests, and
    /// the stream does not end by itself.
    static func turnsIntoAStream(_ command: Command) -> Bool {
        switch command {
        case .watch(let tasks): return (tasks ?? []).allSatisfy(taskNames.contains)
        case .logs(let task, _, let follow): return follow && taskNames.contains(task)
        default: return false
        }
    }

    static let configuration = """
        {"max_connections": 512,
         "tasks": {
           "weather1": {"command": ["true"], "start": "0s", "every": "50ms", "on_failure": "continue"},
           "weather2": {"command": ["sh", "-c", "echo $SMARTPOLL_RUN"], "on_failure": "continue"},
           "publish": {"command": ["true"], "on_failure": "continue"}
         },
         "hooks": {"refresh": {"schedule": {"weather1": "0s", "weather2": "1s"}},
                   "set-sky": {"command": ["cat"], "timeout": "5s"}}}
        """

    @Test func randomRequestLinesOverManyConnectionsGetWellFormedRepliesAndTheSupervisorStaysSmall() throws {
        let frames = Self.scale("SMARTPOLL_LIVE_FUZZ_FRAMES", 100_000)
        let supervisor = try SupervisorHarness(Self.configuration)
        let seeds = try Mutator.requestSeeds()
        try expectPing(try RawSocket(supervisor.socket), id: 0)
        let before = try residentMemory(of: supervisor.pid)

        let threads = 8
        let tally = Tally()
        let socket = supervisor.socket
        let group = DispatchGroup()
        for worker in 0..<threads {
            group.enter()
            let share = frames / threads + (worker < frames % threads ? 1 : 0)
            Thread {
                var mutator = Mutator(seed: 0x5EED_0000 + UInt64(worker), seeds: seeds)
                var sent = 0
                while sent < share {
                    do {
                        sent += try Self.oneConnection(
                            socket, lines: min(share - sent, 1 + Int(mutator.next() % 300)),
                            mutator: &mutator, tally: tally)
                    } catch {
                        tally.record(problem: "worker \(worker): \(error)")
                        sent += 1
                    }
                }
                group.leave()
            }.start()
        }
        #expect(group.wait(timeout: .now() + 840) == .success, "the workers did not finish")
        let after = try residentMemory(of: supervisor.pid)
        let summary = tally.summary
        print(
            "live fuzz: \(summary.lines) request lines (\(summary.bytes) bytes) over \(summary.connections) connections, "
                + "\(summary.replies) replies, \(summary.events) events, \(summary.oversized) oversized lines; "
                + "VmRSS \(before.current >> 20) -> \(after.current >> 20) MiB, VmHWM \(after.peak >> 20) MiB")
        #expect(summary.problems.isEmpty, "\(summary.problems.prefix(5))")
        #expect(summary.lines >= frames)
        #expect(summary.replies > summary.lines / 2, "most lines are complete and get a reply")
        #expect(
            after.current - before.current < Sanitizer.memory(32 << 20),
            "VmRSS grew from \(before.current >> 20) to \(after.current >> 20) MiB")
        #expect(after.peak < Sanitizer.memory(128 << 20), "VmHWM \(after.peak >> 20) MiB")
        #expect(supervisor.isRunning)
        try expectPing(try RawSocket(supervisor.socket), id: 1)
        let status = try json(try supervisor.ctl("--json", "status").output)
        #expect(status["tasks"]?.arrayValue?.count == 3)
    }

    /// One connection: `count` lines, mostly mutated requests, written in random pieces, the
    /// last one sometimes cut short; then end of input, and every reply read to the end.
    /// Returns how many lines it sent.
    static func oneConnection(_ socket: String, lines count: Int, mutator: inout Mutator, tally: Tally) throws -> Int {
        let connection = try RawSocket(socket)
        var stream: [UInt8] = []
        var oversized = false
        for _ in 0..<count {
            var line = mutator.requestLine()
            if mutator.next() % 20_000 == 0 {
                line = [UInt8](repeating: UInt8(ascii: "x"), count: (1 << 20) + 10)  // one line over the limit
                oversized = true
            }
            stream += line
            stream.append(10)
        }
        if mutator.next() % 16 == 0 {
            stream += Array(#"{"id":"w","cmd":"watch","tasks":["weather1"]}"#.utf8) + [10]
        }
        if mutator.next() % 4 == 0 {
            stream.removeLast(Int(mutator.next() % UInt64(min(stream.count, 40))))  // truncated at the end
        }
        // What the supervisor will see: the lines a reply is owed for, as its framing makes them.
        var expected = 0
        var watches = false
        for line in stream.split(separator: 10, omittingEmptySubsequences: false).dropLast() {
            let trimmed = line.last == 13 ? line.dropLast() : line
            if trimmed.isEmpty { continue }
            if trimmed.count > 1 << 20 {
                expected += 1  // answered too_large, then the connection is closed
                break
            }
            expected += 1
            // A watch for tasks that all exist turns the connection into an event stream, and
            // the rest of its input is ignored.
            if case .success(let request) = Request.decode(Array(trimmed)), Self.turnsIntoAStream(request.command) {
                watches = true
                break
            }
        }
        var offset = 0
        while offset < stream.count {
            let piece = 1 + Int(mutator.next() % (mutator.next() % 2 == 0 ? 7 : 4_096))
            let end = min(stream.count, offset + piece)
            guard connection.send(Array(stream[offset..<end])) else { break }  // closed after too_large
            offset = end
            if mutator.next() % 64 == 0 { usleep(50) }
        }
        connection.shutdownWriting()
        var replies = 0
        var events = 0
        while let line = try connection.readLine(timeout: 30) {
            guard let value = try? JSONParser.parse(line, mode: .strict), case .object(let object) = value else {
                tally.record(problem: "not a JSON object: \(line.prefix(200))")
                continue
            }
            if object["event"] != nil { events += 1; continue }
            guard object["ok"] == .bool(true) || object["error"]?.objectValue?["code"]?.stringValue != nil else {
                tally.record(problem: "neither ok nor an error: \(line.prefix(200))")
                continue
            }
            replies += 1
            if replies > expected { tally.record(problem: "more replies (\(replies)) than lines (\(expected))") }
            // A watcher's stream does not end by itself: once every reply is in, leave.
            if watches && replies == expected { break }
        }
        connection.close()
        if !oversized && !watches && replies != expected {
            tally.record(problem: "\(replies) replies for \(expected) complete lines")
        }
        tally.add(lines: count, bytes: stream.count, replies: replies, events: events, oversized: oversized ? 1 : 0)
        return count
    }

    @Test func randomDirectivesOnDescriptorThreeFailOnlyTheirRun() throws {
        let runs = Self.scale("SMARTPOLL_LIVE_FUZZ_RUNS", 300)
        let supervisor = try SupervisorHarness(
            """
            {"tasks": {
               "fuzzed": {"command": ["sh", "-c", "cat \\"$DIR/next\\" >&3"], "on_failure": "continue"},
               "weather1": {"command": ["true"], "on_failure": "continue"},
               "weather2": {"command": ["true"], "on_failure": "continue"},
               "publish": {"command": ["true"], "on_failure": "continue"}
            }}
            """)
        var mutator = Mutator(seed: 0xD1EC_7173, seeds: try Mutator.directiveSeeds())
        var lines = 0
        var bytes = 0
        var outcomes: [String: Int] = [:]
        let before = try residentMemory(of: supervisor.pid)
        for _ in 0..<runs {
            var stream: [UInt8] = []
            // A quarter valid and within max_directives, a quarter valid and over it, half mixed.
            let kind = mutator.next() % 4
            let count = kind == 1 ? 1_001 + Int(mutator.next() % 200) : Int(mutator.next() % 700)
            for _ in 0..<count {
                stream +=
                    kind < 2
                    ? mutator.seeds[Int(mutator.next() % UInt64(mutator.seeds.count))] : mutator.directiveLine()
                stream.append(10)
            }
            if kind >= 2 && mutator.next() % 5 == 0 && !stream.isEmpty {
                stream.removeLast(1 + Int(mutator.next() % UInt64(min(stream.count, 30))))
            }
            lines += count
            bytes += stream.count
            try Data(stream).write(to: URL(fileURLWithPath: supervisor.path("next")))
            let run = try json(try supervisor.ctl("--json", "run", "fuzzed", "--wait").output)
            #expect(run["exit_code"] == .int(0), "\(run)")
            let last = try json(try supervisor.ctl("--json", "status", "fuzzed").output)["tasks"]?.arrayValue?.first?
                .objectValue?["last"]?.objectValue
            let error = last?["error"]?.stringValue
            let outcome =
                error.map { reason in
                    [
                        "invalid directive", "more than", "the last directive has no newline",
                        "a directive line is longer",
                    ]
                    .first { reason.hasPrefix($0) } ?? "unexpected: \(reason)"
                } ?? "applied"
            #expect(!outcome.hasPrefix("unexpected"), "\(outcome)")
            outcomes[outcome, default: 0] += 1
        }
        let after = try residentMemory(of: supervisor.pid)
        print(
            "live fuzz: \(lines) directive lines (\(bytes) bytes) in \(runs) runs: \(outcomes.sorted { $0.key < $1.key }); "
                + "VmRSS \(before.current >> 20) -> \(after.current >> 20) MiB")
        #expect(
            outcomes["applied", default: 0] > 0 && outcomes["invalid directive", default: 0] > 0
                && outcomes["more than", default: 0] > 0)
        #expect(after.current - before.current < Sanitizer.memory(32 << 20))
        #expect(try supervisor.ctl("ping").status == 0)
    }

    @Test func checkNeverCrashesOnRandomConfigurations() throws {
        let count = Self.scale("SMARTPOLL_LIVE_FUZZ_CONFIGS", 300)
        let folder = try ScratchFolder()
        var seeds: [[UInt8]] = []
        for name in ["spec-example.json", "every-key.json"] {
            seeds.append(Array(try Repository.read("contrib/fuzz/seeds-config/" + name).utf8))
        }
        seeds.append(Array(try Repository.read("contrib/examples/weather/smartpoll.json").utf8))
        var mutator = Mutator(seed: 0xC0F1_6000, seeds: seeds)
        var statuses: [Int32: Int] = [:]
        for index in 0..<count {
            let file = folder.path + "/c\(index % 8).json"
            try Data(
                mutator.mutate(seeds[Int(mutator.next() % UInt64(seeds.count))], rounds: 1 + Int(mutator.next() % 8))
            )
            .write(to: URL(fileURLWithPath: file))
            let result = try runCommand(
                Binaries.supervisor, ["--check", "--config", file, "--socket", folder.path + "/s.sock"])
            statuses[result.status, default: 0] += 1
            #expect(
                result.status == 0 || result.status == 78,
                "status \(result.status) for \(file): \(result.error.prefix(300))")
            for line in result.error.split(separator: "\n") where !line.hasPrefix("smartpoll-supervisor: \(file): ") {
                Issue.record("a problem without FILE: \(line.prefix(200))")
            }
        }
        print(
            "live fuzz: \(count) configuration files through --check: exit statuses \(statuses.sorted { $0.key < $1.key })"
        )
        #expect(statuses[78, default: 0] > 0)
    }
}

/// What the workers of one test found, under a lock.
final class Tally: @unchecked Sendable {
    private let lock = NSLock()
    private var lines = 0, bytes = 0, replies = 0, events = 0, oversized = 0, connections = 0
    private var problems: [String] = []

    func add(lines: Int, bytes: Int, replies: Int, events: Int, oversized: Int) {
        lock.lock()
        defer { lock.unlock() }
        self.lines += lines
        self.bytes += bytes
        self.replies += replies
        self.events += events
        self.oversized += oversized
        connections += 1
    }

    func record(problem: String) {
        lock.lock()
        defer { lock.unlock() }
        if problems.count < 100 { problems.append(problem) }
    }

    var summary:
        (lines: Int, bytes: Int, replies: Int, events: Int, oversized: Int, connections: Int, problems: [String])
    {
        lock.lock()
        defer { lock.unlock() }
        return (lines, bytes, replies, events, oversized, connections, problems)
    }
}

/// Seeded random lines: valid requests and directives, their mutations, splices and noise.
struct Mutator {
    private var random: SplitMix64
    let seeds: [[UInt8]]

    init(seed: UInt64, seeds: [[UInt8]]) {
        random = SplitMix64(seed: seed)
        self.seeds = seeds
    }

    mutating func next() -> UInt64 { random.next() }

    /// The golden request fixtures but `shutdown` (which would end the test), and requests
    /// made for the tasks and hooks of ``LiveFuzzTests/configuration``.
    static func requestSeeds() throws -> [[UInt8]] {
        let folder = Repository.root + "/Tests/SmartPollProtocolTests/Fixtures/requests"
        var seeds: [[UInt8]] = []
        for name in try FileManager.default.contentsOfDirectory(atPath: folder).sorted() where name != "shutdown.json" {
            var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: folder + "/" + name)))
            while bytes.last == 10 { bytes.removeLast() }
            seeds.append(bytes)
        }
        for line in [
            #"{"id":1,"cmd":"run","task":"weather2","wait":true}"#,
            #"{"id":2,"cmd":"emit","hook":"set-sky","data":"storm"}"#,
            #"{"id":3,"cmd":"status","tasks":["weather1","publish"]}"#,
            #"{"id":4,"cmd":"schedule","task":"publish","after":"-1s"}"#,
            #"{"id":5,"cmd":"result","task":"weather2"}"#, #"{"id":6,"cmd":"start","wait":true}"#,
        ] { seeds.append(Array(line.utf8)) }
        return seeds
    }

    static func directiveSeeds() throws -> [[UInt8]] {
        [
            #"{"cmd":"schedule","after":"1h"}"#, #"{"cmd":"schedule","task":"weather1","after":"10m","sooner":true}"#,
            #"{"cmd":"schedule","task":"weather2","at":"2099-01-01T00:00:00Z"}"#,
            #"{"cmd":"schedule","task":"publish","at":null}"#,
            #"{"cmd":"unschedule","task":"weather1"}"#, #"{"cmd":"stop_timer"}"#, #"{"cmd":"unschedule"}"#,
            #"{"id":9,"cmd":"schedule","task":"weather2","after":-1}"#,
        ].map { Array($0.utf8) }
    }

    mutating func requestLine() -> [UInt8] {
        while true {
            let line = randomLine()
            // Never a shutdown, which ends what is under test, and no watch (or `logs` that
            // follows) that takes, after which a connection's further lines are not requests (a
            // connection ends with one now and then instead).
            if case .success(let request) = Request.decode(line) {
                if case .shutdown = request.command { continue }
                if LiveFuzzTests.turnsIntoAStream(request.command) { continue }
            }
            return line
        }
    }

    mutating func directiveLine() -> [UInt8] { randomLine() }

    private mutating func randomLine() -> [UInt8] {
        let seed = seeds[Int(next() % UInt64(seeds.count))]
        switch next() % 10 {
        case 0: return (0..<Int(next() % 80)).map { _ in UInt8(truncatingIfNeeded: next()) }.filter { $0 != 10 }
        case 1, 2, 3: return seed
        default: return mutate(seed, rounds: 1 + Int(next() % 4)).filter { $0 != 10 }
        }
    }

    mutating func mutate(_ input: [UInt8], rounds: Int) -> [UInt8] {
        var bytes = input
        let tokens: [[UInt8]] = [
            Array("\\u0000".utf8), Array("99999999999999999999".utf8), Array("\"".utf8), Array("{".utf8),
            Array("}".utf8),
            Array("]".utf8), Array("null".utf8), Array("/*".utf8), Array("\\".utf8), [0xFF], [0xC3], [0x00], [0x0D],
            Array("1e999".utf8), Array(",".utf8), Array(":".utf8), Array("\"after\":\"1x\"".utf8),
            Array("\"at\":null".utf8),
            Array("\"wait\":true".utf8), Array("\"task\":\"weather1\"".utf8),
            Array("[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[".utf8),
        ]
        for _ in 0..<rounds {
            let position = bytes.isEmpty ? 0 : Int(next() % UInt64(bytes.count + 1))
            switch next() % 7 {
            case 0 where !bytes.isEmpty:
                let index = min(position, bytes.count - 1)
                bytes[index] ^= UInt8(truncatingIfNeeded: 1 << (next() % 8))
            case 1:
                bytes.removeSubrange(position...)
            case 2:
                bytes.insert(contentsOf: tokens[Int(next() % UInt64(tokens.count))], at: position)
            case 3:
                let other = seeds[Int(next() % UInt64(seeds.count))]
                let cut = Int(next() % UInt64(other.count + 1))
                bytes = Array(bytes[..<position]) + other[cut...]
            case 4 where !bytes.isEmpty:
                let end = min(bytes.count, position + Int(next() % 16))
                if position < end { bytes.removeSubrange(position..<end) }
            case 5 where !bytes.isEmpty:
                let end = min(bytes.count, position + Int(next() % 32))
                if position < end { bytes.insert(contentsOf: bytes[position..<end], at: position) }
            default:
                bytes.insert(UInt8(truncatingIfNeeded: next()), at: position)
            }
        }
        return bytes
    }
}
