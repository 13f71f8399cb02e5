import Foundation
import SmartPollClient
import SmartPollProtocol
import Testing

/// The real binaries, side by side with the test bundle in the build folder.
extension Trait where Self == TimeLimitTrait {
    /// An end-to-end suite's time limit: it catches a hang, it is no speed test. Swift Testing
    /// starts a test's clock when the test is scheduled, not when one of the cooperative pool's
    /// threads (one a core) takes it up, so on CI's 2 cores a test's time includes its wait behind
    /// the rest of the group (the group took 71 s there, and suites limited to a minute failed
    /// though each of their tests took a second or two).
    static var endToEnd: Self { .timeLimit(.minutes(5)) }
}

enum Binaries {
    static let folder: String = {
        var path = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        // swift test runs .build/<config>/<package>PackageTests.xctest
        while !FileManager.default.fileExists(atPath: path.appendingPathComponent("smartpoll-supervisor").path),
            path.pathComponents.count > 1
        {
            path.deleteLastPathComponent()
        }
        return path.path
    }()

    static var supervisor: String { folder + "/smartpoll-supervisor" }
    static var ctl: String { folder + "/smartpollctl" }
}

struct HarnessError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// What a finished command printed and how it exited.
struct CommandResult {
    var status: Int32
    var output: String
    var error: String
}

/// Runs `executable` to completion with `arguments`, optional stdin text and environment.
func runCommand(
    _ executable: String, _ arguments: [String], input: String? = nil,
    environment: [String: String]? = nil, timeout: TimeInterval = 20
) throws -> CommandResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    if let environment { process.environment = environment }
    let output = Pipe()
    let error = Pipe()
    let standardInput = Pipe()
    process.standardOutput = output
    process.standardError = error
    process.standardInput = standardInput
    try process.run()
    if let input { standardInput.fileHandleForWriting.write(Data(input.utf8)) }
    try standardInput.fileHandleForWriting.close()
    // Read both pipes to the end on other threads so that a chatty child never blocks.
    let outputData = Box<Data>()
    let errorData = Box<Data>()
    let group = DispatchGroup()
    group.enter()
    DispatchQueue.global().async {
        outputData.value = output.fileHandleForReading.readDataToEndOfFile(); group.leave()
    }
    group.enter()
    DispatchQueue.global().async {
        errorData.value = error.fileHandleForReading.readDataToEndOfFile(); group.leave()
    }
    if group.wait(timeout: .now() + timeout) == .timedOut {
        process.terminate()
        throw HarnessError("\(executable) \(arguments) did not finish within \(timeout) s")
    }
    process.waitUntilExit()
    return CommandResult(
        status: process.terminationStatus,
        output: String(decoding: outputData.value ?? Data(), as: UTF8.self),
        error: String(decoding: errorData.value ?? Data(), as: UTF8.self))
}

/// `make sanitize` sets SMARTPOLL_SANITIZER: the binaries under test are then several times
/// slower and bigger (AddressSanitizer's shadow memory and quarantine), so that limits on time
/// and memory, which are there to catch what grows without bound, are scaled.
enum Sanitizer {
    static let name = ProcessInfo.processInfo.environment["SMARTPOLL_SANITIZER"]
    static func memory(_ bytes: Int) -> Int { name == nil ? bytes : bytes * 8 }
    static var slowdown: Int { name == nil ? 1 : 4 }
}

/// A task whose result is larger than a state directory keeps inline in its record (4 KiB), so
/// that it is written to a file of its own under `results/`: for tests of those files.
enum FileResult {
    /// The task's `command`, as configuration JSON.
    static let command = #"["sh", "-c", "printf '%05000d\\n' 0"]"#
    /// What it prints: 5,001 bytes.
    static let output = String(repeating: "0", count: 5_000) + "\n"
}

final class Box<Value>: @unchecked Sendable {
    var value: Value?
}

/// A real `smartpoll-supervisor` on a socket in a fresh temporary folder, with its log kept,
/// stopped (SIGTERM) and cleaned up when released.
final class SupervisorHarness {
    let folder: String
    let socket: String
    let configurationPath: String
    private let process = Process()
    private let logPipe = Pipe()
    private let log = Box<Data>()
    private let logLock = NSLock()
    /// The log kept in memory is cut at this size (a test that floods it need not hold it all).
    private let logLimit = 32 << 20

    /// Whether the folder stays when the harness goes (for a supervisor restarted on it).
    var keepsFolder = false
    /// Lets the log's reader go on after `stallsLog` stopped it.
    private let logResumed = DispatchSemaphore(value: 0)

