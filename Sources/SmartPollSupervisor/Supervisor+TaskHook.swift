#if canImport(Glibc)
import Glibc
#endif
import SmartPoll
import SmartPollProtocol

/// The built-in task hook (SPEC section 3): what happens inside the loop after each run.
extension Supervisor {
    /// A run's process has ended (and its pipes are drained).
    func runEnded(_ run: TaskRun) {
        if run.isDetached { return detachedRunEnded(run) }
        let index = run.taskIndex
        let name = names[index]
        let ended = Timestamp.now()
        let duration = Double(loop.now - run.started) / 1e6
        let succeeded = run.succeeded
        tasks[index].current = nil
        tasks[index].runs += 1
        if !succeeded { tasks[index].failures += 1 }
        let exitCode = run.status?.exitCode
        let signal = run.status?.signal
        tasks[index].last = LastRun(
            run: run.runID, started: run.startedWall, ended: ended, durationMilliseconds: duration,
            exitCode: exitCode, signal: signal, timedOut: run.timedOut, succeeded: succeeded,
            error: run.failureReason, stderrTail: run.stderrTailText)

        var changed = false
        let current = run.generation == generation && loopState == .running
        // The definition the run started with: a reload's changes apply from the next run.
        let configuration = run.taskConfiguration ?? tasks[index].configuration
        if current {
            if succeeded {
                changed = applySuccess(run, configuration)
            } else if run.cancelled {
                // An operator's cancel is not the task failing: no failure policy, only `every`.
                rescheduleByEvery(index, configuration)
            } else {
                applyFailure(index, configuration, reason: "task \(name) run \(run.runID) \(run.failureReason ?? "failed")")
            }
        }
        log.write(succeeded ? .info : .warning, succeeded ? "finished" : "failed: \(run.failureReason ?? "")",
                  [("task", name), ("run", "\(run.runID)"), ("pid", "\(run.pid)"),
                   ("duration_ms", "\(Int(duration.rounded()))"), ("changed", "\(changed)")])
        publish(.taskFinished(
            task: name, run: run.runID, exitCode: exitCode, signal: signal, timedOut: run.timedOut,
            succeeded: succeeded, durationMilliseconds: duration, changed: changed))
        let outcome = RunOutcome(task: name, run: run.runID, exitCode: exitCode, signal: signal,
                                 timedOut: run.timedOut, succeeded: succeeded)
        stateChanged()
        // `run --wait` acknowledges the result: the reply waits until the state file has it.
        let waiters = run.waiters
        if !waiters.isEmpty {
            whenDurable(urgent: false) { for waiter in waiters { waiter(.runFinished(outcome)) } }
        }
        machine.taskFinished(SchedulerStateMachine.TaskID(index))
        notifyStatus(throttled: true)
        checkQuiescent()
        pump()
    }

    /// The end of a run of a task that a reload removed: reported, then forgotten.
    private func detachedRunEnded(_ run: TaskRun) {
        detachedRuns.removeAll { $0 === run }
        let duration = Double(loop.now - run.started) / 1e6
        let exitCode = run.status?.exitCode
        let signal = run.status?.signal
        log.write(.info, "ended: the task was removed from the configuration",
                  [("task", run.task), ("run", "\(run.runID)"), ("pid", "\(run.pid)"), ("duration_ms", "\(Int(duration.rounded()))")])
        publish(.taskFinished(task: run.task, run: run.runID, exitCode: exitCode, signal: signal, timedOut: run.timedOut,
                              succeeded: run.succeeded, durationMilliseconds: duration, changed: false))
        let outcome = RunOutcome(task: run.task, run: run.runID, exitCode: exitCode, signal: signal,
                                 timedOut: run.timedOut, succeeded: run.succeeded)
        for waiter in run.waiters { waiter(.runFinished(outcome)) }
        checkQuiescent()
        pump()
    }

    /// Directives, result, `on_change`, `on_success`, `every`. Returns whether the result changed.
    private func applySuccess(_ run: TaskRun, _ configuration: TaskConfiguration) -> Bool {
        let index = run.taskIndex
        for directive in run.directives { apply(directive) }
        let result = TaskResult(task: names[index], run: run.runID, time: Timestamp.now(),
                                output: run.output, truncated: run.truncated)
        let changed = tasks[index].result.map { $0.output != result.output || $0.truncated != result.truncated } ?? true
        tasks[index].result = result
        tasks[index].consecutiveFailures = 0
        if changed {
            for target in configuration.onChange { scheduleNow(target) }
        }
        for target in configuration.onSuccess { scheduleNow(target) }
        rescheduleByEvery(index, configuration)
        return changed
    }

