import SmartPoll
import SmartPollProtocol
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The daemon: a driver of ``SchedulerStateMachine`` whose tasks are child processes, served
/// over the control socket, all on one ``EventLoop`` thread (SPEC sections 3 to 8).
///
/// Every request is handled inside the loop, between runs of task hooks, so every reply sees a
/// consistent state; nothing here is shared with another thread.
final class Supervisor {
    enum LoopState: Equatable {
        case stopped, starting, running, failed
    }

    /// The configuration in effect; `reload` replaces it (all but the keys that need a restart).
    var configuration: SupervisorConfiguration
    let socketPath: String
    let loop: EventLoop
    var log: SupervisorLog
    var server: ControlServer!
    var machine: SchedulerStateMachine
    /// Task names in status order (sorted), their indices, and their runtimes; a reload that
    /// adds or removes tasks rebuilds all three (and the machine).
    var names: [String]
    var indexByName: [String: Int]
    var tasks: [TaskRuntime]
    /// Runs of tasks a reload removed: ending (TERM, grace, KILL), tracked until reaped.
    var detachedRuns: [TaskRun] = []
    /// The `state_dir` machinery; nil without one.
    let persistence: StatePersistence?
    /// systemd's notify socket (`NOTIFY_SOCKET`), if any.
    let notifier: SystemdNotifier
    var lastStatusNotification: Int64 = .min
    var statusNotificationTimer: EventLoop.TimerID?
    /// Descriptor 3 when systemd passed the listening socket (`LISTEN_FDS`, `LISTEN_PID`).
    let activatedListener: Int32?
    var loopState: LoopState = .stopped
    var loopSince: Timestamp?
    var loopRuns = 0
    var loopError: String?
    /// Incremented when a run of the loop starts or ends; task runs of another generation are late.
    var generation = 0
    var nextRunID = 0
    let startedAt: Int64
    /// Wall-clock nanoseconds minus monotonic nanoseconds, to print monotonic instants.
    let wallOffset: Int64
    var deadlineTimer: EventLoop.TimerID?
    var armedDeadline: Int64?
    /// `start` / `restart` requests waiting for the previous run's tasks to end.
    var startWaiters: [(Reply.Body) -> Void] = []
    /// `stop --wait` requests waiting for every task to end.
    var stopWaiters: [(Reply.Body) -> Void] = []
    var isShuttingDown = false
    /// The command hook running now, if any; task runs that end meanwhile wait in
    /// `endedDuringHook`, and further `emit`s in `pendingHooks`.
    var hookInFlight: TaskRun?
    var endedDuringHook: [TaskRun] = []
    var pendingHooks: [(name: String, hook: HookConfiguration.CommandHook, data: String?, reply: (Reply.Body) -> Void)] = []
    /// The supervisor's environment, less what belongs to the supervisor alone.
    let baseEnvironment: [String: String]
    var random = SystemRandomNumberGenerator()

    init(configuration: SupervisorConfiguration, socketPath: String, log: SupervisorLog, environment: [String: String]) throws(SupervisorError) {
        self.configuration = configuration
        self.log = log
        activatedListener = try SocketActivation.listener(environment: environment, log: log)
        if let listener = activatedListener, let path = SocketActivation.path(of: listener) {
            if path != socketPath {
                log.write(.info, "socket activation: serving on \(path), the socket systemd passed (not \(socketPath))")
            }
            self.socketPath = path
        } else {
            self.socketPath = socketPath
        }
        notifier = SystemdNotifier(environment: environment)
        persistence = configuration.stateDirectory.map { StatePersistence(store: StateStore(directory: $0)) }
        loop = try EventLoop()
        names = configuration.taskNames
        var index: [String: Int] = [:]
        for (position, name) in names.enumerated() { index[name] = position }
        indexByName = index
        tasks = names.map { TaskRuntime(name: $0, configuration: configuration.tasks[$0]!) }
        machine = SchedulerStateMachine(taskCount: names.count, maximumRunning: configuration.maximumRunning)
        startedAt = loop.now
        wallOffset = Timestamp.now().nanosecondsSinceEpoch - startedAt
        baseEnvironment = environment
            .filter { !$0.key.hasPrefix("SMARTPOLL_") }
            .filter { $0.key != "LISTEN_FDS" && $0.key != "LISTEN_PID" && $0.key != "LISTEN_FDNAMES" && $0.key != "NOTIFY_SOCKET" }
    }

    var now: Instant { Instant(nanoseconds: loop.now) }

    /// A monotonic instant as wall-clock time, saturating at the ends of the range.
    func wall(_ instant: Instant) -> Timestamp {
        let (sum, overflow) = instant.nanoseconds.addingReportingOverflow(wallOffset)
        return Timestamp(nanosecondsSinceEpoch: overflow ? (wallOffset > 0 ? .max : .min) : sum)
    }

