import SmartPoll
import SmartPollProtocol
#if canImport(Glibc)
import Glibc
#endif

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
        func taskIndex(_ name: String) -> Int? {
            if let index = indexByName[name] { return index }
            failure(.unknownTask, "no task is named \(JSONValue.string(name).serialized())")
            return nil
        }
        func requireRunningLoop() -> Bool {
            if loopState == .running { return true }
            failure(.notRunning, "the loop is \(loopStateName)\(loopState == .failed ? " (\(loopError ?? ""))" : ""); start it with smartpollctl start")
            return false
        }

        switch request.command {
        case .ping:
            reply(.ping(PingReply(version: Supervisor.version, pid: Int(getpid()),
                                  uptimeMilliseconds: Int((loop.now - startedAt) / 1_000_000))))
        case .status(let filter):
            var indices = Array(names.indices)
            if let filter {
                indices = []
                for name in filter {
                    guard let index = taskIndex(name) else { return }
                    indices.append(index)
                }
            }
            reply(.status(status(of: indices)))
        case .schedule(let task, _, _), .unschedule(let task):
            guard let index = taskIndex(task), requireRunningLoop() else { return }
            apply(request.command)
            pump()
            let next = machine.next(SchedulerStateMachine.TaskID(index))
            durableReply(.schedule(ScheduleReply(task: task, scheduled: next != nil, next: next.map(wall))))
        case .stopTimer(let task):
            guard let index = taskIndex(task), requireRunningLoop() else { return }
            let ready = machine.stopTimer(SchedulerStateMachine.TaskID(index), now: now)
            announceSchedule(index)
            durableReply(.stopTimer(StopTimerReply(task: task, ready: ready)))
        case .run(let task, let wait):
            guard let index = taskIndex(task), requireRunningLoop() else { return }
            if wait { tasks[index].waitingForNextRun.append(reply) }
            scheduleTask(index, after: .zero)
            pump()
            if !wait { durableReply(.ok) }
        case .cancel(let task):
            guard let index = taskIndex(task) else { return }
            guard let run = tasks[index].current else {
                return failure(.notRunning, "task \(task) has no run in flight")
            }
            run.cancelled = true
            terminate(run)
            reply(.ok)
        case .result(let task):
            guard let index = taskIndex(task) else { return }
            if let result = tasks[index].result { reply(.result(result)) } else { reply(.noResult(task: task)) }
        case .results:
            reply(.results(tasks.compactMap(\.result)))
        case .emit(let hook, let data):
            guard let configuration = self.configuration.hooks[hook] else {
                return failure(.unknownHook, "no hook is named \(JSONValue.string(hook).serialized())")
            }
            guard requireRunningLoop() else { return }
            switch configuration {
            case .schedule(let entries):
                for entry in entries { scheduleTask(indexByName[entry.task]!, after: entry.delay) }
                publish(.hookRan(hook: hook))
                pump()
                durableReply(.ok)
            case .command(let command):
                runCommandHook(hook, command, data: data, reply: durableReply)
            }
        case .stop(let wait):
            endRun(error: nil)
            if wait && !isQuiescent { stopWaiters.append(durableReply) } else { durableReply(.ok) }
        case .start(let wait):
            requestStart()
            if wait && loopState == .starting { startWaiters.append(durableReply) } else { durableReply(.ok) }
        case .restart(let wait):
            endRun(error: nil)
            requestStart()
            if wait && loopState == .starting { startWaiters.append(durableReply) } else { durableReply(.ok) }
        case .reload:
            switch reload() {
            case .success(let summary): durableReply(.reloaded(summary))
            case .failure(let error): reply(.failure(error))
            }
        case .watch(let filter):
            for name in filter ?? [] { guard taskIndex(name) != nil else { return } }
            reply(.ok)
            server.startWatching(client, filter: filter.map(Set.init))
        case .shutdown:
            reply(.ok)
            beginShutdown()
        }
    }

    var loopStateName: String {
        switch loopState {
        case .stopped: return "stopped"
        case .starting: return "starting"
        case .running: return "running"
        case .failed: return "failed"
        }
    }

    func status(of indices: [Int]) -> StatusReply {
        let state: LoopStatus.State
        switch loopState {
        case .stopped: state = .stopped
        case .starting: state = .starting
        case .running: state = .running
        case .failed: state = .failed
        }
        let loopStatus = LoopStatus(state: state, since: loopSince, runs: loopRuns, error: loopError)
        let rows = indices.map { index -> TaskStatus in
            let id = SchedulerStateMachine.TaskID(index)
            let schedule = machine.schedule(of: id)
            var ready = false
            if case .ready = schedule { ready = true }
            let run = tasks[index].current
            return TaskStatus(
                name: names[index], scheduled: schedule != .none, ready: ready, next: machine.next(id).map(wall),
                running: run != nil, pid: run.map { Int($0.pid) }, run: run?.runID,
                runs: tasks[index].runs, failures: tasks[index].failures, last: tasks[index].last)
        }
        return StatusReply(loop: loopStatus, tasks: rows, stateFile: persistence?.status)
    }
}
