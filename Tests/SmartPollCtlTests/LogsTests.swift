import Foundation
import Glibc
import SmartPollProtocol
import Testing

/// `logs`: a task's last stderr lines, kept in a bounded buffer (`log_lines`) that gets exactly
/// the lines the rate-limited log gets, and `logs -f`, which then streams its new lines.
@Suite(.endToEnd)
struct LogsTests {
    static let configuration = """
        {"tasks": {
          "talk": {"command": ["sh", "-c", "echo one >&2; echo two >&2; echo three >&2"]},
          "short": {"command": ["sh", "-c", "echo one >&2; echo two >&2; echo three >&2"], "log_lines": 2},
          "chatty": {"command": ["sh", "-c", "seq -f 'chat %g' 1 200 >&2"], "log_rate": 1, "log_burst": 5}}}
        """

    /// The `line`s of a `--json logs` reply.
    static func lines(_ reply: JSONObject) -> [String] {
        (reply["lines"]?.arrayValue ?? []).compactMap { $0.objectValue?["line"]?.stringValue }
    }

    @Test func logsShowsTheLastStderrLinesWithTheirRun() throws {
        let supervisor = try SupervisorHarness(Self.configuration)
        #expect(try supervisor.ctl("run", "talk", "--wait").status == 0)
        let run = try supervisor.statusRow("talk")["last"]?.objectValue?["run"]?.int64Value.map { Int($0) } ?? -1
        let shown = try supervisor.ctl("logs", "talk")
        #expect(shown.status == 0, "\(shown)")
        let rows = shown.output.split(separator: "\n").map(String.init)
        #expect(rows.count == 3, "\(shown.output)")
        for (row, text) in zip(rows, ["one", "two", "three"]) {
            // HH:MM:SS.mmm run N: line
            #expect(
                row.range(of: #"^\d\d:\d\d:\d\d\.\d\d\d run \#(run): \#(text)$"#, options: .regularExpression) != nil,
                "\(row)")
        }
        let lastTwo = try supervisor.ctl("logs", "talk", "-n", "2")
        #expect(lastTwo.output.split(separator: "\n").map { $0.split(separator: " ").last! } == ["two", "three"])

        let reply = try json(try supervisor.ctl("--json", "logs", "talk").output)
        #expect(reply["ok"] == .bool(true) && reply["task"] == .string("talk"))
        #expect(Self.lines(reply) == ["one", "two", "three"])
        let first = reply["lines"]?.arrayValue?.first?.objectValue
        #expect(first?["run"]?.int64Value.map { Int($0) } == run, "\(String(describing: first))")
        #expect(first?["time"]?.stringValue?.hasSuffix("Z") == true, "\(String(describing: first))")
        #expect(first.map { Set($0.keys) } == ["time", "run", "line"])

        // A second run's lines come after the first's.
        #expect(try supervisor.ctl("run", "talk", "--wait").status == 0)
        let both = try json(try supervisor.ctl("--json", "logs", "talk").output)
        #expect(Self.lines(both) == ["one", "two", "three", "one", "two", "three"])
        let runs = (both["lines"]?.arrayValue ?? []).compactMap { $0.objectValue?["run"]?.int64Value.map { Int($0) } }
        #expect(runs.count == 6 && runs[3] > runs[2], "\(runs)")

        // log_lines: 2 keeps the last two.
        #expect(try supervisor.ctl("run", "short", "--wait").status == 0)
        #expect(Self.lines(try json(try supervisor.ctl("--json", "logs", "short").output)) == ["two", "three"])

        let unknown = try supervisor.ctl("logs", "tlak")
        #expect(unknown.status == 1 && unknown.error.contains("unknown_task"), "\(unknown)")
        #expect(unknown.error.contains("did you mean \"talk\"?"), "\(unknown)")
        for bad in ["0", "-3", "x"] {
            let refused = try supervisor.ctl("logs", "talk", "-n", bad)
            #expect(refused.status == 2 && refused.error.contains("-n takes a positive number"), "\(refused)")
        }
        #expect(try supervisor.ctl("status", "-n", "2").status == 2)
    }

