import CSmartPollPosix
import Glibc
import SmartPollSystem

/// systemd socket activation (sd_listen_fds(3)'s protocol, without libsystemd): when
/// `LISTEN_PID` is this process and `LISTEN_FDS` is 1, descriptor 3 is the control socket,
/// already bound and listening. The supervisor then neither binds nor unlinks it: the socket
/// unit owns the path, its mode and its group.
enum SocketActivation {
    /// The first passed descriptor, by the protocol's definition.
    static let firstDescriptor: Int32 = 3

    /// Descriptor 3, checked and made non-blocking and close-on-exec, when the environment says
    /// systemd passed it to this process; nil otherwise (the supervisor binds its own socket).
    ///
    /// - Throws: when the variables are meant for this process but unusable: more than one
    ///   socket, a count that is not a number, or a descriptor that is not a listening Unix
    ///   stream socket. Starting anyway would bind a second socket next to the unit's.
    static func listener(environment: [String: String], log: SupervisorLog) throws(SupervisorError) -> Int32? {
        guard let pidText = environment["LISTEN_PID"], let countText = environment["LISTEN_FDS"] else { return nil }
        guard let pid = Int32(pidText), pid == getpid() else {
            // Meant for another process (an ancestor that did not clear them): not ours.
            log.write(.debug, "LISTEN_PID is \(pidText), not this process; binding the socket as usual")
            return nil
        }
        guard let count = Int(countText), count >= 0 else {
            throw SupervisorError(
                code: .systemCallFailed, message: "socket activation: LISTEN_FDS is \"\(countText)\", not a number")
        }
        if count == 0 { return nil }
        guard count == 1 else {
            throw SupervisorError(
                code: .systemCallFailed,
                message: "socket activation: systemd passed \(count) sockets; smartpoll-supervisor serves exactly one "
                    + "(give the .socket unit one ListenStream=)")
        }
        do throws(Errno) {
            _ = try SystemCall.checking { sp_adopt_listener(firstDescriptor) }
        } catch {
            throw SupervisorError(
                code: .systemCallFailed,
                message: "socket activation: descriptor 3 is not a listening Unix stream socket (\(error))")
        }
        return firstDescriptor
    }

    /// The path the socket is bound to (`@name` for an abstract one), if it has one; nil for an
    /// unbound socket (the log then names none).
    static func path(of descriptor: Int32) -> String? {
        var buffer = [CChar](repeating: 0, count: 256)
        guard let length = try? SystemCall.checking({ sp_socket_path(descriptor, &buffer, buffer.count) }) else {
            return nil
        }
        return String(decoding: buffer.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
