import SmartPoll
import SmartPollProtocol

/// Task runs (SPEC section 3): starting one, and the one place where the end of a run is
/// accounted for, whether its process exited, its task was removed meanwhile, or its command
/// could not even start.
extension Supervisor {
    /// Starts a run of a task the policy says is due.
    func start(_ task: TaskID, due: Instant) {
        let index = Int(task.index)
        let runID = takeRunID()
        let name = names[index]
        let configuration = policy.configurations[index]
        var command = SpawnRequest(arguments: configuration.command, workingDirectory: configuration.workingDirectory)
        command.prepared = preparedCommand(index, configuration)
        command.preparedExtras = ["SMARTPOLL_RUN=\(runID)"]
        if let fence = member?.fence { command.preparedExtras.append("SMARTPOLL_FENCE=\(fence)") }
        command.credentials = configuration.credentials
        command.nice = configuration.nice
        command.resourceLimits = configuration.resourceLimits
        let waiters = tasks[index].waitingForNextRun
        tasks[index].waitingForNextRun = []
        let limiter: StderrRateLimiter
        if let existing = tasks[index].stderrLimiter, existing.rate == configuration.logRate,
            existing.burst == configuration.logBurst
        {
            limiter = existing
        } else {
            limiter = StderrRateLimiter(rate: configuration.logRate, burst: configuration.logBurst, now: loop.now)
            tasks[index].stderrLimiter = limiter
        }
        let specification = TaskRun.Specification(
            owner: .task(name: name, configuration: configuration), runID: runID, generation: generation,
            due: due.nanoseconds, command: command, input: nil, capture: configuration.capture,
            maximumDirectives: self.configuration.maximumDirectives, timeout: configuration.timeout,
            teardown: Teardown(signal: configuration.killSignal, grace: configuration.killGrace),
            stderrLimiter: limiter, waiters: waiters, logBuffer: logBuffer(of: task))
        let run: TaskRun
        do {
            run = try launch(specification)
        } catch {
            // A command that cannot be started is a failed run, reported like any other.
            log.write(.error, error.message, [("task", name), ("run", "\(runID)")])
            return unstartable(task, runID: runID, due: due, reason: error.message, configuration, waiters)
        }
        tasks[index].current = run
        log.write(.info, "started", [("task", name), ("run", "\(runID)"), ("pid", "\(run.pid)")])
        let late = lateness(due)
        tasks[index].metrics.runStarted(lateBy: late.map { $0 / 1_000 })
        metricsChanged()
        publish(.taskStarted(task: name, run: runID, pid: Int(run.pid), due: wall(due), lateMilliseconds: late))
    }

    /// Launches a task's or a hook's run; its end comes back to ``runEnded(_:)``.
    func launch(_ specification: TaskRun.Specification) throws(SupervisorError) -> TaskRun {
        try TaskRun.launch(
            specification, loop: loop, log: log, cgroups: cgroups, subreaper: subreaper,
            isKnownTask: { [unowned self] name in self.task(named: name) != nil },
            onEnd: { [unowned self] run in self.runEnded(run) })
    }

    /// The command and environment of a task as C strings, built once per definition.
    private func preparedCommand(_ index: Int, _ configuration: TaskConfiguration) -> PreparedCommand {
        if let prepared = tasks[index].prepared { return prepared }
        var environment = childEnvironment(
            configuration.environment,
            [
                "SMARTPOLL_TASK": names[index], "SMARTPOLL_SOCKET": socketPath, "SMARTPOLL_HOOK_FD": "3",
            ])
        // Per run (preparedExtras); a task's `env` cannot forge them.
        environment.removeAll { $0.hasPrefix("SMARTPOLL_RUN=") || $0.hasPrefix("SMARTPOLL_FENCE=") }
        let prepared = PreparedCommand(arguments: configuration.command, environment: environment)
        tasks[index].prepared = prepared
        return prepared
    }

    /// The supervisor's environment, then the task's (or hook's) `env`, then the SMARTPOLL_*
    /// variables, each later one replacing an earlier one of the same name.
    func childEnvironment(_ variables: [EnvironmentVariable], _ smartpoll: [String: String]) -> [String] {
        var environment = baseEnvironment
        for variable in variables { environment[variable.name] = variable.value }
        for (name, value) in smartpoll { environment[name] = value }
        return environment.map { "\($0.key)=\($0.value)" }.sorted()
    }

    // MARK: The end of a run

