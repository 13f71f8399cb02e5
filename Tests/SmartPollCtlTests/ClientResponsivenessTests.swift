import Foundation
import Glibc
import SmartPollProtocol
import Testing

/// No client holds the loop (issue 13): big `results` replies are encoded in slices as each
/// client reads, a pipeline of thousands of requests is taken a bounded share per turn, and a
/// refused peer that writes before it reads still reads its refusal. Meanwhile `ping` is
/// answered and task timeouts are enforced on time.
@Suite(.endToEnd)
struct ClientResponsivenessTests {
    /// Ten tasks with 1 MiB of random (so Base64) output each; `results` is 13 MiB.
    static let bigTasks = (0..<10).map {
        #""big\#($0)": {"command": ["sh", "-c", "head -c 1048576 /dev/urandom | tee $DIR/out\#($0)"]}"#
    }

    @Test func bigResultsRepliesDelayNeitherPingNorATaskTimeout() throws {
        let sleeper =
            #""sleeper": {"command": ["sleep", "5"], "timeout": "500ms", "kill_grace": "500ms", "on_failure": "continue"}"#
        let supervisor = try SupervisorHarness(#"{"tasks": {\#((Self.bigTasks + [sleeper]).joined(separator: ","))}}"#)
        for index in 0..<10 { #expect(try supervisor.ctl("run", "big\(index)", "--wait").status == 0) }
        let watcher = try supervisor.watch(["sleeper"])

        // Six connections asking for `results` again and again: three read every reply as fast
        // as they can, three send twenty requests and never read.
        let socket = supervisor.socket
        let stopped = Box<Bool>()
        let group = DispatchGroup()
        let lock = NSLock()
        let repliesRead = Box<Int>()
        repliesRead.value = 0
        let request = #"{"id":1,"cmd":"results"}"# + "\n"
        @Sendable func isStopped() -> Bool {
            lock.lock()
            defer { lock.unlock() }
            return stopped.value == true
        }
        for index in 0..<6 {
            group.enter()
            Thread {
                defer { group.leave() }
                guard let client = try? PacedSocket(socket) else { return }
                if index % 2 == 1 {
                    _ = client.send(String(repeating: request, count: 20))
                    while !isStopped() { usleep(50_000) }
                    return
                }
                while !isStopped() {
                    guard client.send(request), (try? client.skipLine(timeout: 30)) != nil else { return }
                    lock.lock()
                    repliesRead.value! += 1
                    lock.unlock()
                }
            }.start()
        }
        usleep(300_000)  // the readers are at work

        // Every request is timed, the one that starts the sleeper too.
        let clock = ContinuousClock()
        var began = clock.now
        #expect(try supervisor.ctl("run", "sleeper").status == 0)
        var slowest = clock.now - began
        let pinger = try RawSocket(supervisor.socket)
        var pings = 0
        let pingsEnd = clock.now + .seconds(2) * Sanitizer.slowdown
        while clock.now < pingsEnd {
            began = clock.now
            try expectPing(pinger, id: Int64(pings))
            slowest = max(slowest, clock.now - began)
            pings += 1
            usleep(20_000)
        }
        #expect(slowest < .seconds(1) * Sanitizer.slowdown, "a request waited \(slowest) (of \(pings + 1))")

        let finished = try #require(try watcher.finishes(of: "sleeper").first)
        guard case .taskFinished(_, _, _, _, let timedOut, _, let duration, _, _) = finished.kind else {
            Issue.record("not a finish: \(finished)")
            return
        }
        #expect(timedOut)
        // Deadline 500 ms, and SIGTERM ends sleep at once: 1 s of slack beyond deadline + grace.
        #expect(duration < Double(1_000 + 1_000 * Sanitizer.slowdown), "the timeout was enforced after \(duration) ms")
        lock.lock()
        stopped.value = true
        lock.unlock()
        #expect(group.wait(timeout: .now() + 60) == .success)
        lock.lock()
        let read = repliesRead.value ?? 0
        lock.unlock()
        #expect(read >= 3, "the readers read \(read) whole replies")
    }

    @Test func aSlowReaderOfAHugeResultsGetsExactlyWhatTheTasksWrote() throws {
        // Binary outputs, and a text output with escapes and multi-byte characters.
        let text =
            #""text": {"command": ["sh", "-c", "i=0; while [ $i -lt 6000 ]; do printf 'line \"%d\"\\t\\\\ \\303\\251 \\360\\237\\230\\200\\n' $i; i=$((i+1)); done | tee $DIR/text"]}"#
        let supervisor = try SupervisorHarness(#"{"tasks": {\#((Self.bigTasks + [text]).joined(separator: ","))}}"#)
        for index in 0..<10 { #expect(try supervisor.ctl("run", "big\(index)", "--wait").status == 0) }
        #expect(try supervisor.ctl("run", "text", "--wait").status == 0)

        let client = try PacedSocket(supervisor.socket)
        #expect(client.send(#"{"id":"slow","cmd":"results"}"# + "\n"))
        // 64 KiB at a time with pauses: the reply comes out in many slices while this reads.
        let line = try client.readLine(chunk: 65_536, pause: 5_000, timeout: 60)
        let reply = try Reply.decode(line, for: .results)
        guard case .results(let results) = reply.body else {
            Issue.record("not results: \(reply)")
            return
        }
        #expect(reply.id == .string("slow"))
        #expect(results.map(\.task) == (0..<10).map { "big\($0)" } + ["text"])
        for result in results {
            let file = result.task == "text" ? "text" : "out" + result.task.dropFirst(3)
            let written = try #require(FileManager.default.contents(atPath: supervisor.path(file)))
            #expect(result.output == Array(written), "\(result.task): \(result.output.count) bytes")
            #expect(!result.truncated)
        }
        #expect(results.last?.outputText?.hasPrefix("line \"0\"\t\\ é 😀\n") == true)
        // Byte for byte the reply encoded at once, as the fixtures pin it.
        #expect(Array(line.utf8) + [10] == reply.encodedLine())
        #expect(line.contains(#""output_base64":""#) && line.contains(#""output":"line \"0\"\t\\ é"#))
    }

    @Test func aClientPipeliningAHundredThousandPingsDoesNotDelayAQuietOne() throws {
        let supervisor = try SupervisorHarness(#"{"tasks": {"idle": {"command": ["true"]}}}"#)
        let flooder = try RawSocket(supervisor.socket)
        let count = 100_000
        let burst = (0..<count).map { #"{"id":\#($0),"cmd":"ping"}"# + "\n" }.joined()
        let group = DispatchGroup()
        let sent = Box<Bool>()
        let sender = Box<RawSocket>()
        sender.value = flooder
        group.enter()
        Thread {
            sent.value = sender.value?.send(burst)
            group.leave()
        }.start()

        let quiet = try RawSocket(supervisor.socket)
        let clock = ContinuousClock()
        var slowest: Duration = .zero
        var answered = 0
        var next = 0
        while answered < count {
            // The flood's replies, in order, read in between the quiet client's pings.
            for _ in 0..<5_000 where answered < count {
                let reply = try flooder.reply()
                #expect(reply["id"] == .int(Int64(answered)) && reply["ok"] == .bool(true))
                answered += 1
            }
            let began = clock.now
            try expectPing(quiet, id: Int64(next))
            slowest = max(slowest, clock.now - began)
            next += 1
        }
        #expect(group.wait(timeout: .now() + 30) == .success && sent.value == true)
        #expect(slowest < .seconds(1) * Sanitizer.slowdown, "the quiet client waited \(slowest)")
    }

    @Test func aRefusedClientThatWritesBeforeReadingReadsItsRefusal() throws {
        let supervisor = try SupervisorHarness(#"{"max_connections": 1, "tasks": {"idle": {"command": ["true"]}}}"#)
        let held = try RawSocket(supervisor.socket)
        try expectPing(held, id: 1)
        // A request line of 200 KiB (more than the socket buffers hold), written whole before
        // anything is read, as a plain blocking client does.
        let big = #"{"id":2,"cmd":"ping","pad":""# + String(repeating: "x", count: 200 << 10) + "\"}\n"
        var failures: [String] = []
        for attempt in 0..<20 {
            let client = try RawSocket(supervisor.socket)
            let request = attempt % 4 == 3 ? #"{"id":3,"cmd":"ping"}"# + "\n" : big
            if !client.send(request) { failures.append("\(attempt): send failed: \(String(cString: strerror(errno)))") }
            guard let line = try client.readLine(timeout: 10) else {
                failures.append("\(attempt): no reply (end of stream or reset)")
                continue
            }
            let reply = try json(line)
            if reply["error"]?.objectValue?["code"] != .string("busy") { failures.append("\(attempt): \(line)") }
            if try client.readLine(timeout: 10) != nil { failures.append("\(attempt): more after the refusal") }
        }
        #expect(failures.isEmpty, "\(failures.prefix(5))")
        // The connection held is still served, and the lingering ones never counted.
        try expectPing(held, id: 4)
    }

    @Test func aPeerOfAnotherUidThatWritesBeforeReadingReadsPermissionDenied() throws {
        // uid 65534 must reach the socket: the harness folder (0755) is under the temporary
        // folder, which must let others through; setpriv changes the uid (root only).
        guard getuid() == 0, access("/usr/bin/setpriv", X_OK) == 0, access("/usr/bin/python3", X_OK) == 0 else {
            return #expect(getuid() != 0, "needs root, setpriv and python3")
        }
        let supervisor = try SupervisorHarness(
            #"{"socket_mode": "0666", "tasks": {"idle": {"command": ["true"]}}}"#, folderMode: 0o755)
        chmod(supervisor.folder, 0o755)
        // A plain blocking client: a 200 KiB request written whole, then the reply read.
        let client = """
            import socket, sys
            s = socket.socket(socket.AF_UNIX)
            s.connect(sys.argv[1])
            try:
                s.sendall(b'{"id":1,"cmd":"ping","pad":"' + b'x' * 204800 + b'"}\\n')
            except OSError as error:
                print("send:", error)
            data = b''
            try:
                while True:
                    chunk = s.recv(65536)
                    if not chunk: break
                    data += chunk
            except OSError as error:
                print("recv:", error)
            sys.stdout.write(data.decode())
            """
        var failures: [String] = []
        for attempt in 0..<10 {
            let result = try runCommand(
                "/usr/bin/setpriv",
                [
                    "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c", client,
                    supervisor.socket,
                ])
            let lines = result.output.split(separator: "\n")
            guard lines.count == 1, let reply = try? json(String(lines[0])),
                reply["error"]?.objectValue?["code"] == .string("permission_denied")
            else {
                failures.append("\(attempt): \(result)")
                continue
            }
        }
        #expect(failures.isEmpty, "\(failures.prefix(3))")
        try expectPing(try RawSocket(supervisor.socket), id: 1)
    }

    @Test func refusedPeersLingerForABoundedTime() throws {
        let supervisor = try SupervisorHarness(#"{"max_connections": 1, "tasks": {"idle": {"command": ["true"]}}}"#)
        let held = try RawSocket(supervisor.socket)
        try expectPing(held, id: 1)
        // Refused peers that never close: their writing side ends at once, what they send is
        // read and dropped for a while, then their connection is closed.
        let refused = try (0..<5).map { _ in try RawSocket(supervisor.socket) }
        for client in refused {
            let refusal = try #require(try client.readLine(timeout: 10))
            expectError(try json(refusal), code: "busy", id: .null)
            #expect(try client.readLine(timeout: 10) == nil, "the supervisor's side ended after the refusal")
            #expect(client.send(#"{"id":9,"cmd":"ping"}"# + "\n"), "still read while it lingers")
        }
        usleep(UInt32(1_000_000 + 1_500_000 * Sanitizer.slowdown))
        for client in refused {
            #expect(!client.send(#"{"id":9,"cmd":"ping"}"# + "\n"), "closed once the linger is over")
        }
        try expectPing(held, id: 2)
        held.close()
        // A place is free: the lingering peers never took one.
        try expectPing(try RawSocket(supervisor.socket), id: 3)
    }
}

/// A client socket that reads a bounded chunk at a time with pauses: a slow reader.
private final class PacedSocket {
    private let descriptor: Int32

    init(_ path: String) throws {
        descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw HarnessError("socket: \(String(cString: strerror(errno)))") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard connected == 0 else { throw HarnessError("cannot connect to \(path)") }
    }

    deinit { Glibc.close(descriptor) }

    func send(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        return bytes.withUnsafeBytes { Glibc.send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            == bytes.count
    }

    /// Reads as fast as it can up to the end of the reply in flight (the only one: it ends
    /// where a read ends with a newline), keeping nothing.
    func skipLine(timeout: TimeInterval) throws {
        let deadline = Date().addingTimeInterval(timeout)
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while Date() < deadline {
            var entry = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            guard poll(&entry, 1, 1_000) > 0 else { continue }
            let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            guard count > 0 else { throw HarnessError("the stream ended") }
            if buffer[count - 1] == 10 { return }
        }
        throw HarnessError("no whole line within \(timeout) s")
    }

    /// Reads `chunk` bytes at most per read, sleeping `pause` microseconds between reads, up
    /// to the first newline; returns the line without it.
    func readLine(chunk: Int, pause: UInt32, timeout: TimeInterval) throws -> String {
        let deadline = Date().addingTimeInterval(timeout)
        var line: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: chunk)
        while Date() < deadline {
            var entry = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            guard poll(&entry, 1, 1_000) > 0 else { continue }
            let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            guard count > 0 else { throw HarnessError("the stream ended after \(line.count) bytes") }
            if let newline = buffer[..<count].firstIndex(of: 10) {
                line += buffer[..<newline]
                return String(decoding: line, as: UTF8.self)
            }
            line += buffer[..<count]
            usleep(pause)
        }
        throw HarnessError("no whole line within \(timeout) s (\(line.count) bytes)")
    }
}
