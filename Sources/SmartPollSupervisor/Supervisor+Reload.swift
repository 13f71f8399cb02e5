import SmartPollProtocol

/// `reload` and SIGHUP (SPEC section 5): the configuration file read again and applied without
/// disturbing what did not change.
///
/// - A file that cannot be read or is invalid changes nothing; the reason (file, key path) goes
///   to the log and to the requester.
/// - A task whose definition is unchanged keeps its schedule, its running process, its result,
///   its counters and its backoff.
/// - A changed task keeps the same, and takes its new definition from its next run: a run in
///   flight ends under the definition it started with (timeout, kill signal, and what its
///   task hook does after it).
/// - A removed task's run is ended (its kill signal, then KILL after its grace) and the task
///   forgotten: its result too.
/// - An added task gets its `start`, when the loop is running.
/// - Nothing else is scheduled: a reload never fires a timer by itself.
/// - `socket`, `socket_mode`, `socket_group`, `state_dir`, `containment`, `cgroup_root` and
///   `metrics_listen` take effect at the next start;
///   the reply lists them under `restart_needed`. Limits and hooks apply at once (a hook
///   already running, or waiting its turn, runs as it was).
extension Supervisor {
    /// Reads and applies the configuration file. systemd hears `RELOADING=1` then `READY=1`.
    @discardableResult
    func reload() -> Result<ReloadReply, ProtocolError> {
        notifySystemd([
            "RELOADING=1", "MONOTONIC_USEC=\(SystemdNotifier.monotonicMicroseconds)",
            "STATUS=reloading the configuration",
        ])
        defer { notifySystemd(["READY=1", "STATUS=" + statusSummary]) }
        let file = configuration.file
        let new: SupervisorConfiguration
        do {
            new = try ConfigurationFile.load(file)
        } catch {
            let problems = error.message.split(separator: "\n").joined(separator: "; ")
            log.write(.error, "reload failed; the running configuration stays: \(problems)", [("file", file)])
            return .failure(ProtocolError(.invalidArgument, "the configuration was not reloaded: \(problems)"))
        }
        return .success(apply(new))
    }

    private func apply(_ new: SupervisorConfiguration) -> ReloadReply {
        let old = configuration
        var restartNeeded: [String] = []
        if old.socket != new.socket { restartNeeded.append("socket") }
        if old.socketMode != new.socketMode { restartNeeded.append("socket_mode") }
        if old.socketGroup != new.socketGroup { restartNeeded.append("socket_group") }
        if old.stateDirectory != new.stateDirectory { restartNeeded.append("state_dir") }
        if old.cluster != new.cluster { restartNeeded.append("cluster") }
        if old.containment != new.containment { restartNeeded.append("containment") }
        if old.cgroupRoot != new.cgroupRoot { restartNeeded.append("cgroup_root") }
        if old.metricsListen != new.metricsListen { restartNeeded.append("metrics_listen") }

        let plan = policy.reload(new, now: now)
        var newTasks = policy.names.map { name in
            defer { nextIncarnation += 1 }
            return TaskRuntime(name: name, incarnation: nextIncarnation)
        }
        for (oldIndex, task) in tasks.enumerated() {
            guard let position = plan.newIndex[oldIndex] else {
                detach(task)
                continue
            }
            newTasks[position] = task
        }
        for name in plan.changed {
            // The command and environment are prepared again at its next run.
            if let task = task(named: name) { newTasks[Int(task.index)].prepared = nil }
            // A lowered `history` frees its oldest entries now (the state file's go with the
            // task's next run, or at the next start).
            if let taskConfiguration = new.tasks[name], let task = task(named: name) {
                newTasks[Int(task.index)].history.trim(to: taskConfiguration.history)
            }
        }
        tasks = newTasks

        var effective = new
        effective.socket = old.socket
        effective.socketMode = old.socketMode
        effective.socketGroup = old.socketGroup
        effective.stateDirectory = old.stateDirectory
        effective.containment = old.containment
        effective.cgroupRoot = old.cgroupRoot
        effective.metricsListen = old.metricsListen
        configuration = effective
        server.maximumConnections = new.maximumConnections
        server.maximumLineLength = new.maximumLineBytes
        server.sendTimeout = new.sendTimeout
        loopRestart.reconfigure(new.restart)
        if new.restart == nil { cancelLoopRestart() }
        // A policy added while the loop is failed applies to that failure too.
        if new.restart != nil, loopStatus.state == .failed, loopStatus.restartAt == nil { armLoopRestart() }

        let list = { (names: [String]) in names.isEmpty ? "-" : names.joined(separator: ",") }
        log.write(
            .info, "configuration reloaded",
            [
                ("file", new.file), ("added", list(plan.added)), ("changed", list(plan.changed)),
                ("removed", list(plan.removed)),
            ])
        if !restartNeeded.isEmpty {
            log.write(
                .warning,
                "\(restartNeeded.joined(separator: ", ")) changed in \(new.file); that takes effect when the supervisor restarts"
            )
        }
        publish(.configReloaded(added: plan.added, changed: plan.changed, removed: plan.removed))
        // The task set changed: the endpoint must not keep serving removed tasks' series (nor
        // miss added ones) until some run starts or a control client connects.
        metricsChanged()
        carryOut(plan.actions)
        stateChanged()
        pump()
        return ReloadReply(
            file: new.file, added: plan.added, changed: plan.changed, removed: plan.removed,
            restartNeeded: restartNeeded)
    }

    /// A task the configuration no longer has: `run --wait` requests answered, its run ended
    /// (its teardown) and tracked until reaped.
    private func detach(_ task: TaskRuntime) {
        var waiters = task.waitingForNextRun
        answerNotRunning(
            &waiters, "task \(task.name) was removed from the configuration before the requested run started")
        guard let run = task.current else { return }
        detachedRuns.append(run)
        log.write(
            .info, "ending the run of a task the configuration no longer has",
            [("task", task.name), ("run", "\(run.runID)"), ("pid", "\(run.pid)")])
        run.terminate(.removed)
    }
}
