import Glibc
import SmartPoll
import SmartPollProtocol
import SmartPollSystem

/// One run of a task or of a command hook: its process, the three pipes the supervisor reads
/// (stdout: the result; stderr: log lines; descriptor 3: directives), its input, its timers and
/// its exit, all watched by the event loop. Its life (timeout, teardown, end) is a
/// ``RunLifecycle``, whose actions this class carries out.
///
/// The run ends when the process exits: whatever the pipes still hold is read, what is left of
/// the run is killed (a grandchild holding a pipe open cannot keep a run alive), and the
/// `onEnd` given at launch is called once.
final class TaskRun {
    /// Whose run this is.
    enum Owner {
        /// A task's run, under the definition it started with, whatever a reload does meanwhile.
        case task(name: String, configuration: TaskConfiguration)
        /// A command hook's run (`emit`).
        case hook(name: String)
    }

    /// Everything a run is started from.
    struct Specification {
        var owner: Owner
        var runID: Int
        /// The run of the loop it belongs to; a run of another generation ends late.
        var generation: Int
        /// When it fell due (monotonic ns).
        var due: Int64
        /// The command: argv, environment (or its prepared form), cwd, credentials, nice value and
        /// resource limits. Its descriptors are the launcher's to fill in.
        var command: SpawnRequest
        /// Written to its stdin, then closed; nil: stdin is /dev/null.
        var input: [UInt8]?
        var capture: Int
        var maximumDirectives: Int
        var timeout: Duration?
        var teardown: Teardown
        /// The rate limit on its stderr lines in the log, shared by a task's runs.
        var stderrLimiter: StderrRateLimiter
        /// `run --wait` requests answered when the run ends.
        var waiters: [(Reply.Body) -> Void] = []
        /// Where its stderr lines go beside the log (the task's `logs` buffer); nil: nowhere
        /// (command hooks).
        var logBuffer: TaskLogBuffer? = nil
    }

    let owner: Owner
    /// The task's or the hook's name, and the log field that names it (`task` or `hook`).
    let name: String
    let kind: String
    let runID: Int
    let generation: Int
    /// When it fell due (monotonic ns) and when it started (monotonic ns and wall clock).
    let due: Int64
    let started: Int64
    let startedWall: Timestamp
    /// `run --wait` requests answered when the run ends.
    let waiters: [(Reply.Body) -> Void]
    private let capture: Int
    private let maximumDirectives: Int
    private var process: SpawnedProcess
    private let loop: EventLoop
    private let log: SupervisorLog
    private var lifecycle: RunLifecycle
    private var input: InputFeeder?
    private var timeoutTimer: EventLoop.TimerID?
    private var killTimer: EventLoop.TimerID?
    private let onEnd: (TaskRun) -> Void
    /// The supervisor's cgroup subtree and this run's cgroup in it; nil when runs are not
    /// contained in cgroups.
    private let cgroups: CgroupTree?
    private let cgroup: RunCgroup?
    /// The subreaper that ends the run's orphans, when runs are not in cgroups.
    private let subreaper: Subreaper?
    /// User plus system CPU time of the run, in milliseconds, once it has ended; nil when
    /// unknown.
    private(set) var cpuMilliseconds: Double?
    private var processCPUMilliseconds: Double?
    /// Whether a directive may name this task.
    private let isKnownTask: (String) -> Bool

    private(set) var output: [UInt8] = []
    private(set) var truncated = false
    private var stderrTail: [UInt8] = []
    /// The current stderr line when it spans reads (a line within one read is logged from the
    /// read buffer, not copied).
    private var stderrLine: [UInt8] = []
    /// Stderr bytes read but not split into lines yet: a turn logs at most
    /// ``stderrLinesPerTurn`` lines; the rest waits here for the next turn, and the pipe is not
    /// read meanwhile (the child waits, everyone else does not).
    private var stderrBacklog: [UInt8] = []
    private var stderrBacklogStart = 0
    /// A turn to go on with the backlog has been asked for.
    private var stderrContinues = false
    private let stderrLimiter: StderrRateLimiter
    /// The task's `logs` buffer: it gets the lines the rate limit lets through.
    private let logBuffer: TaskLogBuffer?
    /// The fields of its stderr lines in the log, made at the first (a run without stderr,
    /// the common case, does not pay for them).
    private lazy var stderrFields: [(String, String)] = [
        (kind, name), ("run", "\(runID)"), ("pid", "\(pid)"), ("stream", "stderr"),
    ]
    /// The run's process has ended and its pipes are read for the last time, a bounded part
    /// each turn, before `onEnd`.
    private var finishing = false
    /// The run's cgroup was found empty when its main process exited (nothing to kill, nothing
    /// to wait for).
    private var emptyAtExit = false
    private var finishingTurns = 0
    private var directiveFramer: LineFramer
    private(set) var directives: [Command] = []
    /// Why the run failed although the process may have exited 0 (a bad directive).
    private var directiveError: String?
    private(set) var status: TerminationStatus?

