import Glibc
import SmartPoll
import SmartPollProtocol

/// The daemon: a driver of ``SchedulerStateMachine`` whose tasks are child processes, served
/// over the control socket, all on one ``EventLoop`` thread (SPEC sections 3 to 8).
///
/// Every request is handled inside the loop, between runs of task hooks, so every reply sees a
/// consistent state; nothing here is shared with another thread.
final class Supervisor {
    typealias TaskID = SchedulerStateMachine.TaskID

    /// The configuration in effect; `reload` replaces it (all but the keys that need a restart).
    var configuration: SupervisorConfiguration
    let socketPath: String
    /// The path the socket is bound, checked and removed with: ``socketPath``, or the relative
    /// path it came from when the absolute one is too long for a socket address (108 bytes).
    let bindPath: String
    let loop: EventLoop
    var log: SupervisorLog
    var server: ControlServer!
    /// Every scheduling decision (the scheduler and the built-in task hook); this class carries
    /// its actions out.
    var policy: SupervisorPolicy
    /// What the supervisor remembers of each task, by the policy's task index.
    var tasks: [TaskRuntime]
    /// The rows of the last `status` reply whose rows all had text, joined (when at most
    /// ``statusEncodingBudget`` bytes): the next `status` whose rows are the same records, each
    /// still valid by its key, copies that text in one piece (``status(of:)``).
    var statusRowsCache: TaskStatusRecordList?
    /// Runs of tasks a reload removed: ending (their teardown), tracked until reaped.
    var detachedRuns: [TaskRun] = []
    /// The `state_dir` machinery, or a cluster member's state in etcd; nil without either.
    var persistence: StatePersistence?
    /// This supervisor's part in a cluster (top-level `cluster`); nil without one.
    var member: ClusterMember?
    /// Grows at each election and stand-down: etcd completions of an earlier term are ignored.
    var clusterTerm = 0
    /// Elected, and loading the state from etcd: the loop starts once it is in place.
    var clusterLoading = false
    /// Loads from etcd that failed since the election.
    var clusterLoadFailures = 0
    /// A standby's reads waiting for the state it is loading from etcd.
    var standbyReads: [(ProtocolError?) -> Void]?
    /// systemd's notify socket (`NOTIFY_SOCKET`), if any.
    let notifier: SystemdNotifier
    var lastStatusNotification: Int64 = .min
    var statusNotificationTimer: EventLoop.TimerID?
    /// Descriptor 3 when systemd passed the listening socket (`LISTEN_FDS`, `LISTEN_PID`).
    let activatedListener: Int32?
    /// The loop's state, since when, how many runs it has had, and why the last one failed.
    var loopStatus = LoopStatus(state: .stopped, since: nil, runs: 0, error: nil) {
        didSet { metricsChanged() }
    }
    /// How a failed loop starts again (the configuration's `restart`), and its timer.
    var loopRestart: LoopRestartPolicy
    var loopRestartTimer: EventLoop.TimerID?
    /// Incremented when a run of the loop starts or ends; task runs of another generation are late.
    var generation = 0
    var nextRunID = 0
    /// The next ``TaskRuntime/incarnation``.
    var nextIncarnation = 0
    let startedAt: Int64
    /// Wall-clock nanoseconds minus monotonic nanoseconds, to print monotonic instants.
    let wallOffset: Int64
    /// The one timer armed for the policy's earliest deadline.
    var deadlineTimer: DeadlineTimer?
    /// Whether ``pump()`` has carried the rest of what is due over to the loop's next turn.
    private var pumpCarriedOver = false
    /// Runs started in the loop's turn `startsTurn` (``startsPerTurn``).
    private var startsThisTurn = 0
    private var startsTurn: UInt64 = 0

