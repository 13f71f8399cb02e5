import Foundation
import SmartPollClient
import SmartPollProtocol
import Testing

/// A Unix socket of `type` bound at `address`: a path, or `@name` for an abstract address.
private func boundUnixSocket(_ type: __socket_type, _ address: String) throws -> Int32 {
    let descriptor = socket(AF_UNIX, Int32(type.rawValue | SOCK_CLOEXEC.rawValue), 0)
    guard descriptor >= 0 else { throw HarnessError("socket: \(String(cString: strerror(errno)))") }
    var storage = sockaddr_un()
    storage.sun_family = sa_family_t(AF_UNIX)
    var bytes = Array(address.utf8)
    let abstract = bytes.first == UInt8(ascii: "@")
    if abstract { bytes[0] = 0 }
    guard bytes.count < MemoryLayout.size(ofValue: storage.sun_path) else { throw HarnessError("address too long") }
    withUnsafeMutableBytes(of: &storage.sun_path) { $0.copyBytes(from: bytes) }
    let length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + (abstract ? 0 : 1))
    let bound = withUnsafePointer(to: &storage) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, length) }
    }
    guard bound == 0 else {
        close(descriptor)
        throw HarnessError("bind \(address): \(String(cString: strerror(errno)))")
    }
    return descriptor
}

/// The next datagram, as text; throws after `timeout`.
private func receive(_ descriptor: Int32, timeout: TimeInterval = 10) throws -> String {
    var entry = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
    guard poll(&entry, 1, Int32(timeout * 1000)) == 1 else { throw HarnessError("no notification within \(timeout) s") }
    var buffer = [UInt8](repeating: 0, count: 4096)
    let count = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
    guard count >= 0 else { throw HarnessError("recv: \(String(cString: strerror(errno)))") }
    return String(decoding: buffer.prefix(count), as: UTF8.self)
}

/// Datagrams until one holds `assignment` (returned last).
private func receive(_ descriptor: Int32, until assignment: String) throws -> [String] {
    var messages: [String] = []
    repeat {
        messages.append(try receive(descriptor))
    } while !messages.last!.split(separator: "\n").contains(Substring(assignment))
    return messages
}