    private var outputDescriptor: Int32?
    private var errorDescriptor: Int32?
    private var directiveDescriptor: Int32?
    /// The supervisor's copies of the pipes' write ends, closed once the main process has
    /// exited. While they are open, the child's exit hangs up no pipe: an exit wakes the loop
    /// once (the pidfd), not once for each pipe its exit closes. Each such wake-up came while
    /// the exiting child still ran, on its core, so the two took turns: 4.4 context switches a
    /// run before, 2.05 with them held (perf stat, one task rescheduling itself). What the
    /// pipes hold is read all the same: the pipes are watched for input throughout, and read
    /// to their end once the write ends are closed.
    private var heldWriteEnds: [Int32]

    static let stderrTailLimit = 4_096
    /// A turn's work on a run's stderr: at most this many lines formatted for the log (about
    /// 1 ms of a debug build's formatting), and at most ``stderrScansPerTurn`` lines looked at
    /// (newlines found with memchr and counted against the rate limit, not formatted). With one
    /// read of at most 64 KiB a pipe per turn, a timer or a signal waits at most one such turn
    /// however fast a child writes.
    static let stderrLinesPerTurn = 256
    static let stderrScansPerTurn = 8_192
    /// Turns a run's pipes are still read after its process ended (one read of 64 KiB each a
    /// turn, so at most 1 MiB a pipe): a grandchild that escaped containment and holds a pipe
    /// open cannot keep the run from ending.
    static let finishingReads = 16

    /// Starts a run: its pipes, its process, its input, its timeout; then the event loop
    /// watches it until it ends and `onEnd` is called.
    ///
    /// - Throws: when a pipe, the process or its watching cannot be set up; nothing is left
    ///   behind then (a process that was spawned is killed and reaped) and `onEnd` is never
    ///   called.
    static func launch(
        _ specification: Specification, loop: EventLoop, log: SupervisorLog, cgroups: CgroupTree?,
        subreaper: Subreaper?,
        isKnownTask: @escaping (String) -> Bool, onEnd: @escaping (TaskRun) -> Void
    ) throws(SupervisorError) -> TaskRun {
        // Contained: the run is born in a cgroup of its own, given back if the launch fails.
        let cgroup = try cgroups?.takeSlot()
        defer { cgroups?.noteBirthsRefused(log: log) }
        do throws(SupervisorError) {
            return try launch(
                specification, loop: loop, log: log, cgroups: cgroups, cgroup: cgroup, subreaper: subreaper,
                isKnownTask: isKnownTask, onEnd: onEnd)
        } catch {
            if let cgroups, let cgroup {
                // What was started is killed (a killed slot is removed once empty: killAll); an
                // empty slot is given back for a later run.
                if cgroup.isPopulated { cgroup.killAll() }
                cgroups.whenEmpty(cgroup) {
                    _ = cgroup.takeCPUMilliseconds()
                    cgroups.giveBack(cgroup)
                }
            }
            throw error
        }
    }

