import Glibc
import SmartPollSystem

/// Where the control socket may live (SPEC section 8: nobody else may swap what the supervisor
/// binds, unlinks or connects to).
///
/// - The socket's own folder must be owned by the supervisor's user or by root, and writable by
///   neither its group nor others (a sticky world-writable folder such as /tmp is refused too:
///   the socket belongs in a folder of its own, as the default paths are). The folders above it
///   are not checked: the rule is about who can replace the entries of this one.
/// - Nothing but a socket is replaced at the socket's path, and a symbolic link there is
///   neither followed nor removed: the supervisor refuses to start.
enum SocketFolder {
    /// The folder of `socketPath`: `.` for a bare name, `/` for a path just under the root.
    static func folder(of socketPath: String) -> String {
        guard let slash = socketPath.lastIndex(of: "/") else { return "." }
        if slash == socketPath.startIndex { return "/" }
        return String(socketPath[..<slash])
    }

    /// Throws unless `folder` is a folder owned by `userID` or root and not writable by its
    /// group or others (the folder itself, after following symbolic links to it).
    static func check(_ folder: String, userID: uid_t = geteuid()) throws(SupervisorError) {
        var info = stat()
        do throws(Errno) {
            _ = try SystemCall.checking { stat(folder, &info) }
        } catch {
            throw SupervisorError(
                code: .systemCallFailed, message: "cannot use the socket's folder \(folder): \(error)")
        }
        try check(info, of: folder, userID: userID)
    }

    /// Throws unless `info` (of `folder`) is a folder owned by `userID` or root and not writable
    /// by its group or others. `role` names the folder in the messages; `risk` says what someone
    /// else who can write it could do. The state directory gets the same check.
    static func check(
        _ info: stat, of folder: String, userID: uid_t, role: String = "the socket's folder",
        risk: String = "who could replace the socket"
    ) throws(SupervisorError) {
        let mode = info.st_mode & 0o7777
        let modeText = "0" + String(mode, radix: 8)
        guard info.st_mode & S_IFMT == S_IFDIR else {
            throw SupervisorError(code: .systemCallFailed, message: "\(role) \(folder) is not a folder")
        }
        guard info.st_uid == userID || info.st_uid == 0 else {
            throw SupervisorError(
                code: .systemCallFailed,
                message: "refusing \(role) \(folder): it belongs to uid \(info.st_uid), "
                    + "not to uid \(userID) or root; use a folder of your own (mode 0700)")
        }
        guard mode & 0o022 == 0 else {
            let who = mode & 0o002 != 0 ? "everyone" : "its group"
            throw SupervisorError(
                code: .systemCallFailed,
                message: "refusing \(role) \(folder): it is writable by \(who) (mode \(modeText)), "
                    + "\(risk); use a folder of its own that only its owner can write (mode 0700)")
        }
    }

    /// What is at `path` now, without following a symbolic link: nil when nothing is; throws for
    /// anything but a socket.
    static func existingSocket(at path: String) throws(SupervisorError) -> Bool {
        var info = stat()
        do throws(Errno) {
            _ = try SystemCall.checking { lstat(path, &info) }
        } catch .noSuchFileOrDirectory {
            return false
        } catch {
            throw SupervisorError(code: .systemCallFailed, message: "cannot look at \(path): \(error)")
        }
        let kind: String
        switch info.st_mode & S_IFMT {
        case S_IFSOCK: return true
        case S_IFLNK: kind = "a symbolic link"
        case S_IFDIR: kind = "a folder"
        case S_IFREG: kind = "a regular file"
        default: kind = "not a socket"
        }
        throw SupervisorError(
            code: .systemCallFailed,
            message: "\(path) exists and is \(kind); refusing to follow or replace it (remove it if it is yours)")
    }
}