    /// Writes `configuration` (the JSON text, `$DIR` replaced by the folder) to the folder and
    /// starts the supervisor; returns once it logged that it listens.
    ///
    /// - Parameters:
    ///   - configuration: nil keeps the folder's `smartpoll.json` as it is.
    ///   - folder: an existing folder (a restart); by default a fresh one.
    ///   - environment: added to the test's environment.
    ///   - launcher: an argv run instead, with the supervisor's path and arguments after it
    ///     (`["/bin/sh", "-c", "...; exec \"$0\" \"$@\""]`).
    ///   - standardInput: the supervisor's stdin (default /dev/null).
    ///   - waitsUntilListening: false returns as soon as the process runs.
    ///   - stallsLog: the log (the supervisor's stderr) is not read once it says it listens,
    ///     until ``resumeLog()``: a destination that does not read.
    init(
        _ configuration: String?, arguments: [String] = [], folderMode: Int = 0o700, folder existing: String? = nil,
        environment extra: [String: String] = [:], launcher: [String]? = nil, standardInput: FileHandle? = nil,
        waitsUntilListening: Bool = true, stallsLog: Bool = false
    ) throws {
        folder =
            existing
            ?? FileManager.default.temporaryDirectory.appendingPathComponent(
                "smartpoll-e2e-\(UUID().uuidString.prefix(8))"
            ).path
        if existing == nil {
            try FileManager.default.createDirectory(
                atPath: folder, withIntermediateDirectories: true,
                attributes: [.posixPermissions: folderMode])
        }
        socket = folder + "/supervisor.sock"
        configurationPath = folder + "/smartpoll.json"
        if let configuration {
            try configuration.replacingOccurrences(of: "$DIR", with: folder)
                .write(toFile: configurationPath, atomically: true, encoding: .utf8)
        }
        let supervisorArguments = ["--config", configurationPath, "--socket", socket] + arguments
        if let launcher {
            process.executableURL = URL(fileURLWithPath: launcher[0])
            process.arguments = Array(launcher.dropFirst()) + [Binaries.supervisor] + supervisorArguments
        } else {
            process.executableURL = URL(fileURLWithPath: Binaries.supervisor)
            process.arguments = supervisorArguments
        }
        process.currentDirectoryURL = URL(fileURLWithPath: folder)
        var environment = ProcessInfo.processInfo.environment
        environment["PATH"] = Binaries.folder + ":" + (environment["PATH"] ?? "/usr/bin:/bin")
        for (name, value) in extra { environment[name] = value }
        process.environment = environment
        process.standardError = logPipe
        process.standardOutput = logPipe
        process.standardInput = standardInput ?? FileHandle.nullDevice
        let ready = DispatchSemaphore(value: 0)
        // A blocking read loop on a thread of its own, not `readabilityHandler`: tearing down the
        // dispatch read source behind that races the close of the descriptor and crashed the
        // test process now and then in libdispatch's `_dispatch_event_loop_drain` (seen under
        // ThreadSanitizer; a known Foundation teardown race on Linux).
        let log = self.log
        let lock = logLock
        let reader = logPipe.fileHandleForReading
        let limit = logLimit
        let resumed = logResumed
        Thread {
            var chunk = [UInt8](repeating: 0, count: 65_536)
            var isReady = false
            var seen = 0
            var stalled = stallsLog
            while true {
                let count = chunk.withUnsafeMutableBytes { Glibc.read(reader.fileDescriptor, $0.baseAddress, $0.count) }
                if count < 0 && errno == EINTR { continue }
                if count <= 0 { break }
                lock.lock()
                // In place: a copy of the log for every chunk made a flood of it quadratic.
                if log.value == nil { log.value = Data() }
                let kept = log.value!.count
                if kept < limit { log.value!.append(contentsOf: chunk[..<min(count, limit - kept)]) }
                if !isReady, String(decoding: log.value![max(0, seen - 16)...], as: UTF8.self).contains(" listening ") {
                    isReady = true
                    ready.signal()
                }
                seen = log.value!.count
                lock.unlock()
                if stalled && isReady {
                    resumed.wait()
                    stalled = false
                }
            }
            if !isReady { ready.signal() }
            withExtendedLifetime(reader) {}
        }.start()
        try process.run()
        guard waitsUntilListening else { return }
        guard ready.wait(timeout: .now() + 10) == .success, process.isRunning else {
            throw HarnessError("the supervisor did not start:\n\(logText)")
        }
    }

    deinit {
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
        if !keepsFolder {
            // A supervisor killed by a test leaves its (empty) cgroup subtree; a restart on the
            // folder would end what is in it, so it goes with the folder. Its name comes from the
            // state_dir, or from the socket without one.
            var identity = socket
            if let text = try? String(contentsOfFile: configurationPath, encoding: .utf8),
                case .object(let object)? = try? JSONParser.parse(Array(text.utf8), mode: .lenient),
                case .string(let directory)? = object["state_dir"]
            {
                identity = directory.hasPrefix("/") ? directory : folder + "/" + directory
            }
            try? FileManager.default.removeItem(atPath: folder)
            Containment.removeSubtree(identity: identity)
        }
    }