    /// `on_failure`: end the loop, carry on by `every`, or retry after a growing backoff.
    private func applyFailure(_ index: Int, _ configuration: TaskConfiguration, reason: String) {
        switch configuration.onFailure {
        case .fatal:
            endRun(error: reason)
        case .continue:
            rescheduleByEvery(index, configuration)
        case .retry:
            tasks[index].consecutiveFailures += 1
            let failures = tasks[index].consecutiveFailures
            if let limit = configuration.maximumRetries, failures > limit {
                endRun(error: "\(reason); gave up after \(limit) retries")
                return
            }
            let backoff = configuration.backoff
            let seconds = min(
                Double(backoff.initial.nanosecondsClamped) / 1e9 * pow(backoff.factor, Double(failures - 1)),
                Double(backoff.maximum.nanosecondsClamped) / 1e9)
            let nanoseconds = min(seconds * 1e9, 9.2e18)
            scheduleTask(index, after: .nanoseconds(Int64(nanoseconds)) + jitter(configuration.jitter))
        }
    }

    private func scheduleNow(_ name: String) {
        guard let index = indexByName[name] else { return }
        scheduleTask(index, after: .zero)
    }

    private func rescheduleByEvery(_ index: Int, _ configuration: TaskConfiguration) {
        guard let every = configuration.every,
              machine.next(SchedulerStateMachine.TaskID(index)) == nil else { return }
        scheduleTask(index, after: every + jitter(configuration.jitter))
    }

    func jitter(_ bound: Duration) -> Duration {
        let nanoseconds = bound.nanosecondsClamped
        guard nanoseconds > 0 else { return .zero }
        return .nanoseconds(Int64.random(in: 0...nanoseconds, using: &random))
    }

    /// One scheduling directive or request, as the library's calls.
    @discardableResult
    func apply(_ command: Command) -> Int? {
        switch command {
        case .schedule(let task, let when, let sooner):
            guard let index = indexByName[task] else { return nil }
            let id = SchedulerStateMachine.TaskID(index)
            switch (when, sooner) {
            case (.after(let delay), false): machine.schedule(id, after: delay, now: now)
            case (.after(let delay), true): machine.scheduleSooner(id, after: delay, now: now)
            case (.at(let time), false): machine.schedule(id, at: time.map(instant), now: now)
            case (.at(let time?), true): machine.scheduleSooner(id, at: instant(time), now: now)
            case (.at(nil), true): break  // rejected when decoded
            }
            announceSchedule(index)
            return index
        case .unschedule(let task):
            guard let index = indexByName[task] else { return nil }
            machine.schedule(SchedulerStateMachine.TaskID(index), after: .seconds(-1), now: now)
            announceSchedule(index)
            return index
        case .stopTimer(let task):
            guard let index = indexByName[task] else { return nil }
            _ = machine.stopTimer(SchedulerStateMachine.TaskID(index), now: now)
            announceSchedule(index)
            return index
        default:
            return nil
        }
    }

    /// A wall-clock time as a monotonic instant.
    func instant(_ time: Timestamp) -> Instant {
        let (difference, overflow) = time.nanosecondsSinceEpoch.subtractingReportingOverflow(wallOffset)
        if !overflow { return Instant(nanoseconds: difference) }
        // Out of range: far in the past is ready now, far in the future is as late as can be.
        return time < Timestamp.now() ? Instant(nanoseconds: .min) : Instant(nanoseconds: .max)
    }

    /// A command that could not even be started: a failed run with exit status 127, as a shell
    /// reports it.
    func recordUnstartable(_ index: Int, runID: Int, due: Instant, reason: String) {
        let now = Timestamp.now()
        tasks[index].runs += 1
        tasks[index].failures += 1
        tasks[index].last = LastRun(
            run: runID, started: now, ended: now, durationMilliseconds: 0, exitCode: 127, signal: nil,
            timedOut: false, succeeded: false, error: reason, stderrTail: "")
        publish(.taskStarted(task: names[index], run: runID, pid: 0, due: wall(due), lateMilliseconds: lateness(due)))
        publish(.taskFinished(task: names[index], run: runID, exitCode: 127, signal: nil, timedOut: false,
                              succeeded: false, durationMilliseconds: 0, changed: false))
        let outcome = RunOutcome(task: names[index], run: runID, exitCode: 127, signal: nil, timedOut: false, succeeded: false)
        let waiters = tasks[index].waitingForNextRun
        tasks[index].waitingForNextRun = []
        stateChanged()
        if !waiters.isEmpty {
            whenDurable(urgent: false) { for waiter in waiters { waiter(.runFinished(outcome)) } }
        }
        // Defer the policy so that the start loop in pump() is not re-entered. By name: a
        // reload in between may renumber or remove the task.
        let name = names[index]
        let generation = self.generation
        let configuration = tasks[index].configuration
        loop.schedule(after: .zero) { [unowned self] in
            guard let index = self.indexByName[name] else { return }
            self.machine.taskFinished(SchedulerStateMachine.TaskID(index))
            if self.loopState == .running && self.generation == generation {
                self.applyFailure(index, configuration, reason: "task \(name) run \(runID): \(reason)")
            }
            self.checkQuiescent()
            self.pump()
        }
    }
}
