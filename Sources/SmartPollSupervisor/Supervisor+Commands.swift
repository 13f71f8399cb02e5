import Glibc
import SmartPoll
import SmartPollProtocol

/// One handler per request (SPEC section 5), each run inside the loop.
extension Supervisor {
    static let version = "0.1.0"

    /// Why a request that needs a running loop is refused, with advice that fits the state.
    func notRunningAdvice() -> String {
        switch loopStatus.state {
        case .running:
            return "the loop is running"
        case .starting:
            return "the loop is starting (it waits for the previous run's tasks and hooks to end); "
                + "try again once it runs (smartpollctl start --wait returns then)"
        case .stopped:
            return "the loop is stopped; start it with smartpollctl start"
        case .standby:
            return "this member is a standby of its cluster: the leader runs the loop"
        case .failed:
            let error = "the loop is failed (\(loopStatus.error ?? ""))"
            if let restartAt = loopStatus.restartAt {
                let wait = max(0, restartAt.nanosecondsSinceEpoch - Timestamp.now().nanosecondsSinceEpoch)
                return error + "; it restarts by itself in \(DurationFormat.format(.nanoseconds(wait))) "
                    + "(restart policy), or now with smartpollctl start"
            }
            return error + "; start it again with smartpollctl start"
        }
    }

    func handle(
        _ request: Request, from client: ClientConnection, respond: @escaping (ControlServer.Response) -> Void
    ) {
        if isClusterStandby {
            if Supervisor.changesLoopState(request.command) {
                return respond(.reply(Reply(to: request, body: .failure(notLeaderRefusal()))))
            }
            if Supervisor.readsSharedState(request.command) {
                return readSharedState { [unowned self] error in
                    if let error { return respond(.reply(Reply(to: request, body: .failure(error)))) }
                    self.handleLocally(request, from: client, respond: respond)
                }
            }
        }
        handleLocally(request, from: client, respond: respond)
    }

