import Foundation
import SmartPollClient
import SmartPollProtocol
import Testing

/// The real supervisor killed with SIGKILL again and again, at random moments and in the
/// middle of writing its state: it must always come back, with every result it acknowledged.
@Suite(.endToEnd)
struct CrashLoopTests {
    /// Run ids of `run --wait` replies, recorded by the thread that reads them.
    private final class Acknowledgements: @unchecked Sendable {
        private let lock = NSLock()
        private var runs: [Int] = []
        private let first = DispatchSemaphore(value: 0)

        func record(_ run: Int) {
            lock.lock()
            runs.append(run)
            let isFirst = runs.count == 1
            lock.unlock()
            if isFirst { first.signal() }
        }

        func waitForFirst(timeout: TimeInterval) -> Bool { first.wait(timeout: .now() + timeout) == .success }

        var all: [Int] {
            lock.lock()
            defer { lock.unlock() }
            return runs
        }
    }

    /// Blocks until `count` files are created in `folders` (the state file's temporary copy, or
    /// a result file: a write has begun and is not finished), or `timeout` passes.
    private func waitForWrites(in folders: [String], count: Int, timeout: TimeInterval) {
        let inotify = inotify_init1(Int32(IN_CLOEXEC | IN_NONBLOCK))
        guard inotify >= 0 else { return }
        defer { close(inotify) }
        for folder in folders { _ = inotify_add_watch(inotify, folder, UInt32(IN_CREATE)) }
        let deadline = Date().addingTimeInterval(timeout)
        var seen = 0
        var buffer = [UInt8](repeating: 0, count: 4096)
        while seen < count {
            let left = Int32(max(0, deadline.timeIntervalSinceNow * 1000))
            guard left > 0 else { return }
            var entry = pollfd(fd: inotify, events: Int16(POLLIN), revents: 0)
            guard poll(&entry, 1, left) == 1 else { return }
            let length = buffer.withUnsafeMutableBytes { read(inotify, $0.baseAddress, $0.count) }
            var offset = 0
            while offset + MemoryLayout<inotify_event>.size <= length {
                let nameLength = buffer.withUnsafeBytes { $0.load(fromByteOffset: offset + 12, as: UInt32.self) }
                seen += 1
                offset += MemoryLayout<inotify_event>.size + Int(nameLength)
            }
        }
    }

    @Test func killedAtArbitraryPointsTheSupervisorComesBackWithEveryAcknowledgedResult() throws {
        let kills = 50
        // Writes all the time: a quick task and one with a 256 KiB result, both every few
        // milliseconds, so kills land before, during and after writes of both kinds of file.
        let configuration = """
            {"state_dir": "$DIR/state", "tasks": {
              "acked": {"command": ["sh", "-c", "echo acked-$SMARTPOLL_RUN"]},
              "churn": {"command": ["sh", "-c", "echo churn-$SMARTPOLL_RUN"], "start": "0s", "every": "20ms"},
              "bulk": {"command": ["sh", "-c", "head -c 262144 /dev/zero | tr '\\\\0' x; echo; echo bulk-$SMARTPOLL_RUN"],
                       "start": "0s", "every": "30ms"}
            }}
            """
        var folder: String?
        var highestAcknowledged = 0
        var acknowledged = 0
        var restarts = 0
        var interruptedWrites = 0
        var problems: [String] = []
        var random = SystemRandomNumberGenerator()
        let started = Date()

        for iteration in 0...kills {
            // Every start must succeed: the harness throws if the supervisor does not come up.
            let supervisor = try SupervisorHarness(iteration == 0 ? configuration : nil, folder: folder)
            supervisor.keepsFolder = iteration < kills
            folder = supervisor.folder
            if iteration > 0 { restarts += 1 }

            // No acknowledged result is lost, and every result is the one its run produced.
            switch try supervisor.call(.result(task: "acked")).body {
            case .result(let result):
                if result.run < highestAcknowledged {
                    problems.append(
                        "start \(iteration): acked result is run \(result.run), but run \(highestAcknowledged) was acknowledged"
                    )
                }
            case .noResult:
                if highestAcknowledged > 0 {
                    problems.append(
                        "start \(iteration): acked has no result, but run \(highestAcknowledged) was acknowledged")
                }
            default:
                problems.append("start \(iteration): no result reply")
            }
            guard case .results(let results) = try supervisor.call(.results).body else {
                throw HarnessError("no results reply")
            }
            for result in results {
                let text = result.outputText ?? ""
                let wellFormed =
                    text.hasSuffix("\(result.task)-\(result.run)\n")
                    && (result.task != "bulk" || text.utf8.count == 262_144 + 1 + "bulk-\(result.run)\n".utf8.count)
                if !wellFormed {
                    problems.append(
                        "start \(iteration): \(result.task) run \(result.run) has output of another run or torn: \(text.suffix(40))"
                    )
                }
            }
            if supervisor.logText.contains("left by a write that was interrupted")
                || supervisor.logText.contains("no state file names")
            {
                interruptedWrites += 1
            }
            #expect(
                !supervisor.logText.contains("unusable"),
                "a crash never leaves a state file that cannot be read: \(supervisor.logText)")
            guard iteration < kills else { break }

            // A client acknowledging results as fast as it can, until the supervisor dies.
            let acknowledgements = Acknowledgements()
            let socket = supervisor.socket
            let finished = DispatchSemaphore(value: 0)
            DispatchQueue.global().async {
                defer { finished.signal() }
                guard let client = try? ControlClient(path: socket) else { return }
                client.setTimeout(.seconds(10))
                while let (reply, _) = try? client.call(Request(id: 1, command: .run(task: "acked", wait: true))),
                    case .runFinished(let outcome) = reply.body, outcome.succeeded
                {
                    acknowledgements.record(outcome.run)
                }
            }
            _ = acknowledgements.waitForFirst(timeout: 3)
            if iteration % 2 == 0 {
                // Anywhere.
                usleep(UInt32.random(in: 0...250_000, using: &random))
            } else {
                // Just after a write began: its temporary state file or a result file exists.
                waitForWrites(
                    in: [supervisor.path("state"), supervisor.path("state/results")],
                    count: Int.random(in: 1...3, using: &random), timeout: 1)
            }
            supervisor.signal(SIGKILL)
            #expect(try supervisor.waitForExit() == SIGKILL)
            finished.wait()
            let runs = acknowledgements.all
            acknowledged += runs.count
            highestAcknowledged = max(highestAcknowledged, runs.max() ?? 0)
        }

        let seconds = Date().timeIntervalSince(started)
        print(
            "crash loop: \(kills) SIGKILLs, \(restarts) restarts, \(acknowledged) results acknowledged, "
                + "\(interruptedWrites) restarts cleaned up an interrupted write, \(problems.count) results lost or torn, "
                + String(format: "%.1f s", seconds))
        #expect(restarts == kills)
        #expect(problems.isEmpty, "\(problems)")
        #expect(acknowledged >= kills, "each round acknowledged results to lose")
    }
}