    struct DeadlineTimer {
        var id: EventLoop.TimerID
        var deadline: Int64
    }
    /// `start` / `restart` requests waiting for the previous run's tasks to end.
    var startWaiters: [(Reply.Body) -> Void] = []
    /// `stop --wait` requests waiting for every task to end.
    var stopWaiters: [(Reply.Body) -> Void] = []
    var isShuttingDown = false
    /// The final write is done and the loop told to stop.
    var hasShutDown = false
    /// Command hooks: the one running, task runs that ended meanwhile, `emit`s waiting their turn.
    var hooks = CommandHookQueue()
    /// The supervisor's environment, less what belongs to the supervisor alone.
    let baseEnvironment: [String: String]
    var random = SystemRandomNumberGenerator()
    /// The cgroup subtree every run is contained in; nil in subreaper mode.
    let cgroups: CgroupTree?
    /// Why runs are not in cgroups although `containment` is `auto`; nil otherwise.
    let cgroupUnavailable: String?
    /// The child subreaper that ends orphans of runs, when runs are not in cgroups.
    let subreaper: Subreaper?
    /// The HTTP endpoint of `metrics_listen`, on a thread of its own; nil without one.
    var metricsEndpoint: MetricsEndpoint?
    /// The timer that publishes the metrics to the endpoint, at most once a second.
    var metricsPublishTimer: EventLoop.TimerID?
    var lastMetricsPublish: Int64 = .min

    init(
        configuration: SupervisorConfiguration, socketPath: String, bindPath: String? = nil, log: SupervisorLog,
        environment: [String: String]
    ) throws(SupervisorError) {
        self.configuration = configuration
        self.log = log
        activatedListener = try SocketActivation.listener(environment: environment, log: log)
        if let listener = activatedListener, let path = SocketActivation.path(of: listener) {
            if path != socketPath {
                log.write(.info, "socket activation: serving on \(path), the socket systemd passed (not \(socketPath))")
            }
            self.socketPath = path
            self.bindPath = path
        } else {
            self.socketPath = socketPath
            self.bindPath = bindPath ?? socketPath
        }
        notifier = SystemdNotifier(environment: environment)
        persistence = configuration.stateDirectory.map { StatePersistence(store: StateStore(directory: $0)) }
        loop = try EventLoop()
        (cgroups, cgroupUnavailable) = try Supervisor.containment(
            configuration, identity: configuration.stateDirectory ?? self.socketPath, loop: loop)
        subreaper = cgroups == nil ? try Subreaper(socketPath: self.socketPath, loop: loop) : nil
        policy = SupervisorPolicy(configuration: configuration)
        loopRestart = LoopRestartPolicy(configuration.restart)
        tasks = policy.names.enumerated().map { TaskRuntime(name: $1, incarnation: $0) }
        nextIncarnation = tasks.count
        startedAt = loop.now
        wallOffset = Timestamp.now().nanosecondsSinceEpoch - startedAt
        baseEnvironment =
            environment
            .filter { !$0.key.hasPrefix("SMARTPOLL_") }
            .filter {
                $0.key != "LISTEN_FDS" && $0.key != "LISTEN_PID" && $0.key != "LISTEN_FDNAMES"
                    && $0.key != "NOTIFY_SOCKET"
            }
    }

    var now: Instant { Instant(nanoseconds: loop.now) }

    /// The cgroup subtree the configuration asks for, or nil and why there is none (`auto`).
    /// - Throws: in `cgroup` mode, when no cgroup can be made.
    private static func containment(
        _ configuration: SupervisorConfiguration, identity: String, loop: EventLoop
    ) throws(SupervisorError) -> (CgroupTree?, String?) {
        guard configuration.containment != .subreaper else { return (nil, nil) }
        let absolute = identity.hasPrefix("/") ? identity : (currentDirectory() ?? "") + "/" + identity
        do throws(SupervisorError) {
            return (try CgroupTree(root: configuration.cgroupRoot, identity: absolute, loop: loop), nil)
        } catch {
            if configuration.containment == .cgroup {
                throw SupervisorError(
                    code: .systemCallFailed, message: "containment is \"cgroup\", but there is \(error.message)")
            }
            return (nil, error.message)
        }
    }

    private static func currentDirectory() -> String? {
        guard let pointer = getcwd(nil, 0) else { return nil }
        defer { free(pointer) }
        return String(cString: pointer)
    }

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