    /// A run's process has ended (and its pipes are drained).
    func runEnded(_ run: TaskRun) {
        switch run.owner {
        case .hook:
            commandHookEnded(run)
        case .task(let name, let configuration):
            let status = run.status
            let last = LastRun(
                run: run.runID, started: run.startedWall, ended: Timestamp.now(),
                durationMilliseconds: Double(loop.now - run.started) / 1e6,
                exitCode: status?.exitCode, signal: status?.signal, timedOut: run.timedOut,
                succeeded: run.succeeded, error: run.failureReason, stderrTail: run.stderrTailText,
                cpuMilliseconds: run.cpuMilliseconds)
            let outcome: SupervisorPolicy.Report.Outcome
            if run.succeeded {
                outcome = .succeeded(changed: false, directives: run.directives)
            } else if run.cancelled {
                outcome = .cancelled
            } else {
                outcome = .failed(reason: "task \(name) run \(run.runID) \(run.failureReason ?? "failed")")
            }
            // Which task's run it is: the task of that name whose current run it is (a reload
            // may have removed the task, and another may have come under its name).
            // Its incarnation alone: a copy of the whole runtime (its metrics too) would be read
            // for one integer.
            let incarnation = task(named: name).flatMap {
                tasks[Int($0.index)].current === run ? tasks[Int($0.index)].incarnation : nil
            }
            taskRunEnded(
                RunEnd(
                    name: name, incarnation: incarnation, configuration: configuration,
                    due: Instant(nanoseconds: run.due), generation: run.generation, pid: run.pid, last: last,
                    outcome: outcome, output: run.output,
                    truncated: run.truncated, waiters: run.waiters, interrupted: run.cancelled || run.stopped))
        }
    }

    /// A command that could not be started: a failed run with exit status 127, as a shell
    /// reports it. Its end comes on the loop's next turn, as a process that exits at once
    /// would (so that the start loop of ``pump()`` is not re-entered).
    private func unstartable(
        _ task: TaskID, runID: Int, due: Instant, reason: String, _ configuration: TaskConfiguration,
        _ waiters: [(Reply.Body) -> Void]
    ) {
        let index = Int(task.index)
        let name = names[index]
        let now = Timestamp.now()
        let last = LastRun(
            run: runID, started: now, ended: now, durationMilliseconds: 0, exitCode: 127, signal: nil,
            timedOut: false, succeeded: false, error: reason, stderrTail: "")
        let late = lateness(due)
        tasks[index].metrics.runStarted(lateBy: late.map { $0 / 1_000 })
        publish(.taskStarted(task: name, run: runID, pid: 0, due: wall(due), lateMilliseconds: late))
        let end = RunEnd(
            name: name, incarnation: tasks[index].incarnation, configuration: configuration,
            due: due, generation: generation, pid: 0, last: last,
            outcome: .failed(reason: "task \(name) run \(runID): \(reason)"), output: nil, waiters: waiters)
        loop.schedule(after: .zero) { [unowned self] in self.taskRunEnded(end) }
    }

    /// The end of a task's run, as it is accounted for.
    struct RunEnd {
        var name: String
        /// The ``TaskRuntime/incarnation`` of the task it belongs to; nil when a reload removed
        /// the task while it ran (it is reported, then forgotten).
        var incarnation: Int?
        /// The definition the run started with.
        var configuration: TaskConfiguration
        /// The time it fell due (the scheduler's due time it started for).
        var due: Instant
        var generation: Int
        /// 0 for a command that never started.
        var pid: Int32
        var last: LastRun
        var outcome: SupervisorPolicy.Report.Outcome
        /// Its stdout and whether it was cut at `capture`; nil for a command that never started.
        var output: [UInt8]?
        var truncated = false
        /// `run --wait` requests for this run.
        var waiters: [(Reply.Body) -> Void]
        /// Whether `cancel`, the loop's end or a reload ended the run: a failure it then shows
        /// counts as cancelled, not failed.
        var interrupted = false
    }

    /// A task's run ended. While a command hook runs, its end waits for the hook's: no task
    /// hook runs at the same time as an event hook.
    func taskRunEnded(_ end: RunEnd) {
        if hooks.inFlight != nil { return hooks.endedDuringHook.append(end) }
        accountEnd(end)
    }

