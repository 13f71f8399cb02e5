import CSmartPollPosix
import Glibc
import SmartPollSystem

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
        try waitWithUsage(nonblocking: nonblocking)?.status
    }

    /// ``wait(nonblocking:)``, with the user plus system CPU time of the child and of the
    /// children it waited for, in milliseconds.
    public func waitWithUsage(
        nonblocking: Bool = false
    ) throws(SupervisorError) -> (status: TerminationStatus, cpuMilliseconds: Double)? {
        var status = sp_exit_status()
        let noHang: Int32 = nonblocking ? 1 : 0
        do throws(Errno) {
            if let pidfd {
                do throws(Errno) {
                    _ = try SystemCall.checking { sp_wait_pidfd(pidfd, &status, noHang) }
                } catch .invalidArgument {
                    // Linux 5.3 has pidfds but not waitid(P_PIDFD): wait for this one pid instead.
                    _ = try SystemCall.checking { sp_wait_pid(pid, &status, noHang) }
                }
            } else {
                _ = try SystemCall.checking { sp_wait_pid(pid, &status, noHang) }
            }
        } catch {
            throw .systemCall("waitid for process \(pid)", errno: error.rawValue)
        }
        guard status.ended != 0 else { return nil }
        let ended: TerminationStatus = status.exited != 0 ? .exited(status.code) : .signaled(status.signal)
        return (ended, Double(status.cpu_usec) / 1_000)
    }

    /// Sends `signal` to the child alone (through the pidfd when there is one).
    ///
    /// - Returns: `false` when the process no longer exists (ESRCH).
    @discardableResult
    public func signal(_ signal: Int32) throws(SupervisorError) -> Bool {
        do throws(Errno) {
            if let pidfd {
                _ = try SystemCall.checking { sp_pidfd_send_signal(pidfd, signal) }
            } else {
                _ = try SystemCall.checking { kill(pid, signal) }
            }
            return true
        } catch .noSuchProcess {
            return false
        } catch {
            throw .systemCall("signal \(signal) to process \(pid)", errno: error.rawValue)
        }
    }

    /// Sends `signal` to every process of the child's process group, its
    /// descendants included unless they moved to another group.
    ///
    /// - Returns: `false` when the group has no process left (ESRCH).
    /// - Important: once the child is reaped and its group is empty, the number
    ///   may be reused: signal the group before, or right after, reaping.
    @discardableResult
    public func signalGroup(_ signal: Int32) throws(SupervisorError) -> Bool {
        do throws(Errno) {
            _ = try SystemCall.checking { sp_kill_group(pid, signal) }
            return true
        } catch .noSuchProcess {
            return false
        } catch {
            throw .systemCall("signal \(signal) to process group \(pid)", errno: error.rawValue)
        }
    }

    /// Closes the pidfd, if any. Later waits and signals use the pid.
    public mutating func close() {
        if let pidfd {
            SystemCall.close(pidfd)
            self.pidfd = nil
        }
    }
}
