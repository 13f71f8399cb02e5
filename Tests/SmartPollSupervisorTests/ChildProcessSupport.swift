import CSmartPollPosix
import Glibc
import SmartPollSupervisor

/// A failure of the test harness itself (a timeout, a failing system call).
struct HarnessFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// The environment most tests give their child.
let standardEnvironment = ["PATH=/bin:/usr/bin"]

/// What a finished child left behind.
struct ChildResult {
    var status: TerminationStatus
    var output: String
    var errorOutput: String
    var directives: String
}

/// Milliseconds left until `deadline`, at least 0.
private func millisecondsLeft(until deadline: ContinuousClock.Instant) -> Int32 {
    let left = deadline - .now
    if left <= .zero { return 0 }
    let (seconds, attoseconds) = left.components
    return Int32(min(seconds * 1000 + attoseconds / 1_000_000_000_000_000 + 1, 60_000))
}

/// Reads each descriptor until end-of-file, all at once through `poll`, so a
/// child writing to several of them never blocks. Throws after `timeout`.
func readUntilEndOfFile(_ descriptors: [Int32], timeout: Duration = .seconds(3)) throws -> [String] {
    let deadline = ContinuousClock.now + timeout
    var collected = [[UInt8]](repeating: [], count: descriptors.count)
    var open = Set(descriptors.indices)
    var buffer = [UInt8](repeating: 0, count: 4096)
    while !open.isEmpty {
        let indices = open.sorted()
        var polled = indices.map { pollfd(fd: descriptors[$0], events: Int16(POLLIN), revents: 0) }
        let ready = poll(&polled, nfds_t(polled.count), millisecondsLeft(until: deadline))
        if ready < 0 && errno == EINTR { continue }
        guard ready > 0 else { throw HarnessFailure("no end-of-file within \(timeout)") }
        for (slot, index) in indices.enumerated() where polled[slot].revents != 0 {
            let count = buffer.withUnsafeMutableBytes { read(descriptors[index], $0.baseAddress, $0.count) }
            if count > 0 {
                collected[index].append(contentsOf: buffer[..<count])
            } else if count == 0 || errno != EINTR {
                open.remove(index)
            }
        }
    }
    return collected.map { String(decoding: $0, as: UTF8.self) }
}

/// Reads from `descriptor` up to and including the first newline.
func readLine(from descriptor: Int32, timeout: Duration = .seconds(3)) throws -> String {
    let deadline = ContinuousClock.now + timeout
    var line: [UInt8] = []
    var byte: UInt8 = 0
    while line.last != UInt8(ascii: "\n") {
        var polled = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        let ready = poll(&polled, 1, millisecondsLeft(until: deadline))
        if ready < 0 && errno == EINTR { continue }
        guard ready > 0 else { throw HarnessFailure("no line within \(timeout)") }
        let count = read(descriptor, &byte, 1)
        guard count > 0 else { break }
        line.append(byte)
    }
    return String(decoding: line, as: UTF8.self)
}

/// Whether `pidfd` becomes readable (its process exits) within `timeout`.
func pidfdBecomesReadable(_ pidfd: Int32, timeout: Duration) -> Bool {
    let deadline = ContinuousClock.now + timeout
    while true {
        var polled = pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0)
        let ready = poll(&polled, 1, millisecondsLeft(until: deadline))
        if ready < 0 && errno == EINTR { continue }
        return ready > 0
    }
}

/// Waits for `process` to exit by polling its pidfd (bounded), then reaps it.
func waitForExit(_ process: SpawnedProcess, timeout: Duration = .seconds(3)) throws -> TerminationStatus {
    guard let pidfd = process.pidfd else { throw HarnessFailure("the kernel gave no pidfd") }
    guard pidfdBecomesReadable(pidfd, timeout: timeout) else {
        throw HarnessFailure("process \(process.pid) still running after \(timeout)")
    }
    guard let status = try process.wait(nonblocking: true) else {
        throw HarnessFailure("pidfd of \(process.pid) readable but the process not reapable")
    }
    return status
}

/// Kills a process a test gave up on, and its group, and reaps it.
func killAndReap(_ process: SpawnedProcess) {
    _ = try? process.signalGroup(SIGKILL)
    _ = try? process.signal(SIGKILL)
    _ = try? process.wait()
}

/// Runs `arguments` to completion with pipes on 1, 2 and 3 and returns what came out.
func runChild(
    _ arguments: [String],
    environment: [String] = standardEnvironment,
    workingDirectory: String? = nil,
    standardInput: SpawnRequest.Descriptor = .nullDevice
) throws -> ChildResult {
    let output = try Pipe()
    let errorOutput = try Pipe()
    let directives = try Pipe()
    var process = try ProcessSpawner.spawn(
        SpawnRequest(
            arguments: arguments,
            environment: environment,
            workingDirectory: workingDirectory,
            standardInput: standardInput,
            standardOutput: .fileDescriptor(output.writeEnd!),
            standardError: .fileDescriptor(errorOutput.writeEnd!),
            directives: directives.writeEnd!
        ))
    defer { process.close() }
    output.closeWriteEnd()
    errorOutput.closeWriteEnd()
    directives.closeWriteEnd()
    do {
        let texts = try readUntilEndOfFile([output.readEnd!, errorOutput.readEnd!, directives.readEnd!])
        let status = try waitForExit(process)
        return ChildResult(status: status, output: texts[0], errorOutput: texts[1], directives: texts[2])
    } catch {
        killAndReap(process)
        throw error
    }
}

/// Runs a `/bin/sh -c` script to completion.
func runShell(
    _ script: String,
    environment: [String] = standardEnvironment,
    workingDirectory: String? = nil,
    standardInput: SpawnRequest.Descriptor = .nullDevice
) throws -> ChildResult {
    try runChild(
        ["/bin/sh", "-c", script],
        environment: environment,
        workingDirectory: workingDirectory,
        standardInput: standardInput
    )
}

/// The pids listed in /proc/thread-self/children: the children the calling
/// thread created and nobody has reaped yet, zombies included.
func childrenOfThisThread() throws -> Set<Int32> {
    let fd = open("/proc/thread-self/children", O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw HarnessFailure("cannot open /proc/thread-self/children") }
    defer { close(fd) }
    let text = try readUntilEndOfFile([fd])[0]
    return Set(text.split(separator: " ").compactMap { Int32($0.filter { !$0.isWhitespace }) })
}

/// A directory under /tmp removed, with the files created through it, on deinit.
final class TemporaryDirectory {
    let path: String
    private var files: [String] = []

    init() throws {
        var template = Array("/tmp/smartpoll-spawner-XXXXXX".utf8CString)
        guard mkdtemp(&template) != nil else { throw HarnessFailure("mkdtemp failed") }
        path = String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Creates `name` (possibly `sub/name`, creating `sub`) with `contents` and `mode`.
    @discardableResult
    func createFile(_ name: String, contents: String, mode: mode_t = 0o644) throws -> String {
        if let slash = name.lastIndex(of: "/") {
            let directory = path + "/" + name[..<slash]
            if mkdir(directory, 0o755) == 0 { files.insert(directory, at: 0) }
        }
        let file = path + "/" + name
        let fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        guard fd >= 0 else { throw HarnessFailure("cannot create \(file)") }
        defer { close(fd) }
        let bytes = Array(contents.utf8)
        guard write(fd, bytes, bytes.count) == bytes.count, fchmod(fd, mode) == 0 else {
            throw HarnessFailure("cannot write \(file)")
        }
        files.insert(file, at: 0)
        return file
    }

    deinit {
        for file in files { _ = remove(file) }
        _ = rmdir(path)
    }
}
