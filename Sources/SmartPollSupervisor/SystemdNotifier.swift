import CSmartPollPosix
import SmartPollSystem

/// systemd's notify protocol (sd_notify(3), without libsystemd): newline-separated
/// `NAME=value` assignments in one datagram to the Unix socket `NOTIFY_SOCKET` names, a path or
/// an abstract address written `@name`. Used for `Type=notify` (and `Type=notify-reload`)
/// services: `READY=1` once the control socket accepts, `RELOADING=1` around a reload,
/// `STOPPING=1` at shutdown, and `STATUS=` with a one-line summary.
struct SystemdNotifier {
    /// Where to send; nil outside systemd (every send is then a no-op).
    let address: String?

    init(environment: [String: String]) {
        let value = environment["NOTIFY_SOCKET"] ?? ""
        address = value.isEmpty ? nil : value
    }

    var isActive: Bool { address != nil }

    /// Sends the assignments as one datagram. Returns nil, or why it could not be sent.
    func send(_ assignments: [String]) -> String? {
        guard let address else { return nil }
        // A newline inside a value would start a new assignment.
        var bytes = Array(assignments.map { String($0.map { $0.isNewline ? " " : $0 }) }.joined(separator: "\n").utf8)
        bytes.append(10)
        do throws(Errno) {
            _ = try SystemCall.checking { bytes.withUnsafeBytes { sp_notify_send(address, $0.baseAddress, $0.count) } }
            return nil
        } catch {
            return "cannot notify systemd at \(address): \(error)"
        }
    }

    /// CLOCK_MONOTONIC in microseconds, for `MONOTONIC_USEC=` with `RELOADING=1`.
    static var monotonicMicroseconds: Int64 { sp_monotonic_ns() / 1_000 }
}