    private static func launch(
        _ specification: Specification, loop: EventLoop, log: SupervisorLog, cgroups: CgroupTree?,
        cgroup: RunCgroup?, subreaper: Subreaper?, isKnownTask: @escaping (String) -> Bool,
        onEnd: @escaping (TaskRun) -> Void
    ) throws(SupervisorError) -> TaskRun {
        let stdin = try specification.input.map { _ throws(SupervisorError) in try Pipe() }
        let stdout = try Pipe(nonblockingReadEnd: true)
        let stderr = try Pipe(nonblockingReadEnd: true)
        let directives = try Pipe(nonblockingReadEnd: true)
        var request = specification.command
        request.standardInput = stdin.map { .fileDescriptor($0.readEnd!) } ?? .nullDevice
        request.standardOutput = .fileDescriptor(stdout.writeEnd!)
        request.standardError = .fileDescriptor(stderr.writeEnd!)
        request.directives = directives.writeEnd!
        request.cgroupProcesses = cgroup?.processesDescriptor
        if let directory = cgroup?.directoryDescriptor, directory >= 0 { request.cgroupDirectory = directory }
        let process = try ProcessSpawner.spawn(request)
        stdin?.closeReadEnd()
        // The write ends stay open until the process has exited (see heldWriteEnds).
        let run = TaskRun(
            specification, process: process, stdout: stdout.takeReadEnd()!, stderr: stderr.takeReadEnd()!,
            directives: directives.takeReadEnd()!,
            heldWriteEnds: [stdout.takeWriteEnd()!, stderr.takeWriteEnd()!, directives.takeWriteEnd()!],
            loop: loop, log: log, cgroups: cgroups, cgroup: cgroup, subreaper: subreaper, isKnownTask: isKnownTask,
            onEnd: onEnd)
        if let bytes = specification.input, let writeEnd = stdin?.takeWriteEnd() {
            do throws(SupervisorError) {
                run.input = try InputFeeder(descriptor: writeEnd, bytes: bytes, loop: loop)
            } catch {
                // A run without its input is not the run that was asked for: it fails to start.
                SystemCall.close(writeEnd)
                run.abandon()
                throw error
            }
        }
        try run.watch()
        run.carryOut(run.lifecycle.started())
        return run
    }

    private init(
        _ specification: Specification, process: SpawnedProcess, stdout: Int32, stderr: Int32, directives: Int32,
        heldWriteEnds: [Int32], loop: EventLoop, log: SupervisorLog, cgroups: CgroupTree?, cgroup: RunCgroup?,
        subreaper: Subreaper?,
        isKnownTask: @escaping (String) -> Bool, onEnd: @escaping (TaskRun) -> Void
    ) {
        owner = specification.owner
        switch specification.owner {
        case .task(let name, _): (self.name, kind) = (name, "task")
        case .hook(let name): (self.name, kind) = (name, "hook")
        }
        runID = specification.runID
        generation = specification.generation
        due = specification.due
        started = loop.now
        startedWall = Timestamp.now()
        stderrLimiter = specification.stderrLimiter
        logBuffer = specification.logBuffer
        waiters = specification.waiters
        capture = specification.capture
        maximumDirectives = specification.maximumDirectives
        lifecycle = RunLifecycle(
            timeout: specification.timeout, teardown: specification.teardown,
            isContained: cgroup != nil || subreaper != nil)
        self.cgroups = cgroups
        self.cgroup = cgroup
        self.subreaper = subreaper
        subreaper?.track(process.pid, run: specification.runID)
        self.process = process
        self.loop = loop
        self.log = log
        self.isKnownTask = isKnownTask
        self.onEnd = onEnd
        directiveFramer = LineFramer(maximumLineLength: 1 << 20)
        outputDescriptor = stdout
        errorDescriptor = stderr
        directiveDescriptor = directives
        self.heldWriteEnds = heldWriteEnds
    }

    deinit {
        // Closed when the process exits (reap, abandon); this is a safety net.
        releaseWriteEnds()
    }

    var isHook: Bool {
        if case .hook = owner { return true }
        return false
    }

    var pid: Int32 { process.pid }

    var hasEnded: Bool { lifecycle.state == .ended }
    /// The main process has exited (the run may still wait for its cgroup to empty).
    var hasExited: Bool { lifecycle.hasExited }
    var timedOut: Bool { lifecycle.timedOut }
    var cancelled: Bool { lifecycle.cancelled }
    /// Whether the loop's end ended the run (see ``RunLifecycle/stopped``).
    var stopped: Bool { lifecycle.stopped }

    /// Whether the run succeeded: exit 0, no timeout, no cancel, valid directives.
    var succeeded: Bool { lifecycle.succeeded(status: status, directiveError: directiveError) }

    /// Why it failed, in one phrase, or nil.
    var failureReason: String? { lifecycle.failureReason(status: status, directiveError: directiveError) }

