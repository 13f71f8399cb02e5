import Glibc
import SmartPoll
import SmartPollProtocol

/// `state_dir` (SPEC section 7): what is saved, when, and how it is restored.
///
/// - Important: A reply that acknowledges a change (a scheduling request, `start`, `stop`,
///   `reload`, and the reply to `run --wait`, which reports a result) is sent only once the
///   state file holds the change, so nothing a client was told survives less than a crash.
///   While writes fail, replies are not held back (they could wait forever); `status` shows
///   the failure.
extension Supervisor {
    // MARK: Restoring

    /// Opens the state directory, takes its lock and restores what the state file holds:
    /// counters, last runs, results and retry state at once; schedules when the loop's first
    /// run begins (``applyRestoredSchedules()``).
    ///
    /// - Throws: when another supervisor holds the directory's lock.
    func restoreState() throws(SupervisorError) {
        guard let persistence else { return }
        let store = persistence.store
        do {
            try store.prepare()
        } catch {
            recordStateFailure(error)
            scheduleSave(urgent: false)
            return
        }
        try store.lock()
        let loaded = store.load()
        for note in loaded.notes { log.write(note.level, "state: \(note.message)") }
        guard let state = loaded.state else { return }
        nextRunID = max(nextRunID, state.lastRunID)
        var results = 0
        for (name, saved) in state.tasks.sorted(by: { $0.key < $1.key }) {
            guard let index = task(named: name).map({ Int($0.index) }) else {
                log.write(
                    .warning, "state: task \(name) is no longer in the configuration; its saved state is dropped",
                    [("task", name)])
                continue
            }
            tasks[index].runs = saved.runs
            tasks[index].failures = saved.failures
            policy.restore(consecutiveFailures: saved.consecutiveFailures, of: TaskID(index))
            tasks[index].last = saved.last
            if let result = saved.result {
                tasks[index].result = result
                results += 1
            }
            if let next = saved.next {
                persistence.restoredSchedules[name] = (next, saved.interruptedRun)
            }
        }
        log.write(
            .info, "state restored",
            [
                ("file", store.statePath), ("tasks", "\(state.tasks.count)"),
                ("results", "\(results)"), ("schedules", "\(persistence.restoredSchedules.count)"),
                ("last_run", "\(state.lastRunID)"),
            ])
    }

    /// Puts the restored schedules in place, once, after the run hooks of the loop's first run:
    /// each task is due at the sooner of its saved time and its `start`; a time that passed
    /// while the supervisor was down (or a run it interrupted) makes the task ready now.
    func applyRestoredSchedules() {
        guard let persistence, !persistence.restoredSchedules.isEmpty else { return }
        let restored = persistence.restoredSchedules.sorted { ($0.value.next, $0.key) < ($1.value.next, $1.key) }
        persistence.restoredSchedules = [:]
        let current = Timestamp.now()
        for (name, entry) in restored {
            guard let task = task(named: name) else { continue }
            carryOut(policy.restore(task, at: instant(entry.next), now: now))
            if let run = entry.interruptedRun {
                log.write(
                    .info, "run \(run) was cut short when the supervisor stopped; running the task again",
                    [("task", name)])
            } else if entry.next <= current {
                log.write(
                    .info, "fell due while the supervisor was down; starting it now",
                    [("task", name), ("due", entry.next.formatted())])
            }
        }
    }

    // MARK: What is saved

    /// The state as it would be restored now.
    func savedState() -> SavedState {
        var state = SavedState(lastRunID: nextRunID)
        let schedules = persistence?.frozenSchedules ?? currentSchedules()
        for (index, name) in names.enumerated() {
            let task = tasks[index]
            var saved = SavedTask(
                runs: task.runs, failures: task.failures, consecutiveFailures: policy.consecutiveFailures[index],
                last: task.last, result: task.result)
            if let entry = schedules[name] ?? persistence?.restoredSchedules[name] {
                saved.next = entry.next
                saved.interruptedRun = entry.interruptedRun
            }
            state.tasks[name] = saved
        }
        return state
    }