    /// How long after `due` a run starts now, in milliseconds; nil for a due time that is not a
    /// real time (a run with no deadline).
    func lateness(_ due: Instant) -> Double? {
        guard due.nanoseconds != .min, due.nanoseconds != .max else { return nil }
        let (late, overflow) = loop.now.subtractingReportingOverflow(due.nanoseconds)
        return overflow ? nil : Double(late) / 1e6
    }

    // MARK: Events to watchers

    func publish(_ kind: Event.Kind) {
        server.broadcast(Event(time: Timestamp.now(), kind: kind))
    }

    // MARK: The loop's runs

    /// Starts a run of the loop now if no task of the previous one is in flight; otherwise
    /// enters `starting` and begins once they have ended.
    func requestStart() {
        guard loopState != .running else { return }
        if !isQuiescent {
            loopState = .starting
            return
        }
        beginRun()
    }

    private func beginRun() {
        generation += 1
        machine.runStarted()
        loopState = .running
        loopSince = Timestamp.now()
        loopRuns += 1
        loopError = nil
        log.write(.info, "loop started", [("run", "\(loopRuns)")])
        publish(.loopStarted)
        // The run hooks: every task with `start` is scheduled.
        for (index, task) in tasks.enumerated() {
            if let delay = task.configuration.start {
                scheduleTask(index, after: delay)
            }
        }
        // The first run after the supervisor starts: what the state file says is due.
        applyRestoredSchedules()
        stateChanged()
        notifyStatus()
        for waiter in startWaiters { waiter(.ok) }
        startWaiters = []
        pump()
    }

    /// Ends the loop's run: schedules cleared, running tasks terminated (TERM, grace, KILL),
    /// `run --wait` requests for runs that will now never start answered with `not_running`.
    func endRun(error: String?) {
        guard loopState == .running || loopState == .starting else { return }
        if loopState == .running {
            machine.runEnded()
            generation += 1
        }
        loopState = error == nil ? .stopped : .failed
        loopError = error
        loopSince = Timestamp.now()
        disarmDeadline()
        for index in tasks.indices {
            for waiter in tasks[index].waitingForNextRun {
                waiter(.failure(ProtocolError(.notRunning, "the loop stopped before \(tasks[index].name) ran")))
            }
            tasks[index].waitingForNextRun = []
            if let run = tasks[index].current { terminate(run) }
        }
        if let hook = hookInFlight, hook.killTimer == nil {
            hook.signalGroup(SIGTERM)
            hook.killTimer = loop.schedule(after: .seconds(5)) { [weak hook] in hook?.signalGroup(SIGKILL) }
        }
        for pending in pendingHooks {
            pending.reply(.failure(ProtocolError(.notRunning, "the loop stopped before hook \(pending.name) ran")))
        }
        pendingHooks = []
        if let error {
            log.write(.error, "loop failed: \(error)")
            publish(.loopFailed(error: error))
        } else {
            log.write(.info, "loop stopped")
            publish(.loopStopped)
        }
        stateChanged()
        if !isShuttingDown { notifyStatus() }
        for waiter in startWaiters {
            waiter(.failure(ProtocolError(.notRunning, "the loop stopped before it could start")))
        }
        startWaiters = []
        checkQuiescent()
    }

    /// TERM (or the task's `kill_signal`) to the run's group, then KILL after `kill_grace`.
    func terminate(_ run: TaskRun) {
        guard run.killTimer == nil, !run.hasEnded else { return }
        let configuration = run.taskConfiguration ?? tasks[run.taskIndex].configuration
        run.signalGroup(configuration.killSignal)
        run.killTimer = loop.schedule(after: configuration.killGrace) { [weak run] in
            run?.signalGroup(SIGKILL)
        }
    }

    /// Called whenever a task's run has ended: answers those who wait for quiet, and starts a
    /// pending run of the loop.
    func checkQuiescent() {
        guard isQuiescent else { return }
        for waiter in stopWaiters { waiter(.ok) }
        stopWaiters = []
        if loopState == .starting { beginRun() }
        if isShuttingDown { finishShutdown() }
    }

    /// No task process, command hook, or process of a task a reload removed is running.
    var isQuiescent: Bool {
        machine.runningCount == 0 && hookInFlight == nil && detachedRuns.isEmpty
    }

    // MARK: Scheduling

    func scheduleTask(_ index: Int, after delay: Duration) {
        machine.schedule(SchedulerStateMachine.TaskID(index), after: delay, now: now)
        announceSchedule(index)
    }

    func announceSchedule(_ index: Int) {
        stateChanged()
        let id = SchedulerStateMachine.TaskID(index)
        if let next = machine.next(id) {
            publish(.taskScheduled(task: names[index], next: wall(next)))
        } else {
            publish(.taskUnscheduled(task: names[index]))
            // The run a `run --wait` asked for will not happen now.
            for waiter in tasks[index].waitingForNextRun {
                waiter(.failure(ProtocolError(.notRunning, "\(names[index]) was unscheduled before the requested run started")))
            }
            tasks[index].waitingForNextRun = []
        }
    }

