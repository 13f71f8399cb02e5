import CSmartPollPosix
import Glibc
import SmartPollSystem

/// The supervisor's subtree of the cgroup v2 hierarchy (SPEC section 3): every run in a child
/// cgroup of its own, so that no process of a run outlives it, whatever session or parent it
/// takes.
///
/// The child cgroups are slots (`slot-<N>`): a run takes a slot that is empty, and gives it back
/// once it is empty again (its end waits for that); a slot given back is kept, with its
/// `cgroup.procs` open, for a later run, up to ``spareLimit`` spare slots, so that a run costs
/// neither a `mkdir` nor a `rmdir` of a cgroup (the kernel's costliest steps of a spawn here).
/// A run's CPU time is the growth of its slot's `cpu.stat` during the run.
///
/// The subtree is `smartpoll-<16 hex digits>` under `cgroup_root` or under the supervisor's own
/// cgroup; the digits hash the supervisor's identity (its `state_dir`, or its socket path), so
/// that supervisors under one parent never touch each other's runs and a restarted supervisor
/// finds what its previous life left. No controller is enabled anywhere in it: the core files
/// (`cgroup.procs`, `cgroup.kill`, `cgroup.events`, `cpu.stat`) are all it uses, and a cgroup
/// without controllers may hold processes and children at once.
///
/// Every file it reads or writes lives in memory (cgroupfs): no call here waits on a disk.
final class CgroupTree {
    /// The subtree's directory.
    let path: String
    private let loop: EventLoop
    /// Watches the `cgroup.events` files of draining runs; nil until the first one.
    private var inotify: Int32?
    private var emptyWaiters: [Int32: (cgroup: RunCgroup, action: () -> Void)] = [:]
    /// Empty slots given back by runs, the last given back first.
    private var spares: [RunCgroup] = []
    /// The number of the next slot made.
    private var nextSlot = 0
    /// At most this many empty slots are kept; a slot given back beyond it is removed.
    static let spareLimit = 32
    /// Whether the log has said that runs move into their cgroups instead of being born there.
    private var birthsRefusalLogged = false

    /// Makes (or finds) the subtree, or says why it cannot.
    ///
    /// - Parameters:
    ///   - root: `cgroup_root`, or nil for the supervisor's own cgroup.
    ///   - identity: what names this supervisor (its state_dir, else its socket path).
    init(root: String?, identity: String, loop: EventLoop) throws(SupervisorError) {
        let parent: String
        if let root { parent = root } else { parent = try CgroupTree.ownCgroupDirectory() }
        path = parent + (parent.hasSuffix("/") ? "" : "/") + CgroupTree.subtreeName(identity)
        self.loop = loop
        if mkdir(path, 0o755) != 0 && errno != EEXIST {
            throw CgroupTree.unusable("cannot create \(path): \(SupervisorError.errorText(errno))")
        }
        guard access(path + "/cgroup.kill", W_OK) == 0 else {
            let reason = errno == ENOENT ? "not a cgroup v2 directory, or a kernel before 5.14" : "not writable"
            throw CgroupTree.unusable("\(path)/cgroup.kill: \(reason)")
        }
    }

    deinit {
        if let inotify {
            loop.deregister(inotify)
            SystemCall.close(inotify)
        }
    }

    private static func unusable(_ reason: String) -> SupervisorError {
        SupervisorError(code: .systemCallFailed, message: "no cgroup for runs: \(reason)")
    }

    /// `smartpoll-` and 16 hex digits of the FNV-1a hash of `identity`.
    static func subtreeName(_ identity: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in identity.utf8 {
            hash ^= UInt64(byte)
            hash &*= 0x100_0000_01b3
        }
        let digits = String(hash, radix: 16)
        return "smartpoll-" + String(repeating: "0", count: 16 - digits.count) + digits
    }