    /// A wall-clock time as a monotonic instant.
    func instant(_ time: Timestamp) -> Instant {
        let (difference, overflow) = time.nanosecondsSinceEpoch.subtractingReportingOverflow(wallOffset)
        if !overflow { return Instant(nanoseconds: difference) }
        // Out of range: far in the past is ready now, far in the future is as late as can be.
        return time < Timestamp.now() ? Instant(nanoseconds: .min) : Instant(nanoseconds: .max)
    }

    /// Task names in status order (sorted), as the policy numbers them.
    var names: [String] { policy.names }

    /// A task by name. The policy's dictionary is read in place: calling a method of `policy`
    /// would copy the whole value first (callgrind: 3.6k instructions a call).
    func task(named name: String) -> TaskID? {
        policy.indexByName[name].map(TaskID.init)
    }

    // MARK: The loop's runs

    /// Starts a run of the loop now if no task of the previous one is in flight; otherwise
    /// enters `starting` and begins once they have ended.
    func requestStart() {
        guard loopStatus.state != .running, !isShuttingDown else { return }
        if !isQuiescent {
            loopStatus.state = .starting
            return
        }
        beginRun()
    }

    private func beginRun() {
        generation += 1
        cancelLoopRestart()
        loopRestart.loopStarted(now: now)
        loopStatus = LoopStatus(state: .running, since: Timestamp.now(), runs: loopStatus.runs + 1, error: nil)
        log.write(.info, "loop started", [("run", "\(loopStatus.runs)")])
        publish(.loopStarted)
        carryOut(policy.loopStarted(now: now))
        // The first run after the supervisor starts: what the state file says is due.
        applyRestoredSchedules()
        stateChanged()
        notifyStatus()
        for waiter in startWaiters { waiter(.ok) }
        startWaiters = []
        pump()
    }

