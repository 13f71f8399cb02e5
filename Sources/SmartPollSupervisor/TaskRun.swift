import SmartPoll
import SmartPollProtocol
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// One run of a task: its process, the three pipes the supervisor reads (stdout: the result;
/// stderr: log lines; descriptor 3: directives) and its exit, all watched by the event loop.
///
/// The run ends when the process exits: whatever the pipes still hold is read, the rest of its
/// process group is killed (a grandchild holding a pipe open cannot keep a run alive), and
/// ``onEnd`` is called once.
final class TaskRun {
    /// The task's name, or the hook's for a command hook.
    let task: String
    /// The task's index; -1 for a command hook. A reload that renumbers the tasks updates it.
    var taskIndex: Int
    /// The task's definition when the run started; nil for a command hook.
    var taskConfiguration: TaskConfiguration?
    /// The task was removed by a reload while this run was in flight: it is being ended, and
    /// its end touches no task's state.
    var isDetached = false
    var isHook: Bool { taskIndex < 0 }
    let runID: Int
    let generation: Int
    /// When it fell due (monotonic ns) and when it started (monotonic ns and wall clock).
    let due: Int64
    let started: Int64
    let startedWall: Timestamp
    let capture: Int
    let maximumDirectives: Int
    private(set) var process: SpawnedProcess
    private let loop: EventLoop
    private let log: SupervisorLog

    private(set) var output: [UInt8] = []
    private(set) var truncated = false
    private(set) var stderrTail: [UInt8] = []
    private var stderrLine: [UInt8] = []
    private var directiveFramer: LineFramer
    private(set) var directives: [Command] = []
    /// Why the run failed although the process may have exited 0 (a bad directive).
    private(set) var directiveError: String?
    private(set) var status: TerminationStatus?
    var timedOut = false
    var cancelled = false
    var killTimer: EventLoop.TimerID?
    var timeoutTimer: EventLoop.TimerID?
    /// `run --wait` requests answered when this run ends.
    var waiters: [(Reply.Body) -> Void] = []
    var onEnd: ((TaskRun) -> Void)?
    /// Whether a directive may name this task; set by the supervisor.
    var isKnownTask: (String) -> Bool = { _ in true }

    private var outputDescriptor: Int32?
    private var errorDescriptor: Int32?
    private var directiveDescriptor: Int32?
    private var ended = false

    static let stderrTailLimit = 4_096

    init(
        task: String, taskIndex: Int, runID: Int, generation: Int, due: Int64, started: Int64,
        capture: Int, maximumDirectives: Int, process: SpawnedProcess,
        stdout: Int32, stderr: Int32, directives: Int32, loop: EventLoop, log: SupervisorLog
    ) {
        self.task = task
        self.taskIndex = taskIndex
        self.runID = runID
        self.generation = generation
        self.due = due
        self.started = started
        startedWall = Timestamp.now()
        self.capture = capture
        self.maximumDirectives = maximumDirectives
        self.process = process
        self.loop = loop
        self.log = log
        directiveFramer = LineFramer(maximumLineLength: 1 << 20)
        outputDescriptor = stdout
        errorDescriptor = stderr
        directiveDescriptor = directives
    }

    var pid: Int32 { process.pid }

    /// Whether the process has been reaped (or given up on); its group may not be signalled.
    var hasEnded: Bool { ended }