    var stderrTailText: String {
        String(decoding: stderrTail.suffix(TaskRun.stderrTailLimit), as: UTF8.self)
    }

    /// Ends the run early (its teardown: signal, grace, SIGKILL); see ``RunLifecycle/terminate(_:)``.
    func terminate(_ cause: RunLifecycle.Cause) {
        carryOut(lifecycle.terminate(cause))
    }

    // MARK: Carrying out the lifecycle's actions

    private func carryOut(_ actions: [RunLifecycle.Action]) {
        for action in actions {
            switch action {
            case .armTimeout(let timeout):
                timeoutTimer = loop.schedule(after: timeout) { [weak self] in
                    guard let self else { return }
                    self.timeoutTimer = nil
                    let actions = self.lifecycle.timeoutElapsed()
                    // A run already being ended (cancel, stop) keeps that course and reason.
                    guard !actions.isEmpty else { return }
                    self.log.write(
                        .warning, "timed out after \(DurationFormat.format(timeout))",
                        [(self.kind, self.name), ("run", "\(self.runID)"), ("pid", "\(self.pid)")])
                    self.carryOut(actions)
                }
            case .signal(let signal):
                signalRun(signal)
            case .armKill(let grace):
                killTimer = loop.schedule(after: grace) { [weak self] in
                    guard let self else { return }
                    self.killTimer = nil
                    self.carryOut(self.lifecycle.graceElapsed())
                }
            case .awaitEmpty:
                collectStatus()
                let emptied = { [weak self] in
                    guard let self else { return }
                    self.carryOut(self.lifecycle.emptied())
                }
                if let cgroups, let cgroup {
                    if emptyAtExit { emptied() } else { cgroups.whenEmpty(cgroup, emptied) }
                } else if let subreaper {
                    subreaper.endRun(runID, then: emptied)
                } else {
                    emptied()
                }
            case .finish:
                finish()
            }
        }
    }

    /// Sends `signal` to every process of the run: of its cgroup (SIGKILL through
    /// `cgroup.kill`), or of its process group unless the main process was reaped.
    private func signalRun(_ signal: Int32) {
        if let cgroup {
            // What is left when the main process exits is killed; usually nothing is, and
            // reading `cgroup.events` once costs less than a kill and then that same read.
            if signal == SIGKILL && lifecycle.hasExited {
                if cgroup.isPopulated { cgroup.killAll() } else { emptyAtExit = true }
                return
            }
            return cgroup.signalAll(signal)
        }
        // What left the process group but kept the run's environment; at the main process's
        // exit, the walks of `endRun` (the `.awaitEmpty` that follows) find and kill the same
        // processes, so one walk of /proc when nothing is left instead of two (51 -> 34 system
        // calls a run, 1 task).
        if !(signal == SIGKILL && lifecycle.hasExited) { subreaper?.signal(run: runID, signal) }
        guard status == nil else { return }
        do {
            try process.signalGroup(signal)
        } catch {
            log.write(.warning, "cannot signal run \(runID): \(error.message)", [(kind, name), ("run", "\(runID)")])
        }
    }

    /// Starts watching the pipes and the exit. - Throws: when epoll refuses a descriptor.
    private func watch() throws(SupervisorError) {
        guard let pidfd = process.pidfd else {
            abandon()
            throw SupervisorError(
                code: .spawnFailed,
                message: "this kernel gave no pidfd for process \(pid) (Linux 5.3 or later is needed)")
        }
        var registered: [Int32] = []
        do {
            for descriptor in [outputDescriptor, errorDescriptor, directiveDescriptor].compactMap({ $0 }) {
                try loop.register(descriptor, for: .readable) { [unowned self] events in
                    // Hung up and not readable: the writers are gone and nothing is left to
                    // read, so the pipe closes without the read that would say end of file.
                    self.drain(descriptor, atEnd: events.contains(.hangup) && !events.contains(.readable))
                }
                registered.append(descriptor)
            }
            try loop.register(pidfd, for: .readable) { [unowned self] _ in self.reap() }
        } catch {
            for descriptor in registered { loop.deregister(descriptor) }
            abandon()
            throw error
        }
    }