    /// The one place a task's run ends: counters and last run, the result and the built-in task
    /// hook (when the run belongs to the loop's current run: a late result is dropped), the
    /// log, watchers, the state file, `run --wait` requests; then the task may run again.
    private func accountEnd(_ end: consuming RunEnd) {
        let last = end.last
        guard let task = task(named: end.name), tasks[Int(task.index)].incarnation == end.incarnation else {
            detachedRuns.removeAll { $0.runID == last.run }
            log.write(
                .info, "ended: the task was removed from the configuration",
                [
                    ("task", end.name), ("run", "\(last.run)"), ("pid", "\(end.pid)"),
                    ("duration_ms", "\(Int(last.durationMilliseconds.rounded()))"),
                ])
            publishFinished(end, changed: false)
            answer(end, durable: false)
            metricsChanged()
            checkQuiescent()
            return pump()
        }
        let index = Int(task.index)
        if tasks[index].current?.runID == last.run { tasks[index].current = nil }
        tasks[index].runs += 1
        if !last.succeeded {
            if end.interrupted { tasks[index].cancelled += 1 } else { tasks[index].failures += 1 }
        }
        tasks[index].metrics.runEnded(
            TaskMetrics.Outcome(succeeded: last.succeeded, timedOut: last.timedOut, interrupted: end.interrupted),
            seconds: last.durationMilliseconds / 1_000)
        metricsChanged()
        tasks[index].last = last
        var changed = false
        if end.generation == generation && loopStatus.state == .running {
            if case .succeeded(_, let directives) = end.outcome, let output = end.output {
                let truncated = end.truncated
                changed = tasks[index].result.map { $0.output != output || $0.truncated != truncated } ?? true
                tasks[index].result = TaskResult(
                    task: end.name, run: last.run, time: Timestamp.now(), output: output, truncated: truncated)
                end.outcome = .succeeded(changed: changed, directives: directives)
            }
            let report = SupervisorPolicy.Report(
                task: task, outcome: end.outcome, configuration: end.configuration, due: end.due)
            carryOut(policy.runEnded(report, now: now, instant: instant, random: &random))
        } else {
            policy.lateRunEnded(task)
        }
        if end.pid != 0 {
            log.write(
                last.succeeded ? .info : .warning, last.succeeded ? "finished" : "failed: \(last.error ?? "")",
                [
                    ("task", end.name), ("run", "\(last.run)"), ("pid", "\(end.pid)"),
                    ("duration_ms", "\(Int(last.durationMilliseconds.rounded()))"), ("changed", "\(changed)"),
                ])
        }
        publishFinished(end, changed: changed)
        recordHistory(index, end, changed: changed)
        stateChanged(task: task)
        // `run --wait` acknowledges the result: the reply waits until the state file has it.
        answer(end, durable: true)
        notifyStatus(throttled: true)
        checkQuiescent()
        pump()
    }

    /// Appends the run to the task's `history` and hands the entry to the state writer (a
    /// record of its own, so that a run's end costs the state file one entry, not the ring).
    ///
    /// - Complexity: O(1) amortised, but for the last line of a stderr tail (at most 4 KiB).
    private func recordHistory(_ index: Int, _ end: borrowing RunEnd, changed: Bool) {
        let keeping = policy.configurations[index].history
        guard keeping > 0 || !tasks[index].history.isEmpty else { return }
        var run = end.last
        let stderrLast = HistoryReply.Entry.lastLine(of: run.stderrTail)
        run.stderrTail = ""
        let entry = HistoryReply.Entry(
            run: run, changed: changed, outputBytes: end.output?.count ?? 0, stderrLast: stderrLast)
        tasks[index].history.append(entry, keeping: keeping)
        persistence?.historyAppends.append((names[index], keeping, entry))
    }

    private func publishFinished(_ end: RunEnd, changed: Bool) {
        let last = end.last
        publish(
            .taskFinished(
                task: end.name, run: last.run, exitCode: last.exitCode, signal: last.signal, timedOut: last.timedOut,
                succeeded: last.succeeded, durationMilliseconds: last.durationMilliseconds,
                cpuMilliseconds: last.cpuMilliseconds, changed: changed))
    }

    private func answer(_ end: RunEnd, durable: Bool) {
        guard !end.waiters.isEmpty else { return }
        let last = end.last
        // As `status` counts it: `cancel`, the loop's end or a reload interrupted the run.
        let cancelled = end.interrupted && !last.succeeded
        let outcome = RunOutcome(
            task: end.name, run: last.run, exitCode: last.exitCode, signal: last.signal,
            timedOut: last.timedOut, succeeded: last.succeeded, cancelled: cancelled, error: last.error,
            stderrTail: last.stderrTail, output: end.output ?? [], truncated: end.truncated)
        let waiters = end.waiters
        if durable, isClusterStandby {
            // The run ended after this member lost its leadership: its result is not kept.
            let refusal = ProtocolError.notLeader(
                "\(end.name) run \(last.run) ended after this member lost its cluster's leadership; "
                    + "its result was not kept", leader: member?.leader)
            for waiter in waiters { waiter(.failure(refusal)) }
            return
        }
        let reply = { (error: ProtocolError?) in
            for waiter in waiters { waiter(error.map { .failure($0) } ?? .runFinished(outcome)) }
        }
        if durable { whenDurable(urgent: false, reply) } else { reply(nil) }
    }
}
