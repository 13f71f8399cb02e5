import CSmartPollPosix
import Glibc
import SmartPollSystem

/// Containment where no cgroup can be made (SPEC section 3): the supervisor is a child
/// subreaper, so orphans of its runs become its children; it reaps them, and it ends the
/// processes of a run that is over, telling them apart by what they inherited:
/// `SMARTPOLL_SOCKET` (this supervisor's socket) and `SMARTPOLL_RUN` in /proc/PID/environ,
/// which it can read for processes of its own uid (all of them as root).
///
/// What it cannot catch: a process that cleared or replaced those variables, one running as
/// another user (when the supervisor is not root), and, after a crash, one that escaped before
/// the restart and changed its environment (supervisor(8) BUGS).
final class Subreaper {
    private let loop: EventLoop
    private let socketMarker: [UInt8]
    /// Runs whose end awaits the exit of processes of theirs that were killed: their pidfds.
    private var draining: [Int: (pidfds: Set<Int32>, action: () -> Void)] = [:]
    private var sweepTimer: EventLoop.TimerID?
    /// The main processes of runs being watched, with their runs: reaped by their runs, never
    /// here.
    private var tracked: [pid_t: Int] = [:]

    func track(_ pid: pid_t, run: Int) { tracked[pid] = run }
    func untrack(_ pid: pid_t) { tracked[pid] = nil }
    private func isTracked(_ pid: pid_t) -> Bool { tracked[pid] != nil }

    init(socketPath: String, loop: EventLoop) throws(SupervisorError) {
        self.loop = loop
        socketMarker = Array("SMARTPOLL_SOCKET=\(socketPath)".utf8)
        do throws(Errno) {
            _ = try SystemCall.checking { sp_set_child_subreaper() }
        } catch {
            throw SupervisorError.systemCall("prctl(PR_SET_CHILD_SUBREAPER)", errno: error.rawValue)
        }
    }

    /// Reaps exited orphans once a second (each sweep is one read of this process's children).
    func start() {
        sweepTimer = loop.schedule(after: .seconds(1)) { [weak self] in
            guard let self else { return }
            self.reapOrphans()
            self.start()
        }
    }

    /// The live processes that carry this supervisor's socket in their environment, with their
    /// `SMARTPOLL_RUN` (`run` only, when given), each as a pidfd opened before its environment
    /// was read, so that the pid cannot have been reused by the time it is signalled. The
    /// caller closes the pidfds.
    ///
    /// - Parameter everywhere: look at every process of the system (after a crash, when the
    ///   previous life's processes belong to someone else); otherwise only at this process's
    ///   descendants, where every orphan of a run ends up (it is their subreaper): a walk of
    ///   the run's tree rather than a read of every environment of the system at each run end.
    func members(run: Int? = nil, everywhere: Bool = false) -> [(pidfd: Int32, pid: pid_t, run: Int?)] {
        var found: [(Int32, pid_t, Int?)] = []
        for pid in everywhere ? Subreaper.allProcesses() : descendants(of: run) where pid > 1 && !isTracked(pid) {
            let pidfd = sp_pidfd_open(pid)
            guard pidfd >= 0 else { continue }
            guard let runID = runOf(pid), run == nil || runID == run else {
                SystemCall.close(pidfd)
                continue
            }
            found.append((pidfd, pid, runID))
        }
        return found
    }

    /// Every process id in /proc but this process's.
    private static func allProcesses() -> [pid_t] {
        guard let directory = opendir("/proc") else { return [] }
        defer { closedir(directory) }
        let own = getpid()
        var pids: [pid_t] = []
        while let entry = readdir(directory) {
            if let pid = pid_t(entryName(entry)), pid != own { pids.append(pid) }
        }
        return pids
    }