private func temporaryFolder() throws -> String {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent(
        "smartpoll-e2e-\(UUID().uuidString.prefix(8))"
    ).path
    try FileManager.default.createDirectory(
        atPath: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
    return folder
}

/// systemd's notify protocol and socket activation, with this test in systemd's place.
@Suite(.endToEnd)
struct SystemdTests {
    @Test func readyArrivesWhenTheSocketAnswersThenReloadingAndStopping() throws {
        let folder = try temporaryFolder()
        let notify = try boundUnixSocket(SOCK_DGRAM, folder + "/notify.sock")
        defer { close(notify) }
        let supervisor = try SupervisorHarness(
            #"{"tasks": {"t": {"command": ["true"]}}}"#, folder: folder,
            environment: ["NOTIFY_SOCKET": folder + "/notify.sock"], waitsUntilListening: false)
        let ready = try #require(try receive(notify, until: "READY=1").last)
        // At once, without a retry: READY=1 means the socket accepts.
        let client = try ControlClient(path: supervisor.socket)
        client.setTimeout(.seconds(10))
        #expect(try client.call(Request(id: 1, command: .ping)).0.isSuccess)
        #expect(
            ready.split(separator: "\n").contains("STATUS=loop running; 1 task, 0 running; 0 runs, 0 failed"),
            "\(ready)")

        #expect(try supervisor.ctl("reload").status == 0)
        let reloading = try #require(try receive(notify, until: "RELOADING=1").last)
        let stamp = try #require(reloading.split(separator: "\n").first { $0.hasPrefix("MONOTONIC_USEC=") })
        #expect(Int64(stamp.dropFirst("MONOTONIC_USEC=".count)).map { $0 > 0 } == true)
        #expect(try receive(notify, until: "READY=1").count >= 1, "READY=1 again once the reload is done")

        #expect(try supervisor.ctl("shutdown").status == 0)
        #expect(try receive(notify, until: "STOPPING=1").count >= 1)
        #expect(try supervisor.waitForExit() == 0)
    }

    @Test func anAbstractNotifySocketWorksToo() throws {
        let name = "@smartpoll-test-\(UUID().uuidString)"
        let notify = try boundUnixSocket(SOCK_DGRAM, name)
        defer { close(notify) }
        let supervisor = try SupervisorHarness(
            #"{"tasks": {"t": {"command": ["true"]}}}"#,
            environment: ["NOTIFY_SOCKET": name], waitsUntilListening: false)
        _ = try receive(notify, until: "READY=1")
        #expect(try supervisor.ctl("ping").status == 0)
    }

    @Test func aSocketPassedAsDescriptorThreeIsServedAndLeftInPlace() throws {
        let folder = try temporaryFolder()
        let path = folder + "/activated.sock"
        let listener = try boundUnixSocket(SOCK_STREAM, path)
        defer { close(listener) }
        #expect(listen(listener, 16) == 0)
        // As systemd does: the socket on descriptor 3, LISTEN_FDS=1 and LISTEN_PID of the
        // supervisor itself (the shell's pid, which exec keeps).
        let supervisor = try SupervisorHarness(
            #"{"tasks": {"where": {"command": ["sh", "-c", "echo $SMARTPOLL_SOCKET"]}}}"#, folder: folder,
            launcher: ["/bin/sh", "-c", #"exec 3<&0 </dev/null; LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" "$@""#],
            standardInput: FileHandle(fileDescriptor: listener, closeOnDealloc: false))
        #expect(
            supervisor.logText.contains(
                "socket activation: serving on \(path), the socket systemd passed (not \(supervisor.socket))"))
        #expect(supervisor.logText.contains("activated=systemd"))
        #expect(!FileManager.default.fileExists(atPath: supervisor.socket), "nothing bound besides the passed socket")
        let ctl = { (arguments: [String]) in try runCommand(Binaries.ctl, ["--socket", path] + arguments) }
        #expect(try ctl(["run", "where", "--wait"]).status == 0)
        #expect(try ctl(["result", "where"]).output == path + "\n", "tasks are told the socket that serves")
        #expect(try ctl(["shutdown"]).status == 0)
        #expect(try supervisor.waitForExit() == 0)
        var info = stat()
        #expect(lstat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFSOCK, "the socket unit's socket stays")
    }

    @Test func socketActivationThatDoesNotFitIsRefusedAndOneForAnotherProcessIgnored() throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try #"{"tasks": {"t": {"command": ["true"]}}}"#.write(
            toFile: folder + "/smartpoll.json", atomically: true, encoding: .utf8)
        let arguments = [Binaries.supervisor, "--config", folder + "/smartpoll.json", "--socket", folder + "/s.sock"]
        let two = try runCommand(
            "/bin/sh", ["-c", #"exec 3<&0 4<&0; LISTEN_PID=$$ LISTEN_FDS=2 exec "$0" "$@""#] + arguments)
        #expect(two.status == 1)
        #expect(
            two.error.contains("socket activation: systemd passed 2 sockets; smartpoll-supervisor serves exactly one"))
        let pipe = try runCommand(
            "/bin/sh", ["-c", #"exec 3<&0; LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" "$@""#] + arguments)
        #expect(pipe.status == 1)
        #expect(pipe.error.contains("socket activation: descriptor 3 is not a listening Unix stream socket"))
        #expect(!FileManager.default.fileExists(atPath: folder + "/s.sock"))

        let supervisor = try SupervisorHarness(
            #"{"tasks": {"t": {"command": ["true"]}}}"#,
            environment: ["LISTEN_PID": "1", "LISTEN_FDS": "1"])
        #expect(try supervisor.ctl("ping").status == 0, "variables meant for another process change nothing")
        #expect(!supervisor.logText.contains("activated"))
    }
}