    /// Reads the log again after `stallsLog` stopped it.
    func resumeLog() {
        logResumed.signal()
    }

    /// Sends `signal` to the supervisor (SIGKILL: a crash).
    func signal(_ signal: Int32) {
        kill(process.processIdentifier, signal)
    }

    var pid: Int32 { process.processIdentifier }
    var isRunning: Bool { process.isRunning }

    /// Whether the supervisor has a shared library whose file name starts with `name` mapped
    /// (/proc/PID/maps): libcurl and libmicrohttpd are loaded only when a feature needs them.
    func hasMapped(_ name: String) throws -> Bool {
        // Read to its end: /proc files say they are empty (size 0), so a read by size gets nothing.
        let maps = try FileHandle(forReadingFrom: URL(fileURLWithPath: "/proc/\(pid)/maps")).readToEnd() ?? Data()
        return String(decoding: maps, as: UTF8.self).split(separator: "\n").contains {
            $0.split(separator: "/").last?.hasPrefix(name) == true
        }
    }

    var logText: String {
        logLock.lock()
        defer { logLock.unlock() }
        return String(decoding: log.value ?? Data(), as: UTF8.self)
    }

    /// Whether the log comes to contain `text` within `timeout`: the supervisor's log thread
    /// writes a line after the reply or event that caused it may have reached the test, so a
    /// test that reads the log right after a reply polls it (the file has no event to wait on).
    func logEventuallyContains(_ text: String, timeout: TimeInterval = 10) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while !logText.contains(text) {
            if Date() > deadline { return false }
            usleep(10_000)
        }
        return true
    }

    /// Waits for the supervisor to exit and returns its status.
    func waitForExit(timeout: TimeInterval = 20) throws -> Int32 {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning {
            guard Date() < deadline else { throw HarnessError("the supervisor did not exit") }
            // Process has no timed wait; its termination handler would need a Sendable self.
            usleep(2_000)
        }
        return process.terminationStatus
    }

    /// Runs the real `smartpollctl` against this supervisor.
    @discardableResult
    func ctl(_ arguments: String..., input: String? = nil) throws -> CommandResult {
        try runCommand(Binaries.ctl, ["--socket", socket] + arguments, input: input)
    }

    /// The task's row of `smartpollctl --json status TASK`.
    func statusRow(_ task: String) throws -> JSONObject {
        let reply = try json(try ctl("--json", "status", task).output)
        guard case .array(let rows)? = reply["tasks"], case .object(let row)? = rows.first else {
            throw HarnessError("no status row for \(task)")
        }
        return row
    }

    /// A protocol connection of this test's own.
    func connect() throws -> ControlClient {
        let client = try ControlClient(path: socket)
        client.setTimeout(.seconds(20))
        return client
    }

    /// Sends one request on a fresh connection and returns the decoded reply.
    func call(_ command: Command) throws -> Reply {
        try connect().call(Request(id: .int(1), command: command)).0
    }

    /// A `watch` connection: call before causing the events you wait for.
    func watch(_ tasks: [String]? = nil) throws -> EventStream {
        let client = try connect()
        let (reply, _) = try client.call(Request(id: .int(1), command: .watch(tasks: tasks)))
        guard reply.isSuccess else { throw HarnessError("watch was refused: \(reply)") }
        return EventStream(client: client)
    }

    func path(_ name: String) -> String { folder + "/" + name }

    func read(_ name: String) -> String? { try? String(contentsOfFile: path(name), encoding: .utf8) }
}

/// Events from a `watch` connection, read as they come.
struct EventStream {
    let client: ControlClient

    func next() throws -> Event {
        try Event.decode(client.readLine())
    }

    /// Reads events until one matches, returning every event read (the match last).
    @discardableResult
    func until(_ predicate: (Event) -> Bool) throws -> [Event] {
        var seen: [Event] = []
        while true {
            let event = try next()
            seen.append(event)
            if predicate(event) { return seen }
        }
    }

    /// Reads until the `count`-th `task_finished` of `task`, returning those finish events.
    @discardableResult
    func finishes(of task: String, count: Int = 1) throws -> [Event] {
        var found: [Event] = []
        try until { event in
            if case .taskFinished(let name, _, _, _, _, _, _, _, _) = event.kind, name == task { found.append(event) }
            return found.count == count
        }
        return found
    }
}

/// Decodes one JSON line printed by `smartpollctl --json`.
func json(_ text: String) throws -> JSONObject {
    guard
        case .object(let object) = try JSONParser.parse(
            text.trimmingCharacters(in: .whitespacesAndNewlines), mode: .strict)
    else {
        throw HarnessError("not a JSON object: \(text)")
    }
    return object
}