    /// Starts watching the pipes and the exit. - Throws: when epoll refuses a descriptor.
    func watch() throws(SupervisorError) {
        guard let pidfd = process.pidfd else {
            abandon()
            throw SupervisorError(code: .spawnFailed, message: "this kernel gave no pidfd for process \(pid) (Linux 5.3 or later is needed)")
        }
        var registered: [Int32] = []
        do {
            for descriptor in [outputDescriptor, errorDescriptor, directiveDescriptor].compactMap({ $0 }) {
                try loop.register(descriptor, for: .readable) { [unowned self] _ in self.drain(descriptor) }
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
        ended = true
        _ = try? process.signalGroup(SIGKILL)
        _ = try? process.wait()
        process.close()
        for descriptor in [outputDescriptor, errorDescriptor, directiveDescriptor].compactMap({ $0 }) {
            close(descriptor)
        }
        outputDescriptor = nil
        errorDescriptor = nil
        directiveDescriptor = nil
    }

    /// Sends `signal` to the run's whole process group (nothing once it has ended).
    func signalGroup(_ signal: Int32) {
        guard !ended else { return }
        _ = try? process.signalGroup(signal)
    }

    // MARK: Pipes

    /// Reads what `descriptor` holds now, at most 16 buffers per call so that a flooding child
    /// cannot monopolize the loop (epoll is level-triggered: the rest comes next time); closes
    /// it at end of file.
    private func drain(_ descriptor: Int32) {
        for _ in 0..<16 {
            let readBuffer = loop.readBuffer
            let count = read(descriptor, readBuffer.baseAddress, readBuffer.count)
            if count > 0 {
                consume(descriptor, count)
                if count < readBuffer.count { return }
                continue
            }
            if count < 0 && errno == EINTR { continue }
            if count < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { return }
            closePipe(descriptor)
            return
        }
    }

    private func consume(_ descriptor: Int32, _ count: Int) {
        let bytes = UnsafeRawBufferPointer(rebasing: loop.readBuffer[..<count])
        if descriptor == outputDescriptor {
            let room = max(0, capture - output.count)
            output.append(contentsOf: bytes.prefix(room))
            if count > room { truncated = true }
        } else if descriptor == errorDescriptor {
            if count >= TaskRun.stderrTailLimit {
                stderrTail.removeAll(keepingCapacity: true)
                stderrTail.append(contentsOf: bytes.suffix(TaskRun.stderrTailLimit))
            } else {
                stderrTail.append(contentsOf: bytes)
                if stderrTail.count > TaskRun.stderrTailLimit * 2 {
                    stderrTail.removeFirst(stderrTail.count - TaskRun.stderrTailLimit)
                }
            }
            splitStderrLines(bytes)
        } else if descriptor == directiveDescriptor {
            directiveFramer.append(bytes)
            while let frame = directiveFramer.next() {
                switch frame {
                case .line(let line): takeDirective(line)
                case .tooLarge: failDirectives("a directive line is longer than 1 MiB")
                }
            }
        }
    }

    /// Logs stderr line by line, a line longer than 4 KiB in pieces of 4 KiB, looking for
    /// newlines with memchr a segment at a time (byte by byte, 100 MB of stderr took the loop 18 s
    /// in a debug build).
    private func splitStderrLines(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress else { return }
        let limit = 4_096
        var index = 0
        while index < bytes.count {
            if stderrLine.count >= limit {
                // A full line ends here; a newline right after it ends nothing more.
                logStderrLine()
                if bytes[index] == 10 {
                    index += 1
                    continue
                }
            }
            let end = min(bytes.count, index + limit - stderrLine.count)
            if let found = memchr(base + index, 10, end - index) {
                let newline = base.distance(to: UnsafeRawPointer(found))
                stderrLine.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[index..<newline]))
                logStderrLine()
                index = newline + 1
            } else {
                stderrLine.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[index..<end]))
                index = end
            }
        }
    }

    private func logStderrLine() {
        let text = String(decoding: stderrLine, as: UTF8.self)
        stderrLine.removeAll(keepingCapacity: true)
        log.write(.info, text, [("task", task), ("run", "\(runID)"), ("pid", "\(pid)"), ("stream", "stderr")])
    }

    private func takeDirective(_ line: [UInt8]) {
        guard directiveError == nil else { return }
        guard directives.count < maximumDirectives else {
            return failDirectives("more than \(maximumDirectives) directives in one run")
        }
        // A task's directive may leave out `task` (it means the task itself); a hook has no self.
        switch Request.decode(line, defaultTask: isHook ? nil : task) {
        case .failure(let failure):
            failDirectives("invalid directive \(directives.count + 1): \(failure.error.message)")
        case .success(let request):
            switch request.command {
            case .schedule, .unschedule, .stopTimer:
                if let target = request.command.task, !isKnownTask(target) {
                    return failDirectives("invalid directive \(directives.count + 1): no task is named \(JSONValue.string(target).serialized())")
                }
                directives.append(request.command)
            default:
                failDirectives("invalid directive \(directives.count + 1): \"\(request.command.name.rawValue)\" is not a directive (use schedule, unschedule or stop_timer)")
            }
        }
    }

    private func failDirectives(_ reason: String) {
        if directiveError == nil { directiveError = reason }
        directives = []
    }

    private func closePipe(_ descriptor: Int32) {
        loop.forget(descriptor)
        close(descriptor)
        if descriptor == outputDescriptor { outputDescriptor = nil }
        if descriptor == errorDescriptor {
            errorDescriptor = nil
            if !stderrLine.isEmpty { logStderrLine() }
        }
        if descriptor == directiveDescriptor {
            directiveDescriptor = nil
            if directiveFramer.bufferedByteCount > 0 {
                failDirectives("the last directive has no newline at its end")
            }
        }
    }

    // MARK: Exit

    /// The process exited: collect its status, read what is left, end the group, report.
    private func reap() {
        guard !ended, let pidfd = process.pidfd else { return }
        // Make sure the process has exited (its pidfd is readable) before killing its group: an
        // event for a descriptor number closed and reused within one epoll batch must not
        // reach a new run.
        var entry = pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0)
        guard poll(&entry, 1, 0) == 1 else { return }
        // Nothing of a run outlives it. The exited leader, not yet reaped, still holds the
        // group's number, so this cannot reach an unrelated group that reused it.
        _ = try? process.signalGroup(SIGKILL)
        guard let status = try? process.wait(nonblocking: true) else { return }
        self.status = status
        finish()
    }

    /// Used without a pidfd, and by tests.
    func finish() {
        guard !ended else { return }
        ended = true
        if let pidfd = process.pidfd { loop.forget(pidfd) }
        process.close()
        for descriptor in [outputDescriptor, errorDescriptor, directiveDescriptor].compactMap({ $0 }) {
            drain(descriptor)
            if descriptor == outputDescriptor || descriptor == errorDescriptor || descriptor == directiveDescriptor {
                closePipe(descriptor)
            }
        }
        if let timer = timeoutTimer { loop.cancel(timer) }
        if let timer = killTimer { loop.cancel(timer) }
        onEnd?(self)
        onEnd = nil
    }

    var stderrTailText: String {
        String(decoding: stderrTail.suffix(TaskRun.stderrTailLimit), as: UTF8.self)
    }

    /// Whether the run succeeded: exit 0, no timeout, no cancel, valid directives.
    var succeeded: Bool {
        status == .exited(0) && !timedOut && !cancelled && directiveError == nil
    }

    /// Why it failed, in one sentence, or nil.
    var failureReason: String? {
        if succeeded { return nil }
        if timedOut { return "timed out" }
        if cancelled { return "cancelled" }
        if let directiveError { return directiveError }
        switch status {
        case .exited(let code)?: return "exited with status \(code)"
        case .signaled(let signal)?: return "killed by \(SignalName.name(signal))"
        case nil: return "ended without an exit status"
        }
    }
}
