import SmartPoll
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
/// - `socket`, `socket_mode`, `socket_group` and `state_dir` take effect at the next start;
///   the reply lists them under `restart_needed`. Limits and hooks apply at once (a hook
///   already running, or waiting its turn, runs as it was).
extension Supervisor {
    /// Reads and applies the configuration file. systemd hears `RELOADING=1` then `READY=1`.
    @discardableResult
    func reload() -> Result<ReloadReply, ProtocolError> {
        notifySystemd(["RELOADING=1", "MONOTONIC_USEC=\(SystemdNotifier.monotonicMicroseconds)", "STATUS=reloading the configuration"])
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
        let newNames = new.taskNames
        let oldSet = Set(names)
        let newSet = Set(newNames)
        let added = newNames.filter { !oldSet.contains($0) }
        let removed = names.filter { !newSet.contains($0) }
        let changed = newNames.filter { oldSet.contains($0) && old.tasks[$0] != new.tasks[$0] }
        var restartNeeded: [String] = []
        if old.socket != new.socket { restartNeeded.append("socket") }
        if old.socketMode != new.socketMode { restartNeeded.append("socket_mode") }
        if old.socketGroup != new.socketGroup { restartNeeded.append("socket_group") }
        if old.stateDirectory != new.stateDirectory { restartNeeded.append("state_dir") }

        for name in removed {
            let index = indexByName[name]!
            for waiter in tasks[index].waitingForNextRun {
                waiter(.failure(ProtocolError(.notRunning, "task \(name) was removed from the configuration before the requested run started")))
            }
            tasks[index].waitingForNextRun = []
            if let run = tasks[index].current {
                run.isDetached = true
                run.cancelled = true
                detachedRuns.append(run)
                log.write(.info, "ending the run of a task the configuration no longer has",
                          [("task", name), ("run", "\(run.runID)"), ("pid", "\(run.pid)")])
                terminate(run)
            }
        }

        // A new machine for the new task set, with the kept tasks' schedules and runs.
        var newIndex: [String: Int] = [:]
        for (position, name) in newNames.enumerated() { newIndex[name] = position }
        var newMachine = SchedulerStateMachine(taskCount: newNames.count, maximumRunning: new.maximumRunning)
        if machine.phase == .running { newMachine.runStarted() }
        var carried: [(time: Instant, order: Int, index: Int, ready: Bool)] = []
        for (index, name) in names.enumerated() where newSet.contains(name) {
            switch machine.schedule(of: SchedulerStateMachine.TaskID(index)) {
            case .none: break
            case .pending(let time): carried.append((time, 1, newIndex[name]!, false))
            case .ready(let due): carried.append((due, 0, newIndex[name]!, true))
            }
        }
        // Ready tasks first, each kind in due order, so the start queue keeps its order.
        carried.sort { ($0.order, $0.time, $0.index) < ($1.order, $1.time, $1.index) }
        for entry in carried {
            let id = SchedulerStateMachine.TaskID(entry.index)
            // A ready task stays ready (its due time is never after now); a pending one keeps
            // its time.
            newMachine.schedule(id, at: entry.ready ? min(entry.time, now) : entry.time, now: now)
        }
        for (index, name) in names.enumerated() where newSet.contains(name) && machine.isRunning(SchedulerStateMachine.TaskID(index)) {
            newMachine.adoptRunning(SchedulerStateMachine.TaskID(newIndex[name]!))
        }
        let newTasks = newNames.map { name -> TaskRuntime in
            guard let index = indexByName[name] else { return TaskRuntime(name: name, configuration: new.tasks[name]!) }
            var task = tasks[index]
            // Assigned only when it differs: an unchanged task keeps its prepared command.
            if task.configuration != new.tasks[name]! { task.configuration = new.tasks[name]! }
            return task
        }
        for (position, task) in newTasks.enumerated() { task.current?.taskIndex = position }

        var effective = new
        effective.socket = old.socket
        effective.socketMode = old.socketMode
        effective.socketGroup = old.socketGroup
        effective.stateDirectory = old.stateDirectory
        configuration = effective
        names = newNames
        indexByName = newIndex
        tasks = newTasks
        machine = newMachine
        server.maximumConnections = new.maximumConnections
        server.maximumLineLength = new.maximumLineBytes
        server.sendTimeout = new.sendTimeout

        let list = { (names: [String]) in names.isEmpty ? "-" : names.joined(separator: ",") }
        log.write(.info, "configuration reloaded",
                  [("file", new.file), ("added", list(added)), ("changed", list(changed)), ("removed", list(removed))])
        if !restartNeeded.isEmpty {
            log.write(.warning, "\(restartNeeded.joined(separator: ", ")) changed in \(new.file); that takes effect when the supervisor restarts")
        }
        publish(.configReloaded(added: added, changed: changed, removed: removed))
        if loopState == .running {
            for name in added {
                if let delay = new.tasks[name]!.start { scheduleTask(newIndex[name]!, after: delay) }
            }
        }
        stateChanged()
        pump()
        return ReloadReply(file: new.file, added: added, changed: changed, removed: removed, restartNeeded: restartNeeded)
    }
}