    private func handleLocally(
        _ request: Request, from client: ClientConnection, respond: @escaping (ControlServer.Response) -> Void
    ) {
        let reply: (Reply.Body) -> Void = { body in respond(.reply(Reply(to: request, body: body))) }
        // A reply that acknowledges a change waits until the state file holds it.
        let durableReply: (Reply.Body) -> Void = { [unowned self] body in
            self.whenDurable(urgent: true) { error in reply(error.map { .failure($0) } ?? body) }
        }
        func failure(_ code: ErrorCode, _ message: String) { reply(.failure(ProtocolError(code, message))) }
        func taskID(_ name: String) -> TaskID? {
            if let task = task(named: name) { return task }
            let suggestion = Suggestion.closest(to: name, among: names).map { " (did you mean \"\($0)\"?)" } ?? ""
            failure(.unknownTask, "no task is named \(JSONValue.string(name).serialized())\(suggestion)")
            return nil
        }
        func requireRunningLoop() -> Bool {
            if loopStatus.state == .running { return true }
            failure(.notRunning, notRunningAdvice())
            return false
        }

        switch request.command {
        case .ping:
            reply(
                .ping(
                    PingReply(
                        version: Supervisor.version, pid: Int(getpid()),
                        uptimeMilliseconds: Int((loop.now - startedAt) / 1_000_000))))
        case .status(let filter):
            var selected = Array(names.indices).map(TaskID.init)
            if let filter {
                selected = []
                for name in filter {
                    guard let task = taskID(name) else { return }
                    selected.append(task)
                }
            }
            reply(.status(status(of: selected)))
        case .schedule(let name, _, _), .unschedule(let name), .stopTimer(let name):
            guard let task = taskID(name), requireRunningLoop() else { return }
            if let change = policy.apply(request.command, now: now, instant: instant) { carryOut([change]) }
            let schedule = policy.machine.schedule(of: task)
            pump()
            if case .stopTimer = request.command {
                var ready = false
                if case .ready = schedule { ready = true }
                return durableReply(.stopTimer(StopTimerReply(task: name, ready: ready)))
            }
            let next = policy.machine.next(task)
            let running = tasks[Int(task.index)].current.map { !$0.hasEnded } ?? false
            // Due, and waiting to start: ready, or (while a run is in flight) a deadline that
            // has passed already, which makes it ready when the run ends.
            var ready = false
            switch policy.machine.schedule(of: task) {
            case .ready: ready = true
            default: ready = running && (next.map { $0 <= now } ?? false)
            }
            durableReply(
                .schedule(
                    ScheduleReply(
                        task: name, scheduled: next != nil, next: next.map(wall), ready: ready, running: running)))
        case .run(let name, let wait, let withOutput):
            guard let task = taskID(name), requireRunningLoop() else { return }
            guard !policy.isPaused(task) else {
                return failure(.paused, "task \(name) is paused; resume it with smartpollctl resume \(name)")
            }
            if wait {
                // Every waiter of a run gets its outcome with the output (a shared copy-on-write
                // array); those that did not ask for it get it without.
                tasks[Int(task.index)].waitingForNextRun.append { body in
                    guard !withOutput, case .runFinished(var outcome) = body else { return reply(body) }
                    outcome.output = nil
                    outcome.truncated = false
                    reply(.runFinished(outcome))
                }
            }
            carryOut(policy.schedule(task, after: .zero, now: now))
            pump()
            if !wait { durableReply(.ok) }
        case .cancel(let name):
            guard let task = taskID(name) else { return }
            guard let run = tasks[Int(task.index)].current, !run.hasEnded else {
                return failure(.notRunning, "task \(name) has no run in flight")
            }
            run.terminate(.cancelled)
            reply(.ok)
        case .pause(let name), .resume(let name):
            guard let task = taskID(name) else { return }
            // A property of the task: allowed whatever the loop's state.
            let pausing = request.command.name == .pause
            let changed = pausing ? policy.pause(task) : policy.resume(task)
            if changed {
                publish(pausing ? .taskPaused(task: name) : .taskResumed(task: name))
                stateChanged(task: task)
                // A resumed task that fell due while paused starts now.
                if !pausing { pump() }
            }
            durableReply(.pause(PauseReply(task: name, paused: pausing)))
        case .logs(let name, let lines, let follow):
            guard let task = taskID(name) else { return }
            // A property of the task: allowed whatever the loop's state.
            let buffer = logBuffer(of: task)
            reply(.logs(LogsReply(task: name, lines: buffer.lines(last: lines))))
            if follow { server.startFollowingLogs(client, task: name) }
        case .history(let name, let limit):
            guard let task = taskID(name) else { return }
            // A property of the task: allowed whatever the loop's state.
            let index = Int(task.index)
            tasks[index].history.trim(to: policy.configurations[index].history)
            reply(.history(HistoryReply(task: name, entries: tasks[index].history.newestFirst(limit: limit))))
        case .result(let name):
            guard let task = taskID(name) else { return }
            if let result = tasks[Int(task.index)].result {
                reply(.result(result))
            } else {
                reply(.noResult(task: name))
            }
        case .results:
            reply(.results(tasks.compactMap(\.result)))
        case .emit(let hook, let data):
            guard let configuration = self.configuration.hooks[hook] else {
                let suggestion =
                    Suggestion.closest(to: hook, among: self.configuration.hooks.keys.sorted())
                    .map { " (did you mean \"\($0)\"?)" } ?? ""
                return failure(
                    .unknownHook, "no hook is named \(JSONValue.string(hook).serialized())\(suggestion)")
            }
            guard requireRunningLoop() else { return }
            switch configuration {
            case .schedule(let entries):
                for entry in entries {
                    // A hook's tasks are checked against the configuration when it is loaded.
                    guard let task = task(named: entry.task) else { continue }
                    carryOut(policy.schedule(task, after: entry.delay, now: now))
                }
                publish(.hookRan(hook: hook))
                pump()
                durableReply(.ok)
            case .command(let command):
                runCommandHook(CommandHookQueue.Emit(name: hook, hook: command, data: data, reply: durableReply))
            }
        case .stop(let wait):
            endRun(error: nil)
            if wait && !isQuiescent { stopWaiters.append(durableReply) } else { durableReply(.ok) }
        case .start(let wait):
            requestStart()
            if wait && loopStatus.state == .starting { startWaiters.append(durableReply) } else { durableReply(.ok) }
        case .restart(let wait):
            endRun(error: nil)
            requestStart()
            if wait && loopStatus.state == .starting { startWaiters.append(durableReply) } else { durableReply(.ok) }
        case .reload:
            switch reload() {
            case .success(let summary): durableReply(.reloaded(summary))
            case .failure(let error): reply(.failure(error))
            }
        case .watch(let filter):
            for name in filter ?? [] { guard taskID(name) != nil else { return } }
            reply(.ok)
            server.startWatching(client, filter: filter.map(Set.init))
        case .shutdown:
            reply(.ok)
            beginShutdown()
        case .metrics:
            // Rendered from this moment's snapshot as the socket drains: O(tasks) to take, the
            // text a slice at a time.
            respond(.slices(SlicedMetricsReply(id: request.id ?? .null, snapshot: metricsSnapshot())))
        }
    }