    /// Ends the loop's run: schedules cleared, running tasks and the command hook ended (their
    /// teardown), `run --wait` requests for runs that will now never start answered with
    /// `not_running`.
    func endRun(error: String?) {
        if loopStatus.state == .failed, loopStatus.restartAt != nil, error == nil {
            // `stop` (or a shutdown) while a failed loop waits for its restart: it stays down.
            cancelLoopRestart()
            loopRestart.loopStopped()
            loopStatus.state = .stopped
            loopStatus.since = Timestamp.now()
            log.write(.info, "loop stopped; its restart is cancelled")
            publish(.loopStopped)
            if !isShuttingDown { notifyStatus() }
            return
        }
        guard loopStatus.state == .running || loopStatus.state == .starting else { return }
        if loopStatus.state == .running {
            policy.loopEnded()
            generation += 1
        }
        loopStatus.state = error == nil ? .stopped : .failed
        loopStatus.error = error
        loopStatus.since = Timestamp.now()
        disarmDeadline()
        for index in tasks.indices {
            // The name is read outside the inout access to the element (an exclusivity violation
            // otherwise, which the live fuzz hit: a stop while a run --wait waited).
            let name = tasks[index].name
            answerNotRunning(&tasks[index].waitingForNextRun, "the loop stopped before \(name) ran")
            tasks[index].current?.terminate(.stopped)
        }
        hooks.inFlight?.run.terminate(.stopped)
        for pending in hooks.pending { refuseStopped(pending) }
        hooks.pending = []
        if let error {
            log.write(.error, "loop failed: \(error)")
            publish(.loopFailed(error: error))
            if !isShuttingDown { armLoopRestart() }
        } else {
            cancelLoopRestart()
            loopRestart.loopStopped()
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

    /// Called whenever a run has ended: answers those who wait for quiet, and starts a pending
    /// run of the loop.
    func checkQuiescent() {
        guard isQuiescent else { return }
        for waiter in stopWaiters { waiter(.ok) }
        stopWaiters = []
        if loopStatus.state == .starting && !clusterLoading && !isShuttingDown { beginRun() }
        if isShuttingDown { finishShutdown() }
    }

    /// No task process, command hook, or process of a task a reload removed is running.
    var isQuiescent: Bool {
        policy.machine.runningCount == 0 && hooks.inFlight == nil && detachedRuns.isEmpty
    }

    // MARK: The loop's restart policy

    /// The loop failed: with a `restart` policy, it starts again after the policy's delay.
    func armLoopRestart() {
        cancelLoopRestart()
        guard let at = loopRestart.loopFailed(now: now) else { return }
        loopStatus.restartAt = wall(at)
        let delay = DurationFormat.format(.nanoseconds(max(0, at.nanoseconds - now.nanoseconds)))
        log.write(.info, "restarting the loop in \(delay) (restart policy)")
        loopRestartTimer = loop.schedule(at: at.nanoseconds) { [unowned self] in
            self.loopRestartTimer = nil
            guard self.loopStatus.state == .failed, !self.isShuttingDown, self.loopRestart.restartDue(now: self.now)
            else { return }
            self.log.write(.info, "restarting the loop after its failure (restart policy)")
            self.requestStart()
        }
    }

    func cancelLoopRestart() {
        if let timer = loopRestartTimer { loop.cancel(timer) }
        loopRestartTimer = nil
        loopStatus.restartAt = nil
    }

    // MARK: Carrying out the policy's decisions

    func carryOut(_ actions: [SupervisorPolicy.Action]) {
        for action in actions {
            switch action {
            case .scheduleChanged(let task, let next): announceSchedule(task, next: next)
            case .endLoop(let error): endRun(error: error)
            }
        }
    }

    /// A task's schedule changed to `next`: watchers hear it and the state file will have it;
    /// a `run --wait` for a run that will now not happen is answered.
    func announceSchedule(_ task: TaskID, next: Instant?) {
        stateChanged(task: task)
        let index = Int(task.index)
        if let next {
            publish(.taskScheduled(task: names[index], next: wall(next)))
        } else {
            publish(.taskUnscheduled(task: names[index]))
            answerNotRunning(
                &tasks[index].waitingForNextRun, "\(names[index]) was unscheduled before the requested run started")
        }
    }

    /// Answers each `run --wait` in `waiters` with `not_running` and `message`, and forgets them.
    func answerNotRunning(_ waiters: inout [(Reply.Body) -> Void], _ message: @autoclosure () -> String) {
        guard !waiters.isEmpty else { return }
        let error = ProtocolError(.notRunning, message())
        for waiter in waiters { waiter(.failure(error)) }
        waiters = []
    }

    /// How many runs the loop starts in one turn at most; more that are due wait for its next
    /// turn (see ``pump()``).
    static let startsPerTurn = 4

    /// After any change: starts what is due and ready, and re-arms the one timer.
    ///
    /// At most ``startsPerTurn`` runs a turn of the loop, whoever calls: the rest of a crowd
    /// due at once (a hook that schedules many tasks, runs that ended together and reschedule
    /// themselves) starts in the next turns, each after the events that came in meanwhile,
    /// since the loop waits for each child's `exec`: ten tasks due together held a `ping` for
    /// the time of ten spawns (state5000: `ping` p99 9.6 ms, 4.5 ms with the bound).
    func pump() {
        guard loopStatus.state == .running, holdsClusterLeadership() else { return }
        let now = self.now
        if startsTurn != loop.turn {
            startsTurn = loop.turn
            startsThisTurn = 0
        }
        while startsThisTurn < Self.startsPerTurn {
            switch policy.advance(now: now) {
            case .start(let task, let due):
                startsThisTurn += 1
                start(task, due: due)
            case .wait(let deadline): return arm(deadline)
            }
        }
        guard !pumpCarriedOver else { return }
        pumpCarriedOver = true
        loop.callNextTurn { [weak self] in
            guard let self else { return }
            self.pumpCarriedOver = false
            self.pump()
        }
    }

    private func arm(_ deadline: Instant?) {
        guard let deadline = deadline?.nanoseconds else { return disarmDeadline() }
        if let armed = deadlineTimer, armed.deadline <= deadline { return }
        disarmDeadline()
        let id = loop.schedule(at: deadline) { [unowned self] in
            self.deadlineTimer = nil
            self.pump()
        }
        deadlineTimer = DeadlineTimer(id: id, deadline: deadline)
    }

    private func disarmDeadline() {
        if let timer = deadlineTimer { loop.cancel(timer.id) }
        deadlineTimer = nil
    }
}