    /// The rate limit applies: the buffer holds the lines the log got, not the dropped ones.
    @Test func linesTheRateLimitDropsAreNotKept() throws {
        let supervisor = try SupervisorHarness(Self.configuration)
        #expect(try supervisor.ctl("run", "chatty", "--wait").status == 0)
        let kept = Self.lines(try json(try supervisor.ctl("--json", "logs", "chatty").output))
        #expect(kept.count >= 5 && kept.count < 50, "\(kept.count) lines kept of 200")
        #expect(Array(kept.prefix(5)) == (1...5).map { "chat \($0)" }, "\(kept)")
        var logged: [String] = []
        let deadline = Date().addingTimeInterval(10)
        repeat {
            logged = supervisor.logText.split(separator: "\n")
                .filter { $0.contains("task=chatty") && $0.contains("stream=stderr") }
                .compactMap { line in kept.first { line.contains($0 + " ") || line.hasSuffix($0) } }
            if logged.count >= kept.count { break }
            usleep(20_000)
        } while Date() < deadline
        #expect(logged == kept, "the log got \(logged.count) lines, the buffer \(kept.count)")
    }

    /// `logs -f --json`: the reply, then the task's new lines as `task_log` events.
    @Test func followStreamsTheTasksNewLines() throws {
        let supervisor = try SupervisorHarness(Self.configuration)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Binaries.ctl)
        process.arguments = ["--socket", supervisor.socket, "logs", "talk", "-f", "--json"]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        defer {
            // SIGKILL: a child of the test runner starts with SIGTERM and SIGINT blocked.
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
        }
        let received = LineCollector(output.fileHandleForReading)
        let timeout = 10.0 * Double(Sanitizer.slowdown)
        let replyLines = received.waitFor(count: 1, timeout: timeout)
        #expect(replyLines.count == 1, "no reply")
        let reply = try json(replyLines.first ?? "{}")
        #expect(reply["ok"] == .bool(true) && Self.lines(reply).isEmpty, "\(reply)")

        // Another task's lines are not streamed to it.
        #expect(try supervisor.ctl("run", "short", "--wait").status == 0)
        #expect(try supervisor.ctl("run", "talk", "--wait").status == 0)
        let lines = received.waitFor(count: 4, timeout: timeout)
        #expect(lines.count == 4, "\(lines)")
        var texts: [String] = []
        for line in lines.dropFirst() {
            let event = try Event.decode(line)
            guard case .taskLog(let task, let run, let text) = event.kind else {
                Issue.record("not a task_log event: \(line)")
                continue
            }
            #expect(task == "talk" && run > 0)
            texts.append(text)
        }
        #expect(texts == ["one", "two", "three"])
        #expect(process.isRunning, "-f follows until interrupted")
    }
}

/// Reads lines from a pipe on a thread of its own; ``waitFor(count:timeout:)`` waits until that
/// many came.
final class LineCollector: @unchecked Sendable {
    private var lines: [String] = []
    private let lock = NSLock()
    private let arrived = DispatchSemaphore(value: 0)

    init(_ handle: FileHandle) {
        Thread.detachNewThread { [self] in
            var pending = Data()
            while true {
                let chunk = handle.availableData
                if chunk.isEmpty { break }
                pending.append(chunk)
                while let newline = pending.firstIndex(of: 10) {
                    let line = String(decoding: pending[pending.startIndex..<newline], as: UTF8.self)
                    pending = Data(pending[(newline + 1)...])
                    lock.withLock { lines.append(line) }
                }
                arrived.signal()
            }
            arrived.signal()
        }
    }

    /// The lines so far, once there are `count` or `timeout` seconds passed.
    func waitFor(count: Int, timeout: Double) -> [String] {
        let deadline = DispatchTime.now() + timeout
        while true {
            let current = lock.withLock { lines }
            if current.count >= count { return current }
            if arrived.wait(timeout: deadline) == .timedOut { return lock.withLock { lines } }
        }
    }
}