    /// Text a `status` request may encode into kept rows in its own turn of the loop (one
    /// ``SlicedStatusReply`` minimum): the rows beyond it go without text, formatted as the reply
    /// is written (in slices when it is big), and are kept encoded by a later request. 5,000 rows
    /// with 4 KiB stderr tails are 20 MB: encoding them all at once would stall the loop.
    static let statusEncodingBudget = SlicedStatusReply.minimumEstimatedBytes

    /// The `status` reply of `selected`. Each row's key is taken from the state as it is now
    /// (only its scheduler's part while the runtime's ``TaskRuntime/statusChanges`` says nothing
    /// else changed) and compared with the key of the task's ``TaskRuntime/statusRecord``: an
    /// unchanged row is copied from the record's text, a changed one encoded and kept (up to
    /// ``statusEncodingBudget`` bytes a request). When every row is unchanged and the same
    /// record as in ``statusRowsCache``, the reply is made of that joined text.
    ///
    /// - Complexity: O(selected) comparisons of a few words, plus at most about
    ///   ``statusEncodingBudget`` bytes encoded or joined.
    func status(of selected: [TaskID]) -> StatusReply {
        var records: [TaskStatusRecord] = []
        // The rows whose kept text is missing or stale: their position in `records` and key.
        var changed: [(position: Int, key: TaskStatusKey, changes: Int)] = []
        // While every row so far is valid and the same record as in the last reply's joined
        // rows, `records` stays empty (no reference taken a row): the common case of a status
        // with nothing changed since the last.
        let cache = statusRowsCache
        var cacheHolds = cache?.records.count == selected.count
        // Read in one access each to the tasks and to the machine (an access a field of each row
        // was a third of its cost): the tasks are only read here, the kept records written after.
        let machine = policy.machine
        let standbySchedules = isClusterStandby ? persistence?.restoredSchedules : nil
        tasks.withUnsafeBufferPointer { runtimes in
            for (position, task) in selected.enumerated() {
                let runtime = runtimes.baseAddress! + Int(task.index)
                let part = schedulerPart(task, of: runtime, machine: machine, standbySchedules: standbySchedules)
                let changes = runtime.pointee.statusChanges
                // Nothing the row shows from the runtime was set since the kept key was read: only
                // the scheduler's part is compared (no read of the run, O(1) a row).
                var read: TaskStatusKey? = nil
                let holds: Bool
                if changes == runtime.pointee.statusKeyChanges {
                    holds = runtime.pointee.statusKey.schedulerPart == part
                } else {
                    let key = statusKey(of: runtime, part)
                    holds = key == runtime.pointee.statusKey
                    read = key
                }
                if holds, let kept = runtime.pointee.statusRecord {
                    #if DEBUG
                    let key = runtime.pointee.statusKey
                    // The shortcut must find the key read from the state (every status of the
                    // end-to-end tests checks it).
                    precondition(
                        key == statusKey(of: runtime, part),
                        "a field of \(runtime.pointee.name)'s status row changed without statusChanges")
                    // A kept row must be what the row encodes to now: every status of the
                    // end-to-end tests checks it (within the encoding budget per request).
                    if position * 400 < Self.statusEncodingBudget {
                        precondition(
                            kept.text == TaskStatusRecord(statusRow(key, of: runtime.pointee)).text
                                && runtime.pointee.name == names[Int(task.index)],
                            "a stale status record of \(runtime.pointee.name)")
                    }
                    #endif
                    if cacheHolds {
                        if kept === cache.unsafelyUnwrapped.records[position] { continue }
                        cacheHolds = false
                        records.reserveCapacity(selected.count)
                        records.append(contentsOf: cache.unsafelyUnwrapped.records[..<position])
                    }
                    records.append(kept)
                } else {
                    if cacheHolds {
                        cacheHolds = false
                        records.reserveCapacity(selected.count)
                        records.append(contentsOf: cache.unsafelyUnwrapped.records[..<position])
                    }
                    let key = read ?? statusKey(of: runtime, part)
                    changed.append((records.count, key, changes))
                    records.append(TaskStatusRecord(unencoded: statusRow(key, of: runtime.pointee)))
                }
            }
        }
        let containment = ContainmentStatus(mode: cgroups == nil ? .subreaper : .cgroup, root: cgroups?.path)
        if cacheHolds, let cache {
            return StatusReply(
                loop: loopStatus, list: cache, stateFile: persistence?.status, containment: containment,
                hooks: hookStatus(), cluster: clusterStatus)
        }
        var encoded = 0
        var allEncoded = true
        for (position, key, changes) in changed {
            guard encoded < Self.statusEncodingBudget else {
                allEncoded = false
                break
            }
            let index = Int(selected[position].index)
            let record = TaskStatusRecord(records[position].status)
            encoded += record.encodedCount
            records[position] = record
            tasks[index].statusRecord = record
            tasks[index].statusKey = key
            tasks[index].statusKeyChanges = changes
        }
        // Joined once the rows all have text, when small enough to copy in one turn (a bigger
        // reply goes in slices: nothing to gain).
        if allEncoded, records.count * 200 <= Self.statusEncodingBudget,
            records.reduce(0, { $0 + $1.encodedCount + 1 }) <= Self.statusEncodingBudget,
            let list = TaskStatusRecordList(records)
        {
            statusRowsCache = list
            return StatusReply(
                loop: loopStatus, list: list, stateFile: persistence?.status, containment: containment,
                hooks: hookStatus(), cluster: clusterStatus)
        }
        return StatusReply(
            loop: loopStatus, records: records, stateFile: persistence?.status, containment: containment,
            hooks: hookStatus(), cluster: clusterStatus)
    }