    /// After any change: moves due tasks to ready, starts what may start, re-arms the one timer.
    func pump() {
        guard loopState == .running else { return }
        machine.deadlinesReached(now: now)
        while let (task, due) = machine.nextStart() {
            start(Int(task.index), due: due)
        }
        armDeadline()
    }

    private func armDeadline() {
        guard let deadline = machine.nextDeadline?.nanoseconds else {
            disarmDeadline()
            return
        }
        if let armed = armedDeadline, armed <= deadline { return }
        disarmDeadline()
        armedDeadline = deadline
        deadlineTimer = loop.schedule(at: deadline) { [unowned self] in
            self.armedDeadline = nil
            self.deadlineTimer = nil
            self.pump()
        }
    }

    private func disarmDeadline() {
        if let timer = deadlineTimer { loop.cancel(timer) }
        deadlineTimer = nil
        armedDeadline = nil
    }

    // MARK: Task processes

    private func start(_ index: Int, due: Instant) {
        nextRunID += 1
        let runID = nextRunID
        let configuration = tasks[index].configuration
        let prepared: PreparedCommand
        if let cached = tasks[index].prepared {
            prepared = cached
        } else {
            var environment = childEnvironment(configuration.environment, [
                "SMARTPOLL_TASK": names[index], "SMARTPOLL_SOCKET": socketPath, "SMARTPOLL_HOOK_FD": "3",
            ])
            environment.removeAll { $0.hasPrefix("SMARTPOLL_RUN=") }
            prepared = PreparedCommand(arguments: configuration.command, environment: environment)
            tasks[index].prepared = prepared
        }
        let run: TaskRun
        do {
            run = try launch(index, runID: runID, due: due, prepared: prepared)
        } catch {
            // A command that cannot be started is a failed run, reported like any other.
            log.write(.error, error.message, [("task", names[index]), ("run", "\(runID)")])
            recordUnstartable(index, runID: runID, due: due, reason: error.message)
            return
        }
        tasks[index].current = run
        run.waiters = tasks[index].waitingForNextRun
        tasks[index].waitingForNextRun = []
        log.write(.info, "started", [("task", names[index]), ("run", "\(runID)"), ("pid", "\(run.pid)")])
        publish(.taskStarted(task: names[index], run: runID, pid: Int(run.pid), due: wall(due),
                             lateMilliseconds: lateness(due)))
        if let timeout = configuration.timeout {
            run.timeoutTimer = loop.schedule(after: timeout) { [weak self, weak run] in
                guard let self, let run else { return }
                run.timedOut = true
                self.log.write(.warning, "timed out after \(DurationFormat.format(timeout))",
                               [("task", run.task), ("run", "\(run.runID)"), ("pid", "\(run.pid)")])
                self.terminate(run)
            }
        }
    }

    /// The supervisor's environment, then the task's (or hook's) `env`, then the SMARTPOLL_*
    /// variables, each later one replacing an earlier one of the same name.
    func childEnvironment(_ variables: [EnvironmentVariable], _ smartpoll: [String: String]) -> [String] {
        var environment = baseEnvironment
        for variable in variables { environment[variable.name] = variable.value }
        for (name, value) in smartpoll { environment[name] = value }
        return environment.map { "\($0.key)=\($0.value)" }.sorted()
    }

    private func launch(_ index: Int, runID: Int, due: Instant, prepared: PreparedCommand) throws(SupervisorError) -> TaskRun {
        let configuration = tasks[index].configuration
        let stdout = try Pipe(nonblockingReadEnd: true)
        let stderr = try Pipe(nonblockingReadEnd: true)
        let directives = try Pipe(nonblockingReadEnd: true)
        var request = SpawnRequest(
            arguments: configuration.command, workingDirectory: configuration.workingDirectory, standardInput: .nullDevice,
            standardOutput: .fileDescriptor(stdout.writeEnd!), standardError: .fileDescriptor(stderr.writeEnd!),
            directives: directives.writeEnd!)
        request.prepared = prepared
        request.preparedExtras = ["SMARTPOLL_RUN=\(runID)"]
        request.credentials = configuration.credentials
        let process = try ProcessSpawner.spawn(request)
        stdout.closeWriteEnd()
        stderr.closeWriteEnd()
        directives.closeWriteEnd()
        let run = TaskRun(
            task: names[index], taskIndex: index, runID: runID, generation: generation, due: due.nanoseconds,
            started: loop.now, capture: configuration.capture, maximumDirectives: self.configuration.maximumDirectives,
            process: process, stdout: stdout.takeReadEnd()!, stderr: stderr.takeReadEnd()!,
            directives: directives.takeReadEnd()!, loop: loop, log: log)
        // The run keeps the definition it started with, whatever a reload does meanwhile.
        run.taskConfiguration = configuration
        run.isKnownTask = { [unowned self] name in self.indexByName[name] != nil }
        run.onEnd = { [unowned self] run in
            if self.hookInFlight != nil { self.endedDuringHook.append(run) } else { self.runEnded(run) }
        }
        try run.watch()
        return run
    }
}
