import CSmartPollPosix
import Glibc

/// A started child process: its pid (also its process group and session id)
/// and, when the kernel has them, a pidfd that stays valid after the pid could
/// be recycled.
///
/// - Important: the pidfd is owned: call ``close()`` once the process has been
///   waited for. Copies share the same descriptor.
public struct SpawnedProcess: Sendable {
    /// The child's pid, which is also its process group id.
    public let pid: Int32
    /// A CLOEXEC pidfd for the child, readable (for `poll`) once it exits;
    /// `nil` on kernels without pidfds (before 5.3) or after ``close()``.
    public private(set) var pidfd: Int32?

    public init(pid: Int32, pidfd: Int32?) {
        self.pid = pid
        self.pidfd = pidfd
    }

    /// Reaps the child and returns how it ended, or `nil` when `nonblocking`
    /// and it is still running. Waits for this child only (never `waitpid(-1)`).
    ///
    /// - Throws: `.systemCallFailed`, for instance when it was already reaped.
    public func wait(nonblocking: Bool = false) throws(SupervisorError) -> TerminationStatus? {
        var status = sp_exit_status()
        let result: Int32
        if let pidfd {
            let byDescriptor = sp_wait_pidfd(pidfd, &status, nonblocking ? 1 : 0)
            // Linux 5.3 has pidfds but not waitid(P_PIDFD): wait for this one pid instead.
            result = byDescriptor == EINVAL ? sp_wait_pid(pid, &status, nonblocking ? 1 : 0) : byDescriptor
        } else {
            result = sp_wait_pid(pid, &status, nonblocking ? 1 : 0)
        }
        guard result == 0 else { throw .systemCall("waitid for process \(pid)", errno: result) }
        guard status.ended != 0 else { return nil }
        return status.exited != 0 ? .exited(status.code) : .signaled(status.signal)
    }

    /// Sends `signal` to the child alone (through the pidfd when there is one).
    ///
    /// - Returns: `false` when the process no longer exists (ESRCH).
    @discardableResult
    public func signal(_ signal: Int32) throws(SupervisorError) -> Bool {
        let result: Int32
        if let pidfd {
            result = sp_pidfd_send_signal(pidfd, signal)
        } else {
            result = kill(pid, signal) == 0 ? 0 : errno
        }
        if result == ESRCH { return false }
        guard result == 0 else { throw .systemCall("signal \(signal) to process \(pid)", errno: result) }
        return true
    }

    /// Sends `signal` to every process of the child's process group, its
    /// descendants included unless they moved to another group.
    ///
    /// - Returns: `false` when the group has no process left (ESRCH).
    /// - Important: once the child is reaped and its group is empty, the number
    ///   may be reused: signal the group before, or right after, reaping.
    @discardableResult
    public func signalGroup(_ signal: Int32) throws(SupervisorError) -> Bool {
        let result = sp_kill_group(pid, signal)
        if result == ESRCH { return false }
        guard result == 0 else {
            throw .systemCall("signal \(signal) to process group \(pid)", errno: result)
        }
        return true
    }

    /// Closes the pidfd, if any. Later waits and signals use the pid.
    public mutating func close() {
        if let pidfd {
            _ = Glibc.close(pidfd)
            self.pidfd = nil
        }
    }
}