    /// What the `status` row of `task` (whose runtime `runtime` points to) shows from the
    /// scheduler as the state is now.
    func schedulerPart(
        _ task: TaskID, of runtime: UnsafePointer<TaskRuntime>, machine: SchedulerStateMachine,
        standbySchedules: [String: (next: Timestamp, interruptedRun: Int?)]?
    ) -> TaskStatusKey.SchedulerPart {
        let schedule = machine.schedule(of: task)
        var ready = false
        if case .ready = schedule { ready = true }
        // A standby shows when the leader had the task due, as etcd holds it.
        let next = machine.next(task).map(wall) ?? standbySchedules?[runtime.pointee.name]?.next
        return TaskStatusKey.SchedulerPart(
            scheduled: schedule != .none || next != nil, ready: ready, next: next,
            paused: SupervisorPolicy.isPaused(task, in: machine))
    }

    /// What the `status` row of the task whose runtime `runtime` points to shows as the state is
    /// now, `last` but as a count of its changes, its scheduler's part given.
    func statusKey(of runtime: UnsafePointer<TaskRuntime>, _ part: TaskStatusKey.SchedulerPart) -> TaskStatusKey {
        let run = runtime.pointee.current
        return TaskStatusKey(
            scheduled: part.scheduled, ready: part.ready, next: part.next,
            running: run != nil, pid: run.map { Int($0.pid) }, run: run?.runID, runs: runtime.pointee.runs,
            failures: runtime.pointee.failures, cancelled: runtime.pointee.cancelled, paused: part.paused,
            lastChanges: runtime.pointee.lastChanges)
    }

    /// The `status` row of `key`, for task `index`: everything in it comes from the key, but
    /// the task's name (fixed for its ``TaskRuntime``) and `last`, whose changes the key counts.
    func statusRow(_ key: TaskStatusKey, of runtime: borrowing TaskRuntime) -> TaskStatus {
        TaskStatus(
            name: runtime.name, scheduled: key.scheduled, ready: key.ready, next: key.next,
            running: key.running, pid: key.pid, run: key.run, runs: key.runs, failures: key.failures,
            cancelled: key.cancelled, paused: key.paused, last: runtime.last)
    }

    /// The task's `logs` buffer, made at first use and again (keeping its last lines) when
    /// `log_lines` changed.
    func logBuffer(of task: TaskID) -> TaskLogBuffer {
        let index = Int(task.index)
        let capacity = policy.configurations[index].logLines
        if let buffer = tasks[index].logBuffer {
            if buffer.capacity == capacity { return buffer }
            let resized = buffer.resized(to: capacity)
            tasks[index].logBuffer = resized
            return resized
        }
        let buffer = TaskLogBuffer(capacity: capacity)
        let name = names[index]
        buffer.listener = { [unowned self] line in self.server.broadcastLog(task: name, line) }
        tasks[index].logBuffer = buffer
        return buffer
    }

    /// The command hook in flight and those queued behind it.
    private func hookStatus() -> [HookRunStatus] {
        var hooks: [HookRunStatus] = []
        if let inFlight = self.hooks.inFlight {
            let run = inFlight.run
            guard case .hook(let name) = run.owner else { preconditionFailure("a command hook's run has a hook owner") }
            hooks.append(
                HookRunStatus(name: name, running: true, run: run.runID, pid: Int(run.pid), started: run.startedWall))
        }
        for pending in self.hooks.pending { hooks.append(HookRunStatus(name: pending.name, running: false)) }
        return hooks
    }
}