    /// Gives up on a run that could not be watched: its group is killed and reaped at once and
    /// every descriptor closed, so nothing is left behind (and `onEnd` is not called).
    private func abandon() {
        _ = lifecycle.exited()
        releaseWriteEnds()
        // Best effort: the launch fails with the reason it could not be watched.
        cgroup?.killAll()
        _ = try? process.signalGroup(SIGKILL)
        _ = try? process.wait()
        process.close()
        for descriptor in [outputDescriptor, errorDescriptor, directiveDescriptor].compactMap({ $0 }) {
            SystemCall.close(descriptor)
        }
        outputDescriptor = nil
        errorDescriptor = nil
        directiveDescriptor = nil
        input?.close()
        input = nil
        subreaper?.untrack(pid)
    }

    // MARK: Pipes

    /// One turn's work on `descriptor`: one read of at most 64 KiB (epoll is level-triggered:
    /// what is left wakes the next turn), consumed at once (stdout, directives) or a bounded
    /// number of lines at a time (stderr, whose backlog is handled first); closes the pipe at
    /// end of file.
    ///
    /// - Returns: whether the pipe may hold more (a full read, or a stderr backlog).
    /// With `atEnd`, epoll said the pipe is empty and has no writer left: it is closed unread.
    @discardableResult
    private func drain(_ descriptor: Int32, atEnd: Bool = false) -> Bool {
        if descriptor == errorDescriptor && stderrBacklogStart < stderrBacklog.count { return true }
        if atEnd {
            closePipe(descriptor)
            return false
        }
        while true {
            let readBuffer = loop.readBuffer
            let count = read(descriptor, readBuffer.baseAddress, readBuffer.count)
            if count > 0 {
                consume(descriptor, count)
                return count == readBuffer.count || stderrBacklogStart < stderrBacklog.count
            }
            if count < 0 && errno == EINTR { continue }
            if count < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { return false }
            closePipe(descriptor)
            return false
        }
    }

    private func consume(_ descriptor: Int32, _ count: Int) {
        let bytes = UnsafeRawBufferPointer(rebasing: loop.readBuffer[..<count])
        if descriptor == outputDescriptor {
            let room = max(0, capture - output.count)
            output.append(contentsOf: bytes.prefix(room))
            if count > room { truncated = true }
        } else if descriptor == errorDescriptor {
            // The tail of `status` sees every byte, logged or not.
            if count >= TaskRun.stderrTailLimit {
                stderrTail.removeAll(keepingCapacity: true)
                stderrTail.append(contentsOf: bytes.suffix(TaskRun.stderrTailLimit))
            } else {
                stderrTail.append(contentsOf: bytes)
                if stderrTail.count > TaskRun.stderrTailLimit * 2 {
                    stderrTail.removeFirst(stderrTail.count - TaskRun.stderrTailLimit)
                }
            }
            // A pipe with a backlog is not read (see drain), so the backlog is empty here.
            assert(stderrBacklog.isEmpty)
            let consumed = logStderr(bytes)
            if consumed < count {
                stderrBacklog.removeAll(keepingCapacity: true)
                stderrBacklog.append(contentsOf: bytes[consumed...])
                stderrBacklogStart = 0
                continueStderrNextTurn()
            }
        } else if descriptor == directiveDescriptor {
            // Bounded by the read (64 KiB) and by max_directives (lines past a failure are not
            // decoded).
            directiveFramer.append(bytes)
            while let frame = directiveFramer.next() {
                switch frame {
                case .line(let line): takeDirective(line)
                case .tooLarge: failDirectives("a directive line is longer than 1 MiB")
                }
            }
        }
    }

    private func continueStderrNextTurn() {
        guard !stderrContinues, !finishing else { return }
        stderrContinues = true
        loop.callNextTurn { [weak self] in
            guard let self else { return }
            self.stderrContinues = false
            guard !self.finishing else { return }
            self.logStderrBacklog()
            if self.stderrBacklogStart < self.stderrBacklog.count { self.continueStderrNextTurn() }
        }
    }

    /// Logs a turn's share of the backlog; once it is empty and the pipe closed, the last line
    /// without a newline too.
    private func logStderrBacklog() {
        if stderrBacklogStart < stderrBacklog.count {
            let consumed = stderrBacklog.withUnsafeBytes { buffer in
                logStderr(UnsafeRawBufferPointer(rebasing: buffer[stderrBacklogStart...]))
            }
            stderrBacklogStart += consumed
            if stderrBacklogStart == stderrBacklog.count {
                stderrBacklog.removeAll(keepingCapacity: true)
                stderrBacklogStart = 0
            }
        }
        if stderrBacklog.isEmpty && errorDescriptor == nil && !stderrLine.isEmpty {
            var budget = 1
            endStderrLine(nil, budget: &budget, now: loop.now)
        }
    }

