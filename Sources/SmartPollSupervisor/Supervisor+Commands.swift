import Glibc
import SmartPoll
import SmartPollProtocol

/// One handler per request (SPEC section 5), each run inside the loop.
extension Supervisor {
    static let version = "0.1.0"

    func handle(_ request: Request, from client: ClientConnection, respond: @escaping (Reply) -> Void) {
        let reply: (Reply.Body) -> Void = { body in respond(Reply(to: request, body: body)) }
        // A reply that acknowledges a change waits until the state file holds it.
        let durableReply: (Reply.Body) -> Void = { [unowned self] body in
            self.whenDurable(urgent: true) { reply(body) }
        }
        func failure(_ code: ErrorCode, _ message: String) { reply(.failure(ProtocolError(code, message))) }
        func taskID(_ name: String) -> TaskID? {
            if let task = task(named: name) { return task }
            failure(.unknownTask, "no task is named \(JSONValue.string(name).serialized())")
            return nil
        }
        func requireRunningLoop() -> Bool {
            if loopStatus.state == .running { return true }
            let error = loopStatus.state == .failed ? " (\(loopStatus.error ?? ""))" : ""
            failure(.notRunning, "the loop is \(loopStatus.state.rawValue)\(error); start it with smartpollctl start")
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
            durableReply(.schedule(ScheduleReply(task: name, scheduled: next != nil, next: next.map(wall))))
        case .run(let name, let wait):
            guard let task = taskID(name), requireRunningLoop() else { return }
            if wait { tasks[Int(task.index)].waitingForNextRun.append(reply) }
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
                return failure(.unknownHook, "no hook is named \(JSONValue.string(hook).serialized())")
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
        }
    }

    func status(of selected: [TaskID]) -> StatusReply {
        let rows = selected.map { task -> TaskStatus in
            let index = Int(task.index)
            let schedule = policy.machine.schedule(of: task)
            var ready = false
            if case .ready = schedule { ready = true }
            let run = tasks[index].current
            return TaskStatus(
                name: names[index], scheduled: schedule != .none, ready: ready,
                next: policy.machine.next(task).map(wall),
                running: run != nil, pid: run.map { Int($0.pid) }, run: run?.runID,
                runs: tasks[index].runs, failures: tasks[index].failures, last: tasks[index].last)
        }
        return StatusReply(
            loop: loopStatus, tasks: rows, stateFile: persistence?.status,
            containment: ContainmentStatus(mode: cgroups == nil ? .subreaper : .cgroup, root: cgroups?.path))
    }
}