    private static func entryName(_ entry: UnsafeMutablePointer<dirent>) -> String {
        withUnsafeBytes(of: entry.pointee.d_name) { raw in
            String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
    }

    /// The children of `pid`, every thread's (`/proc/PID/task/TID/children`); nil when the
    /// kernel does not list them (no CONFIG_PROC_CHILDREN).
    private static func children(of pid: String) -> [pid_t]? {
        guard let tasks = opendir("/proc/\(pid)/task") else { return [] }
        defer { closedir(tasks) }
        var children: [pid_t] = []
        while let entry = readdir(tasks) {
            let thread = entryName(entry)
            guard Int(thread) != nil else { continue }
            guard let text = CgroupTree.readSmallFile("/proc/\(pid)/task/\(thread)/children") else {
                if errno == ENOENT && access("/proc/\(pid)/task/\(thread)", F_OK) == 0 { return nil }
                continue
            }
            children += text.split(separator: " ").compactMap { pid_t($0) }
        }
        return children
    }

    /// This process's descendants (its children, theirs, and so on), or every process when the
    /// kernel does not list children. With `run`, not below the main processes of other runs:
    /// a process of run R is R's main process, below it, or an orphan this process adopted as
    /// the subreaper (or below one), never below another run's main process; so the end of a
    /// run walks its own orphans, not the trees of every run still running (with 8 runs at
    /// once, about 120 system calls a run's end, most of the supervisor's time in subreaper
    /// mode; strace -c).
    private func descendants(of run: Int? = nil) -> [pid_t] {
        guard var queue = Subreaper.children(of: "self") else { return Subreaper.allProcesses() }
        var found: [pid_t] = []
        while let pid = queue.popLast() {
            found.append(pid)
            if let run, let owner = tracked[pid], owner != run { continue }
            // A process that exited meanwhile has no children left to list.
            queue += Subreaper.children(of: String(pid)) ?? []
        }
        return found
    }

    /// The `SMARTPOLL_RUN` of `pid` if its environment names this supervisor's socket; nil
    /// otherwise (or when it cannot be read).
    private func runOf(_ pid: pid_t) -> Int?? {
        guard let text = CgroupTree.readSmallFile("/proc/\(pid)/environ") else { return nil }
        var isOurs = false
        var run: Int?
        for entry in text.utf8.split(separator: 0) {
            if entry.elementsEqual(socketMarker) { isOurs = true }
            if entry.starts(with: "SMARTPOLL_RUN=".utf8) {
                run = Int(String(decoding: entry.dropFirst(14), as: UTF8.self))
            }
        }
        return isOurs ? .some(run) : nil
    }

    /// Sends `signal` to every process that inherited run `run`'s environment.
    func signal(run: Int, _ signal: Int32) {
        for member in members(run: run) {
            _ = sp_pidfd_send_signal(member.pidfd, signal)
            SystemCall.close(member.pidfd)
        }
    }

    /// Kills what is left of run `run` and calls `action` once all of it has exited (at once
    /// when nothing is left); each pidfd is watched on the loop, and an orphan that became
    /// this process's child is reaped. When a walk found processes, another walk follows their
    /// exit, and so on until one finds nothing: a process can fork between the walk that lists
    /// it and its SIGKILL, and its child, adopted here, carries the run's environment.
    func endRun(_ run: Int, then action: @escaping () -> Void) {
        var pidfds: Set<Int32> = []
        for member in members(run: run) {
            _ = sp_pidfd_send_signal(member.pidfd, SIGKILL)
            let pid = member.pid
            let pidfd = member.pidfd
            do {
                try loop.register(pidfd, for: .readable) { [unowned self] _ in self.exited(pidfd, pid: pid, run: run) }
                pidfds.insert(pidfd)
            } catch {
                SystemCall.close(pidfd)
            }
        }
        guard !pidfds.isEmpty else { return action() }
        draining[run] = (pidfds, { [weak self] in self?.endRun(run, then: action) })
    }

    private func exited(_ pidfd: Int32, pid: pid_t, run: Int) {
        loop.forget(pidfd)
        SystemCall.close(pidfd)
        _ = sp_reap_if_ended(pid)
        guard var entry = draining[run] else { return }
        entry.pidfds.remove(pidfd)
        if entry.pidfds.isEmpty {
            draining[run] = nil
            entry.action()
        } else {
            draining[run] = entry
        }
    }

    /// Reaps every child of this process that has exited and is not a watched run's main
    /// process: orphans of runs that ended by themselves.
    func reapOrphans() {
        for child in Subreaper.children(of: "self") ?? [] where !isTracked(child) {
            _ = sp_reap_if_ended(child)
        }
    }

    /// At start-up, before any run: ends (SIGKILL) what a previous life of this supervisor left
    /// that can still be recognised, waiting at most `limit` (blocking: the loop serves nothing
    /// yet). - Returns: what was ended, for the log; nil when nothing was found.
    func endLeftovers(limit: Duration = .seconds(5)) -> String? {
        let leftovers = members(everywhere: true)
        guard !leftovers.isEmpty else { return nil }
        for member in leftovers { _ = sp_pidfd_send_signal(member.pidfd, SIGKILL) }
        let deadline = ContinuousClock.now.advanced(by: limit)
        for member in leftovers {
            var poller = pollfd(fd: member.pidfd, events: Int16(POLLIN), revents: 0)
            while ContinuousClock.now < deadline && poll(&poller, 1, 10) == 0 {}
            _ = sp_reap_if_ended(member.pid)
            SystemCall.close(member.pidfd)
        }
        let list = leftovers.map { "\($0.pid) (run \($0.run.map(String.init) ?? "?"))" }.joined(separator: ", ")
        return "ended \(leftovers.count) process\(leftovers.count == 1 ? "" : "es") of a previous run: \(list)"
    }
}