    /// The directory of this process's cgroup in the unified hierarchy: the cgroup2 mount
    /// (from /proc/self/mountinfo) joined with the `0::` line of /proc/self/cgroup.
    static func ownCgroupDirectory() throws(SupervisorError) -> String {
        guard let cgroups = readSmallFile("/proc/self/cgroup") else {
            throw unusable("cannot read /proc/self/cgroup")
        }
        guard
            let own = cgroups.split(separator: "\n").first(where: { $0.hasPrefix("0::") }).map({
                String($0.dropFirst(3))
            })
        else { throw unusable("this process is in no cgroup v2 hierarchy") }
        guard let mounts = readSmallFile("/proc/self/mountinfo") else {
            throw unusable("cannot read /proc/self/mountinfo")
        }
        // Bytes, not Characters: mountinfo has a line a mount (dozens on a container host), and
        // splitting it as a String cost over a million instructions at every start (callgrind).
        for line in Array(mounts.utf8).split(separator: UInt8(ascii: "\n")) {
            // ID PARENT MAJOR:MINOR ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - TYPE SOURCE SUPER
            let fields = line.split(separator: UInt8(ascii: " "))
            guard let dash = fields.firstIndex(where: { $0.count == 1 && $0.first == UInt8(ascii: "-") }),
                dash >= 5, dash + 1 < fields.count, fields[dash + 1].elementsEqual("cgroup2".utf8)
            else { continue }
            let mountRoot = unescape(Substring(decoding: fields[3], as: UTF8.self))
            let mountPoint = unescape(Substring(decoding: fields[4], as: UTF8.self))
            // The mount shows the part of the hierarchy below its root only.
            var relative = own
            if mountRoot != "/" {
                guard own == mountRoot || own.hasPrefix(mountRoot + "/") else { continue }
                relative = String(own.dropFirst(mountRoot.count))
            }
            if relative == "/" { relative = "" }
            return mountPoint == "/" ? (relative.isEmpty ? "/" : relative) : mountPoint + relative
        }
        throw unusable("no cgroup2 file system is mounted")
    }

