import Foundation
import Glibc

/// A real etcd (Debian's `etcd-server`) for a test: one member, or a cluster of three, on free
/// loopback ports with its data in a fresh temporary folder; every member killed (SIGKILL) and
/// the folder removed when released.
///
/// - Important: A missing etcd is a failure ("run make deps"), never a skipped test.
/// Why a test's etcd could not be started.
public struct EtcdHarnessFailure: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

public final class EtcdHarness {
    public struct Member {
        public let name: String
        public let clientURL: String
        public let peerURL: String
        public let process: Process
    }

    public let folder: String
    public private(set) var members: [Member] = []

    /// The client URLs of the members, in order.
    public var endpoints: [String] { members.map(\.clientURL) }

    /// Starts `size` members and waits until each answers `/health`.
    ///
    /// - Parameter clientPorts: the members' client ports, when a test needs to know them before
    ///   etcd starts (from ``freePort()``); free ports otherwise.
    public init(members size: Int = 1, clientPorts: [Int]? = nil, timeout: Duration = .seconds(20)) throws {
        precondition(clientPorts.map { $0.count == size } ?? true, "one client port a member")
        guard let executable = EtcdHarness.findExecutable("etcd") else {
            throw EtcdHarnessFailure("etcd is not installed: run make deps (it installs etcd-server)")
        }
        folder =
            FileManager.default.temporaryDirectory.appendingPathComponent("smartpoll-etcd-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        var ports: [(client: Int, peer: Int)] = []
        for index in 0..<size {
            ports.append((try clientPorts?[index] ?? EtcdHarness.freePort(), try EtcdHarness.freePort()))
        }
        let cluster = ports.indices.map { "member\($0)=http://127.0.0.1:\(ports[$0].peer)" }.joined(separator: ",")
        do {
            for (index, port) in ports.enumerated() {
                let name = "member\(index)"
                let clientURL = "http://127.0.0.1:\(port.client)"
                let peerURL = "http://127.0.0.1:\(port.peer)"
                let process = Process()
                process.executableURL = URL(fileURLWithPath: executable)
                process.arguments = [
                    "--name", name, "--data-dir", "\(folder)/\(name)",
                    "--listen-client-urls", clientURL, "--advertise-client-urls", clientURL,
                    "--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
                    "--initial-cluster", cluster, "--initial-cluster-state", "new",
                    "--initial-cluster-token", "smartpoll-test",
                    // Fast elections for a loopback cluster.
                    "--heartbeat-interval", "50", "--election-timeout", "500",
                ]
                let log =
                    FileHandle(forWritingAtPath: "\(folder)/\(name).log")
                    ?? {
                        FileManager.default.createFile(atPath: "\(folder)/\(name).log", contents: nil)
                        return FileHandle(forWritingAtPath: "\(folder)/\(name).log")!
                    }()
                process.standardOutput = log
                process.standardError = log
                try process.run()
                members.append(Member(name: name, clientURL: clientURL, peerURL: peerURL, process: process))
            }
            let deadline = ContinuousClock.now + timeout
            for member in members {
                while !EtcdHarness.isHealthy(member.clientURL) {
                    guard ContinuousClock.now < deadline, member.process.isRunning else {
                        throw EtcdHarnessFailure(
                            "etcd \(member.name) did not become healthy; see \(folder)/\(member.name).log")
                    }
                    usleep(50_000)
                }
            }
        } catch {
            killAll()
            throw error
        }
    }

    deinit {
        killAll()
        try? FileManager.default.removeItem(atPath: folder)
    }

    private func killAll() {
        for member in members where member.process.isRunning {
            Glibc.kill(member.process.processIdentifier, SIGKILL)
            member.process.waitUntilExit()
        }
    }

    /// Freezes member `index` (SIGSTOP): it keeps its sockets and answers nothing. Returns once
    /// every thread of it has stopped (at most 5 s): the signal is only sent when kill(2)
    /// returns, and a thread busy on another CPU could answer a request meanwhile.
    public func pause(_ index: Int) {
        let pid = members[index].process.processIdentifier
        Glibc.kill(pid, SIGSTOP)
        let deadline = ContinuousClock.now.advanced(by: .seconds(5))
        while ContinuousClock.now < deadline && !Self.allThreadsStopped(pid) {
            usleep(1_000)
        }
    }

    /// Whether every thread of `pid` is stopped ("T" in /proc/PID/task/TID/stat).
    private static func allThreadsStopped(_ pid: pid_t) -> Bool {
        guard let threads = try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task") else {
            return false
        }
        return threads.allSatisfy { thread in
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/task/\(thread)/stat", encoding: .utf8),
                let end = stat.range(of: ") ", options: .backwards)
            else { return true }  // gone: it answers nothing either
            return stat[end.upperBound...].first == "T"
        }
    }