    /// Splits stderr into lines, a line longer than 4 KiB in pieces of 4 KiB, looking for
    /// newlines with memchr a segment at a time (byte by byte, 100 MB of stderr took the loop 18 s
    /// in a debug build); logs the lines the rate limit lets through, counts the others.
    ///
    /// - Returns: how many bytes it took: all of them, or fewer once the turn's lines are used
    ///   up (``stderrLinesPerTurn`` logged, ``stderrScansPerTurn`` looked at).
    private func logStderr(_ bytes: UnsafeRawBufferPointer) -> Int {
        guard let base = bytes.baseAddress else { return 0 }
        let now = loop.now
        let limit = 4_096
        var budget = TaskRun.stderrLinesPerTurn
        var scans = TaskRun.stderrScansPerTurn
        var index = 0
        while index < bytes.count && budget > 0 && scans > 0 {
            if stderrLine.count >= limit {
                // A full line ends here; a newline right after it ends nothing more.
                endStderrLine(nil, budget: &budget, now: now)
                scans -= 1
                if bytes[index] == 10 {
                    index += 1
                    continue
                }
            }
            let end = min(bytes.count, index + limit - stderrLine.count)
            if let found = memchr(base + index, 10, end - index) {
                let newline = base.distance(to: UnsafeRawPointer(found))
                endStderrLine(UnsafeRawBufferPointer(rebasing: bytes[index..<newline]), budget: &budget, now: now)
                scans -= 1
                index = newline + 1
            } else {
                stderrLine.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[index..<end]))
                index = end
            }
        }
        if let dropped = stderrLimiter.takeReport(now: now) { reportDroppedStderr(dropped) }
        return index
    }

    /// Ends the current stderr line, whose last part is `rest` (nil: all of it is in
    /// `stderrLine`): logged when the rate limit lets it through, counted otherwise.
    private func endStderrLine(_ rest: UnsafeRawBufferPointer?, budget: inout Int, now: Int64) {
        defer { stderrLine.removeAll(keepingCapacity: true) }
        let logs = log.accepts(.info)
        // The `logs` buffer gets the lines the rate limit lets through, whatever the log level.
        guard logs || logBuffer != nil, stderrLimiter.admit(now: now) else { return }
        budget -= 1
        let text: String
        if stderrLine.isEmpty, let rest {
            text = String(decoding: rest, as: UTF8.self)
        } else {
            if let rest { stderrLine.append(contentsOf: rest) }
            text = String(decoding: stderrLine, as: UTF8.self)
        }
        if logs { log.write(.info, text, stderrFields) }
        logBuffer?.append(time: Timestamp.now(), run: runID, line: text)
    }

    private func reportDroppedStderr(_ count: Int) {
        log.write(
            .warning,
            "\(count) stderr lines dropped (log_rate \(stderrLimiter.rate)/s, log_burst \(stderrLimiter.burst))",
            [(kind, name), ("run", "\(runID)")])
    }

    private func takeDirective(_ line: [UInt8]) {
        guard directiveError == nil else { return }
        guard directives.count < maximumDirectives else {
            return failDirectives("more than \(maximumDirectives) directives in one run")
        }
        // A task's directive may leave out `task` (it means the task itself); a hook has no self.
        switch Request.decode(line, defaultTask: isHook ? nil : name) {
        case .failure(let failure):
            failDirectives("invalid directive \(directives.count + 1): \(failure.error.message)")
        case .success(let request):
            switch request.command {
            case .schedule, .unschedule, .stopTimer:
                if let target = request.command.task, !isKnownTask(target) {
                    return failDirectives(
                        "invalid directive \(directives.count + 1): no task is named \(JSONValue.string(target).serialized())"
                    )
                }
                directives.append(request.command)
            default:
                failDirectives(
                    "invalid directive \(directives.count + 1): \"\(request.command.name.rawValue)\" is not a directive (use schedule, unschedule or stop_timer)"
                )
            }
        }
    }

    private func failDirectives(_ reason: String) {
        if directiveError == nil { directiveError = reason }
        directives = []
    }

    private func closePipe(_ descriptor: Int32) {
        loop.forget(descriptor)
        SystemCall.close(descriptor)
        if descriptor == outputDescriptor { outputDescriptor = nil }
        if descriptor == errorDescriptor {
            errorDescriptor = nil
            // The last line without a newline, unless lines before it wait in the backlog.
            if stderrBacklog.isEmpty && !stderrLine.isEmpty {
                var budget = 1
                endStderrLine(nil, budget: &budget, now: loop.now)
            }
        }
        if descriptor == directiveDescriptor {
            directiveDescriptor = nil
            if directiveFramer.bufferedByteCount > 0 {
                failDirectives("the last directive has no newline at its end")
            }
        }
    }

    // MARK: Exit

    /// The process exited (its pidfd is readable; the event loop drops events of a descriptor
    /// number reused since): the lifecycle kills what is left of the run and finishes it.
    private func reap() {
        guard !hasExited else { return }
        releaseWriteEnds()
        carryOut(lifecycle.exited())
    }

    /// Closes the supervisor's copies of the pipes' write ends: from now on a pipe ends when
    /// whatever else holds it (an orphan of the run) lets go.
    private func releaseWriteEnds() {
        for descriptor in heldWriteEnds { SystemCall.close(descriptor) }
        heldWriteEnds = []
    }

    /// Reaps the main process (once) and stops watching its pidfd.
    private func collectStatus() {
        guard let pidfd = process.pidfd else { return }
        do {
            let ended = try process.waitWithUsage(nonblocking: true)
            status = ended?.status
            // Without a cgroup: the main process's and what it waited for (not its orphans').
            processCPUMilliseconds = ended?.cpuMilliseconds
        } catch {
            log.write(
                .error, "cannot collect the exit status of run \(runID): \(error.message)",
                [(kind, name), ("run", "\(runID)"), ("pid", "\(pid)")])
        }
        loop.forget(pidfd)
        process.close()
        subreaper?.untrack(pid)
    }

    /// Collects the exit status, accounts for the cgroup's CPU time and removes it, then reads
    /// what the pipes still hold, a bounded part each turn, and reports the end.
    private func finish() {
        collectStatus()
        cpuMilliseconds = processCPUMilliseconds
        if let cgroup {
            cpuMilliseconds = cgroup.takeCPUMilliseconds()
            if let cgroups, let failure = cgroups.giveBack(cgroup) {
                log.write(.warning, failure, [(kind, name), ("run", "\(runID)")])
            }
        }
        input?.close()
        input = nil
        if let timer = timeoutTimer { loop.cancel(timer) }
        if let timer = killTimer { loop.cancel(timer) }
        timeoutTimer = nil
        killTimer = nil
        finishing = true
        readPipesBeforeEnd()
    }

    /// One turn of the last reads: the stderr backlog's share, else one read a pipe (a pipe
    /// that is empty or at end of file is closed, and so is every pipe after
    /// ``finishingReads`` turns); the run ends once the pipes are closed and the backlog
    /// logged.
    private func readPipesBeforeEnd() {
        logStderrBacklog()
        if stderrBacklog.isEmpty {
            finishingTurns += 1
            for descriptor in [outputDescriptor, errorDescriptor, directiveDescriptor].compactMap({ $0 }) {
                let more = finishingTurns <= TaskRun.finishingReads && drain(descriptor)
                let stillOpen =
                    descriptor == outputDescriptor || descriptor == errorDescriptor
                    || descriptor == directiveDescriptor
                if !more && stillOpen { closePipe(descriptor) }
            }
        }
        if outputDescriptor != nil || errorDescriptor != nil || directiveDescriptor != nil || !stderrBacklog.isEmpty {
            // From now on the pipes are read here only, a bounded number of times (usually the
            // first turn closes them all, without this system call).
            for descriptor in [outputDescriptor, errorDescriptor, directiveDescriptor].compactMap({ $0 }) {
                loop.deregister(descriptor)
            }
            loop.callNextTurn { [weak self] in self?.readPipesBeforeEnd() }
            return
        }
        if let dropped = stderrLimiter.takeReport(now: loop.now, force: true) { reportDroppedStderr(dropped) }
        onEnd(self)
    }
}