    /// mountinfo's octal escapes (`\040` for a space).
    private static func unescape(_ field: Substring) -> String {
        guard field.contains("\\") else { return String(field) }
        var bytes: [UInt8] = []
        var utf8 = Array(field.utf8)[...]
        while let byte = utf8.popFirst() {
            if byte == UInt8(ascii: "\\"), utf8.count >= 3,
                let value = UInt8(String(decoding: utf8.prefix(3), as: UTF8.self), radix: 8)
            {
                bytes.append(value)
                utf8 = utf8.dropFirst(3)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// An empty cgroup for one run: a spare slot, or a new one.
    func takeSlot() throws(SupervisorError) -> RunCgroup {
        if let spare = spares.popLast() { return spare }
        var cgroup = RunCgroup(path: path + "/slot-\(nextSlot)")
        nextSlot += 1
        while mkdir(cgroup.path, 0o755) != 0 {
            guard errno == EEXIST else {
                throw SupervisorError(
                    code: .spawnFailed,
                    message: "cannot create the cgroup \(cgroup.path): \(SupervisorError.errorText(errno))")
            }
            // A leftover that the start-up could not remove (a process of a previous life that
            // would not die): killed again and left alone, so that no run shares a cgroup with
            // it, waits for it or counts its CPU time. There are at most as many as the start-up
            // found.
            cgroup.killAll()
            cgroup = RunCgroup(path: path + "/slot-\(nextSlot)")
            nextSlot += 1
        }
        do throws(SupervisorError) {
            try cgroup.openProcesses()
        } catch {
            cgroup.remove()
            throw error
        }
        return cgroup
    }

    /// Says once in the log that runs now move into their cgroups through `cgroup.procs`
    /// (`sp_spawn_births_refusal`): a start may hold the loop for an RCU grace period then.
    func noteBirthsRefused(log: SupervisorLog) {
        guard !birthsRefusalLogged else { return }
        let refusal = sp_spawn_births_refusal()
        guard refusal != 0 else { return }
        birthsRefusalLogged = true
        let why =
            refusal < 0
            ? "a child born in its cgroup was killed before it ran"
            : "the kernel refused a birth in a cgroup: \(SupervisorError.errorText(refusal))"
        log.write(
            .warning,
            "runs move into their cgroups through cgroup.procs from now on (\(why)); a start may wait milliseconds for the kernel then",
            [("root", path)])
    }

    /// Takes back the slot of a run that is over: `cgroup` is empty. It is kept for a later
    /// run, or removed when ``spareLimit`` slots are spare already.
    ///
    /// - Returns: nil, or why the slot could not be removed.
    @discardableResult
    func giveBack(_ cgroup: RunCgroup) -> String? {
        if spares.count < CgroupTree.spareLimit && cgroup.isReusable {
            spares.append(cgroup)
            return nil
        }
        cgroup.closeFiles()
        return cgroup.remove() ? nil : "cannot remove the cgroup \(cgroup.path): \(SupervisorError.errorText(errno))"
    }

    /// Calls `action` once `cgroup` has no process left: at once if it has none now, otherwise
    /// when its `cgroup.events` says so (inotify, on this loop).
    func whenEmpty(_ cgroup: RunCgroup, _ action: @escaping () -> Void) {
        guard cgroup.isPopulated else { return action() }
        do throws(SupervisorError) {
            let inotify = try inotifyDescriptor()
            let watch = inotify_add_watch(inotify, cgroup.path + "/cgroup.events", UInt32(IN_MODIFY))
            guard watch >= 0 else {
                throw SupervisorError.systemCall("inotify_add_watch \(cgroup.path)", errno: errno)
            }
            emptyWaiters[watch] = (cgroup, action)
            // It may have emptied between the check and the watch.
            if !cgroup.isPopulated { emptied(watch) }
        } catch {
            // Without a watch the run would never end: it ends now, its cgroup killed, and its
            // removal may then fail (logged by the caller). It may still hold dying processes,
            // so it is no slot for a later run.
            cgroup.killAll()
            cgroup.retire()
            action()
        }
    }

    private func inotifyDescriptor() throws(SupervisorError) -> Int32 {
        if let inotify { return inotify }
        let descriptor = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        guard descriptor >= 0 else { throw SupervisorError.systemCall("inotify_init1", errno: errno) }
        do {
            try loop.register(descriptor, for: .readable) { [unowned self] _ in self.readEvents() }
        } catch {
            SystemCall.close(descriptor)
            throw error
        }
        inotify = descriptor
        return descriptor
    }

    /// One buffer of inotify events per wake-up (the loop is level-triggered: more come next
    /// turn); each names a watched `cgroup.events` whose content changed.
    private func readEvents() {
        guard let inotify else { return }
        let buffer = loop.readBuffer
        let count = read(inotify, buffer.baseAddress, 4_096)
        guard count > 0 else { return }
        var offset = 0
        var changed: [Int32] = []
        let headerSize = MemoryLayout<inotify_event>.size
        while offset + headerSize <= count {
            let event = buffer.loadUnaligned(fromByteOffset: offset, as: inotify_event.self)
            changed.append(event.wd)
            offset += headerSize + Int(event.len)
        }
        for watch in changed where emptyWaiters[watch].map({ !$0.cgroup.isPopulated }) ?? false {
            emptied(watch)
        }
    }

    private func emptied(_ watch: Int32) {
        guard let waiter = emptyWaiters.removeValue(forKey: watch) else { return }
        if let inotify { _ = inotify_rm_watch(inotify, watch) }
        waiter.action()
    }

    /// At start-up, before any run: every cgroup a previous life of this supervisor left is
    /// killed, waited for (at most `limit`) and removed. Blocking, and bounded: the loop serves
    /// nothing yet.
    ///
    /// - Returns: one line per cgroup found, saying what was ended.
    func endLeftovers(limit: Duration = .seconds(5)) -> [String] {
        var reports: [String] = []
        for name in CgroupTree.childDirectories(path) {
            let cgroup = RunCgroup(path: path + "/" + name)
            let processes = cgroup.processes()
            cgroup.killAll()
            let deadline = ContinuousClock.now.advanced(by: limit)
            while cgroup.isPopulated && ContinuousClock.now < deadline {
                usleep(10_000)
            }
            let removed = cgroup.remove()
            let list = processes.map(String.init).joined(separator: " ")
            reports.append(
                "cgroup \(name) of a previous run: ended \(processes.count) process\(processes.count == 1 ? "" : "es")"
                    + (processes.isEmpty ? "" : " (\(list))") + (removed ? ", removed" : ", but could not remove it"))
        }
        return reports
    }

    /// Removes the spare slots, then the subtree itself if it is empty (at shutdown); best
    /// effort.
    func removeSubtree() {
        for spare in spares {
            spare.closeFiles()
            spare.remove()
        }
        spares.removeAll()
        _ = rmdir(path)
    }

    static func childDirectories(_ path: String) -> [String] {
        guard let directory = opendir(path) else { return [] }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            guard entry.pointee.d_type == UInt8(DT_DIR) else { continue }
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    /// The content of a small in-memory file (procfs, cgroupfs), or nil.
    static func readSmallFile(_ path: String) -> String? {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return nil }
        defer { SystemCall.close(descriptor) }
        var bytes: [UInt8] = []
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 4_096, alignment: 1)
        defer { chunk.deallocate() }
        while true {
            let count: Int
            do throws(Errno) {
                count = try SystemCall.retrying { read(descriptor, chunk.baseAddress, chunk.count) }
            } catch {
                return nil
            }
            if count == 0 { break }
            bytes.append(contentsOf: chunk[..<count])
            if bytes.count > 1 << 22 { break }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// The cgroup of one run: a directory of the supervisor's ``CgroupTree``.
///
/// A run reads two of its files once or twice (`cgroup.events`, `cpu.stat`): each kept open
/// while it is a slot and read with one `pread` at offset 0 (which makes cgroupfs produce the
/// file afresh) into a small buffer on the stack, scanned as bytes (cgroupfs hands the whole of
/// such a file to one read that has room for it), so that a run's end costs no path walk and
/// no string splitting (opening the two files by path was 6 % of the supervisor's CPU time
/// in the spawn scenarios, perf record).
final class RunCgroup {
    let path: String
    private let eventsPath: String
    private let statPath: String
    /// Its `cgroup.procs`, open for writing (close-on-exec) while it is a slot; -1 otherwise.
    private(set) var processesDescriptor: Int32 = -1
    /// Its directory (`O_PATH`), for a child to be born in it (`sp_spawn_options.cgroup_fd`),
    /// while it is a slot; -1 otherwise, or when it could not be opened (the child then moves
    /// in through `cgroup.procs`).
    private(set) var directoryDescriptor: Int32 = -1
    /// Its `cgroup.events` and `cpu.stat`, opened at their first read, closed with the slot.
    private var eventsDescriptor: Int32 = -1
    private var statDescriptor: Int32 = -1
    /// `user_usec` + `system_usec` of its `cpu.stat` when its current run began (what earlier
    /// runs in this slot used).
    private var cpuMicrosecondsBefore: UInt64 = 0
    /// False once something about it failed (its CPU time could not be read): it is not reused.
    private(set) var isReusable = true

    init(path: String) {
        self.path = path
        eventsPath = path + "/cgroup.events"
        statPath = path + "/cpu.stat"
    }

    deinit { closeFiles() }

    /// Opens its `cgroup.procs` for writing (close-on-exec), for spawns to put a child in.
    func openProcesses() throws(SupervisorError) {
        guard processesDescriptor < 0 else { return }
        let descriptor = open(path + "/cgroup.procs", O_WRONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            throw SupervisorError(
                code: .spawnFailed,
                message: "cannot open \(path)/cgroup.procs: \(SupervisorError.errorText(errno))")
        }
        processesDescriptor = descriptor
        directoryDescriptor = sp_open_path_directory(path)
    }

    /// Marks it as no slot for a later run (it may not be empty): given back, it is removed.
    func retire() {
        isReusable = false
    }

    /// Closes the files it keeps open (before it is removed).
    func closeFiles() {
        for descriptor in [processesDescriptor, directoryDescriptor, eventsDescriptor, statDescriptor]
        where descriptor >= 0 {
            SystemCall.close(descriptor)
        }
        processesDescriptor = -1
        directoryDescriptor = -1
        eventsDescriptor = -1
        statDescriptor = -1
    }

    /// The pids in it now.
    func processes() -> [pid_t] {
        guard let text = CgroupTree.readSmallFile(path + "/cgroup.procs") else { return [] }
        return text.split(separator: "\n").compactMap { pid_t($0) }
    }

    /// Sends `signal` to every process in it; SIGKILL goes through `cgroup.kill`, which also
    /// reaches processes forked meanwhile.
    func signalAll(_ signal: Int32) {
        if signal == SIGKILL { return killAll() }
        for pid in processes() where pid > 0 { _ = kill(pid, signal) }
    }

    /// Kills everything in it at once (`cgroup.kill`).
    func killAll() {
        _ = write(path + "/cgroup.kill", "1")
        // Linux 6.14 on kills every child later born in a cgroup that was killed once (it compares
        // the cgroup's count of kills with its parent's cgroup's: sp_spawn_options.cgroup_fd), so
        // no later run is born in this one: it is removed once empty, a new slot made.
        retire()
    }

    /// Whether any process is in it (`populated 1` in `cgroup.events`); a cgroup that cannot be
    /// read is taken as empty, so that nothing waits for ever on a removed one.
    var isPopulated: Bool {
        RunCgroup.withContents(of: eventsPath, keeping: &eventsDescriptor) { bytes in
            RunCgroup.value(of: "populated", in: bytes).map { $0 != 0 } ?? false
        } ?? false
    }

    /// User plus system CPU time of everything that ran in it since the last call (or since it
    /// was made), in milliseconds (`cpu.stat`): the CPU time of the run that just ended in it.
    /// Nil when `cpu.stat` cannot be read; the slot is then not reused.
    func takeCPUMilliseconds() -> Double? {
        let total = RunCgroup.withContents(of: statPath, keeping: &statDescriptor) { bytes -> UInt64? in
            let user = RunCgroup.value(of: "user_usec", in: bytes)
            let system = RunCgroup.value(of: "system_usec", in: bytes)
            guard user != nil || system != nil else { return nil }
            return (user ?? 0) &+ (system ?? 0)
        }
        guard let total = total ?? nil, total >= cpuMicrosecondsBefore else {
            isReusable = false
            return nil
        }
        defer { cpuMicrosecondsBefore = total }
        return Double(total - cpuMicrosecondsBefore) / 1_000
    }

    /// Removes it (it must be empty). - Returns: whether it is gone.
    @discardableResult
    func remove() -> Bool {
        rmdir(path) == 0 || errno == ENOENT
    }

    private func write(_ file: String, _ text: String) -> Bool {
        let descriptor = open(file, O_WRONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return false }
        defer { SystemCall.close(descriptor) }
        let written = try? SystemCall.retrying { Glibc.write(descriptor, text, text.utf8.count) }
        return written == text.utf8.count
    }

    /// Room for the flat-keyed files read here (`cpu.stat` with every controller is about 300
    /// bytes); a file that fills it is read again whole.
    private static let contentsCapacity = 1_024

    /// Calls `body` with the content of a small cgroupfs file, or returns nil when it cannot be
    /// read, through `descriptor`: opened when it is -1 and left open for the next call; closed
    /// and set to -1 again when a read fails (a removed cgroup's files say ENODEV).
    static func withContents<Result>(
        of file: String, keeping descriptor: inout Int32, _ body: (UnsafeRawBufferPointer) -> Result
    ) -> Result? {
        if descriptor < 0 {
            descriptor = open(file, O_RDONLY | O_CLOEXEC)
            guard descriptor >= 0 else { return nil }
        }
        let open = descriptor
        return withUnsafeTemporaryAllocation(byteCount: contentsCapacity, alignment: 1) { buffer -> Result? in
            let count: Int
            do throws(Errno) {
                count = try SystemCall.retrying { pread(open, buffer.baseAddress, buffer.count, 0) }
            } catch {
                SystemCall.close(open)
                descriptor = -1
                return nil
            }
            if count < buffer.count { return body(UnsafeRawBufferPointer(rebasing: buffer[..<count])) }
            // Larger than expected: the whole file, the slow way.
            guard let text = CgroupTree.readSmallFile(file) else { return nil }
            return Array(text.utf8).withUnsafeBytes(body)
        }
    }

    /// The number after `key` and a space on a line of a flat-keyed file (`populated 1`,
    /// `user_usec 3309`), or nil when no line has that key or its value is no number.
    static func value(of key: StaticString, in bytes: UnsafeRawBufferPointer) -> UInt64? {
        let keyBytes = UnsafeRawBufferPointer(start: key.utf8Start, count: key.utf8CodeUnitCount)
        var lineStart = 0
        while lineStart < bytes.count {
            var lineEnd = lineStart
            while lineEnd < bytes.count && bytes[lineEnd] != UInt8(ascii: "\n") { lineEnd += 1 }
            let valueStart = lineStart + keyBytes.count + 1
            if valueStart < lineEnd, bytes[valueStart - 1] == UInt8(ascii: " "),
                memcmp(bytes.baseAddress! + lineStart, keyBytes.baseAddress!, keyBytes.count) == 0
            {
                var value: UInt64 = 0
                for index in valueStart..<lineEnd {
                    let digit = bytes[index] &- UInt8(ascii: "0")
                    guard digit < 10 else { return nil }
                    let (times10, overflow1) = value.multipliedReportingOverflow(by: 10)
                    let (sum, overflow2) = times10.addingReportingOverflow(UInt64(digit))
                    guard !overflow1 && !overflow2 else { return nil }
                    value = sum
                }
                return value
            }
            lineStart = lineEnd + 1
        }
        return nil
    }
}