    /// Kills member `index` (SIGKILL) and waits for it.
    public func kill(_ index: Int) {
        let process = members[index].process
        Glibc.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    /// Thaws member `index` (SIGCONT).
    public func resume(_ index: Int) { Glibc.kill(members[index].process.processIdentifier, SIGCONT) }

    /// A loopback TCP port that was free a moment ago (bound to port 0, then released).
    public static func freePort() throws -> Int {
        let socketDescriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard socketDescriptor >= 0 else { throw EtcdHarnessFailure("socket: errno \(errno)") }
        defer { close(socketDescriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(socketDescriptor, pointer, length) == 0 && getsockname(socketDescriptor, pointer, &length) == 0
            }
        }
        guard bound else { throw EtcdHarnessFailure("bind: errno \(errno)") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// Whether `GET /health` on a client URL says `"health":"true"` (a blocking probe: the
    /// test's thread, never an event loop's).
    public static func isHealthy(_ clientURL: String) -> Bool {
        let reply = exchange(clientURL, "GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        return reply?.contains("\"health\":\"true\"") == true
    }

    /// The index of the member that leads etcd's Raft group, from each member's
    /// `/v3/maintenance/status` (blocking probes: the test's thread); nil while there is none.
    public func leaderIndex() -> Int? {
        var identifiers: [String] = []
        var leader: String?
        for member in members {
            let body = "{}"
            let request =
                "POST /v3/maintenance/status HTTP/1.0\r\nHost: 127.0.0.1\r\n"
                + "Content-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
            guard let reply = Self.exchange(member.clientURL, request),
                let bodyStart = reply.range(of: "\r\n\r\n"),
                let object = try? JSONSerialization.jsonObject(with: Data(reply[bodyStart.upperBound...].utf8))
                    as? [String: Any],
                let header = object["header"] as? [String: Any], let identifier = header["member_id"] as? String
            else { return nil }
            identifiers.append(identifier)
            if let named = object["leader"] as? String, named != "0" { leader = leader ?? named }
        }
        return leader.flatMap { identifiers.firstIndex(of: $0) }
    }

    /// Sends `request` to a client URL over a new connection and reads the reply until the
    /// server closes it (HTTP/1.0), within a second's receive timeout.
    private static func exchange(_ clientURL: String, _ request: String) -> String? {
        guard let port = Int(clientURL.split(separator: ":").last ?? "") else { return nil }
        let socketDescriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard socketDescriptor >= 0 else { return nil }
        defer { close(socketDescriptor) }
        var limit = timeval(tv_sec: 1, tv_usec: 0)
        setsockopt(socketDescriptor, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(socketDescriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
        guard connected else { return nil }
        guard request.withCString({ write(socketDescriptor, $0, strlen($0)) }) > 0 else { return nil }
        var reply: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1024)
        while true {
            let count = read(socketDescriptor, &buffer, buffer.count)
            guard count > 0 else { break }
            reply += buffer[..<count]
        }
        return String(decoding: reply, as: UTF8.self)
    }

    private static func findExecutable(_ name: String) -> String? {
        for directory in ["/usr/bin", "/usr/local/bin", "/usr/sbin"] where access("\(directory)/\(name)", X_OK) == 0 {
            return "\(directory)/\(name)"
        }
        return nil
    }
}