    /// When each task is next due, as wall-clock time, while the loop runs: its schedule, or
    /// for a run in flight the time it fell due (a crash cuts it short, so it is due again).
    func currentSchedules() -> [String: (next: Timestamp, interruptedRun: Int?)] {
        guard loopStatus.state == .running else { return [:] }
        var schedules: [String: (next: Timestamp, interruptedRun: Int?)] = [:]
        for index in names.indices {
            var next = policy.machine.next(TaskID(index)).map(wall)
            var interrupted: Int?
            if let run = tasks[index].current, run.generation == generation {
                let due = wall(Instant(nanoseconds: run.due))
                interrupted = run.runID
                next = min(next ?? due, due)
            }
            if let next { schedules[names[index]] = (next, interrupted) }
        }
        return schedules
    }

    // MARK: When it is saved

    /// Something the state file holds changed: a write follows within ``StatePersistence/interval``.
    func stateChanged() {
        guard let persistence else { return }
        persistence.isDirty = true
        scheduleSave(urgent: false)
    }

    /// Calls `action` once the state file holds every change made so far (at once without a
    /// `state_dir`, when nothing is pending, or while writes fail). `urgent`: write at the end
    /// of this turn of the loop instead of waiting for the coalescing interval.
    func whenDurable(urgent: Bool, _ action: @escaping () -> Void) {
        guard let persistence, persistence.isDirty, persistence.error == nil else { return action() }
        persistence.waiters.append(action)
        scheduleSave(urgent: urgent)
    }

    private func scheduleSave(urgent: Bool) {
        guard let persistence else { return }
        let current = loop.now
        var target =
            urgent ? current : max(current, persistence.lastWriteStarted + StatePersistence.interval.nanosecondsClamped)
        if let retryAt = persistence.retryAt { target = max(target, retryAt) }
        if let deadline = persistence.timerDeadline, deadline <= target { return }
        if let timer = persistence.timer { loop.cancel(timer) }
        persistence.timerDeadline = target
        persistence.timer = loop.schedule(at: target) { [unowned self] in
            persistence.timer = nil
            persistence.timerDeadline = nil
            self.saveState()
        }
    }

    /// Writes the state now; then answers whoever waited for it, success or not.
    func saveState() {
        guard let persistence else { return }
        if let timer = persistence.timer {
            loop.cancel(timer)
            persistence.timer = nil
            persistence.timerDeadline = nil
        }
        persistence.lastWriteStarted = loop.now
        do {
            try persistence.store.save(savedState(), pid: getpid())
            if let failingSince = persistence.failingSince {
                log.write(
                    .info, "state: saved again after failing since \(failingSince.formatted())",
                    [("file", persistence.store.statePath)])
            }
            let recovered = persistence.error != nil
            persistence.isDirty = false
            persistence.saved = Timestamp.now()
            persistence.failure = nil
            persistence.failingSince = nil
            persistence.retryAt = nil
            persistence.retryDelay = .seconds(1)
            if recovered { notifyStatus() }
        } catch {
            recordStateFailure(error)
            if !isShuttingDown { scheduleSave(urgent: false) }
        }
        let waiters = persistence.waiters
        persistence.waiters = []
        for waiter in waiters { waiter() }
    }

    /// A write failed: logged when the reason changes, shown in `status`, retried later.
    private func recordStateFailure(_ problem: SupervisorError) {
        guard let persistence else { return }
        if persistence.failure != problem {
            log.write(.error, "state: \(problem.message); the supervisor keeps running without saving, and retries")
        }
        let first = persistence.failingSince == nil
        if first { persistence.failingSince = Timestamp.now() }
        persistence.failure = problem
        persistence.isDirty = true
        persistence.retryAt = loop.now + persistence.retryDelay.nanosecondsClamped
        persistence.retryDelay = min(persistence.retryDelay * 2, StatePersistence.longestRetryDelay)
        if first { notifyStatus() }
    }
}
