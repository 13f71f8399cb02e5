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
    ///   A state directory someone else could write is refused (``StateStore/checkOwnership(userID:)``).
    ///   Then the first block of run ids is reserved, durably, and the writer thread starts.
    func restoreState() throws(SupervisorError) {
        guard let persistence, let store = persistence.store else { return }
        try store.checkOwnership()
        // A directory that cannot be made or opened now may still hold a state (its results
        // folder unreadable, say): starting without it would later write a state that forgets
        // it, so the start is refused with the reason, as for a directory others can write.
        try store.prepare()
        try store.lock()
        let loaded = store.load()
        for note in loaded.notes { log.write(note.level, "state: \(note.message)") }
        store.openJournal()
        guard let state = loaded.state else { return try startStateWriter(reservingAbove: 0) }
        let results = restore(state, everyTask: false)
        log.write(
            .info, "state restored",
            [
                ("file", store.statePath), ("tasks", "\(state.tasks.count)"),
                ("results", "\(results)"), ("schedules", "\(persistence.restoredSchedules.count)"),
                ("last_run", "\(state.lastRunID)"), ("journal_records", "\(loaded.journalRecords)"),
            ])
        try startStateWriter(reservingAbove: nextRunID)
    }

    /// Puts a saved state in place: counters, last runs, results, retry state, pauses and
    /// histories at once; schedules as ``StatePersistence/restoredSchedules`` for the loop's
    /// next run. `everyTask`: a task the state does not hold starts afresh (a cluster member
    /// that loads the state again over what it held before). Returns the number of results.
    @discardableResult
    func restore(_ state: SavedState, everyTask: Bool) -> Int {
        guard let persistence else { return 0 }
        // The mark is the highest id that may have been handed out: start above it.
        nextRunID = max(nextRunID, state.lastRunID)
        persistence.durableRunIDMark = max(persistence.durableRunIDMark, state.lastRunID)
        persistence.restoredSchedules = [:]
        for name in state.tasks.keys.sorted() where task(named: name) == nil {
            log.write(
                .warning, "state: task \(name) is no longer in the configuration; its saved state is dropped",
                [("task", name)])
            persistence.allDirty = true
        }
        var results = 0
        for index in names.indices {
            let name = names[index]
            guard let saved = state.tasks[name] ?? (everyTask ? SavedTask() : nil) else { continue }
            tasks[index].runs = saved.runs
            tasks[index].failures = saved.failures
            tasks[index].cancelled = saved.cancelled
            policy.restore(consecutiveFailures: saved.consecutiveFailures, of: TaskID(index))
            if saved.paused { policy.pause(TaskID(index)) } else { policy.resume(TaskID(index)) }
            tasks[index].last = saved.last
            if var history = state.histories[name] {
                history.trim(to: policy.configurations[index].history)
                tasks[index].history = history
            } else if everyTask {
                tasks[index].history = RunHistory(capacity: 0)
            }
            tasks[index].result = saved.result
            if saved.result != nil { results += 1 }
            if let next = saved.next {
                persistence.restoredSchedules[name] = (next, saved.interruptedRun)
            }
        }
        return results
    }

    /// Reserves the first block of run ids durably, on the loop's thread (it is not serving
    /// yet), then hands the files to the writer thread.
    private func startStateWriter(reservingAbove run: Int) throws(SupervisorError) {
        guard let persistence, let store = persistence.store else { return }
        let mark = run + StatePersistence.runIDBlock
        persistence.requestedRunIDMark = mark
        if persistence.failure == nil {
            persistence.lastNumber += 1
            let job = StateWriter.Job(
                number: persistence.lastNumber, changes: StateStore.Changes(lastRunID: mark))
            persistence.inFlight = (job.number, [], false, mark)
            writeNow(job)
        } else {
            persistence.pendingRunIDMark = mark
        }
        persistence.writer = try StateWriter(store: store, loop: loop, pid: getpid()) {
            [unowned self] completion in self.stateWritten(completion)
        }
        if persistence.isDirty { scheduleSave(urgent: false) }
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

    /// A task's state as it would be restored now.
    ///
    /// - Complexity: O(log n) (its schedule in the policy).
    func savedTask(_ index: Int) -> SavedTask {
        let task = tasks[index]
        var saved = SavedTask(
            runs: task.runs, failures: task.failures, cancelled: task.cancelled,
            consecutiveFailures: policy.consecutiveFailures[index],
            last: task.last, result: task.result)
        saved.paused = policy.isPaused(TaskID(index))
        let name = names[index]
        let schedule =
            if let frozen = persistence?.frozenSchedules { frozen[name] } else { currentSchedule(index) }
        if let entry = schedule ?? persistence?.restoredSchedules[name] {
            saved.next = entry.next
            saved.interruptedRun = entry.interruptedRun
        }
        return saved
    }

    /// When each task is next due, as wall-clock time, while the loop runs (see
    /// ``currentSchedule(_:)``).
    ///
    /// - Complexity: O(n): for shutdown only.
    func currentSchedules() -> [String: (next: Timestamp, interruptedRun: Int?)] {
        var schedules: [String: (next: Timestamp, interruptedRun: Int?)] = [:]
        for index in names.indices {
            if let entry = currentSchedule(index) { schedules[names[index]] = entry }
        }
        return schedules
    }

    /// When a task is next due, as wall-clock time, while the loop runs: its schedule, or for a
    /// run in flight the time it fell due (a crash cuts it short, so it is due again).
    func currentSchedule(_ index: Int) -> (next: Timestamp, interruptedRun: Int?)? {
        guard loopStatus.state == .running else { return nil }
        var next = policy.machine.next(TaskID(index)).map(wall)
        var interrupted: Int?
        if let run = tasks[index].current, run.generation == generation {
            let due = wall(Instant(nanoseconds: run.due))
            interrupted = run.runID
            next = min(next ?? due, due)
        }
        return next.map { ($0, interrupted) }
    }

    /// The next run id. Ids are reserved durably in blocks ahead of use, so that no id handed
    /// out before a crash is handed out again after it; the next block is asked for when half
    /// of one is used.
    ///
    /// - Important: While writes fail, ids above the durable mark are still handed out (runs do
    ///   not stop for a full disk); after a crash then, those ids may come again. The log says
    ///   so once (smartpoll-supervisor(8), FILES).
    func takeRunID() -> Int {
        nextRunID += 1
        guard let persistence else { return nextRunID }
        if nextRunID + StatePersistence.runIDBlock / 2 > persistence.requestedRunIDMark {
            let mark = nextRunID + StatePersistence.runIDBlock
            persistence.requestedRunIDMark = mark
            persistence.pendingRunIDMark = mark
            scheduleSave(urgent: true)
        }
        if nextRunID > persistence.durableRunIDMark && !persistence.warnedAboveMark {
            persistence.warnedAboveMark = true
            log.write(
                .warning,
                "state: run \(nextRunID) is above the run ids reserved on disk (\(persistence.durableRunIDMark)) "
                    + "because state writes fail; after a crash now, run ids from \(persistence.durableRunIDMark + 1) "
                    + "may be handed out again")
        }
        return nextRunID
    }

    // MARK: When it is saved

    /// Every task's saved state may have changed (a reload, the loop starting or stopping): a
    /// write of every task follows within ``StatePersistence/interval``.
    ///
    /// - Complexity: O(1) now; the write it causes is O(n).
    func stateChanged() {
        guard let persistence else { return }
        persistence.allDirty = true
        scheduleSave(urgent: false)
    }

    /// `task`'s saved state changed: a write of it follows within ``StatePersistence/interval``.
    ///
    /// - Complexity: O(1).
    func stateChanged(task: TaskID) {
        guard let persistence else { return }
        persistence.dirtyTasks.insert(names[Int(task.index)])
        scheduleSave(urgent: false)
    }

    /// Calls `action` once the state file holds every change made so far (at once without a
    /// `state_dir`, when nothing is pending, or while writes fail). `urgent`: write at the end
    /// of this turn of the loop instead of waiting for the coalescing interval.
    func whenDurable(urgent: Bool, _ action: @escaping (ProtocolError?) -> Void) {
        guard let persistence, persistence.error == nil, persistence.acceptsWrites || persistence.store != nil
        else { return action(nil) }
        if persistence.isDirty {
            persistence.waiters.append((persistence.lastNumber + 1, action))
            scheduleSave(urgent: urgent)
        } else if let inFlight = persistence.inFlight {
            persistence.waiters.append((inFlight.number, action))
        } else {
            action(nil)
        }
    }

    func scheduleSave(urgent: Bool) {
        guard let persistence, persistence.acceptsWrites else { return }
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

    /// Hands what changed to the writer thread, unless a write is in flight (its completion
    /// calls this again).
    ///
    /// - Complexity: O(changed tasks), O(n) after ``stateChanged()``.
    func saveState() {
        guard let persistence, persistence.inFlight == nil, persistence.isDirty else { return }
        if let timer = persistence.timer {
            loop.cancel(timer)
            persistence.timer = nil
            persistence.timerDeadline = nil
        }
        persistence.lastWriteStarted = loop.now
        var changes = StateStore.Changes(complete: persistence.allDirty, lastRunID: persistence.pendingRunIDMark)
        changes.historyAppends = persistence.historyAppends
        if persistence.allDirty {
            changes.tasks = names.indices.map { (names[$0], savedTask($0)) }
        } else {
            changes.tasks.reserveCapacity(persistence.dirtyTasks.count)
            for name in persistence.dirtyTasks {
                // A task a reload removed since: the reload made every task dirty.
                guard let task = task(named: name) else { continue }
                changes.tasks.append((name, savedTask(Int(task.index))))
            }
        }
        persistence.lastNumber += 1
        let job = StateWriter.Job(number: persistence.lastNumber, changes: changes)
        persistence.inFlight = (job.number, changes.tasks.map(\.name), changes.complete, changes.lastRunID)
        persistence.inFlightHistory = changes.historyAppends
        persistence.historyAppends = []
        persistence.dirtyTasks = []
        persistence.allDirty = false
        persistence.pendingRunIDMark = nil
        if let writer = persistence.writer {
            writer.submit(job)
        } else if persistence.etcd != nil {
            writeToEtcd(job)
        } else {
            writeNow(job)
        }
    }

    /// Does `job` on the loop's thread: before the writer starts and after it stopped.
    private func writeNow(_ job: StateWriter.Job) {
        guard let persistence, let store = persistence.store else { return }
        var failure: SupervisorError?
        do {
            try store.write(job.changes, pid: getpid())
        } catch {
            failure = error
        }
        stateWritten(StateWriter.Completion(number: job.number, failure: failure, notes: store.takeNotes()))
    }

    /// A write ended: answers whoever waited for it (success or not), and hands over what
    /// changed meanwhile.
    func stateWritten(_ completion: StateWriter.Completion) {
        guard let persistence, let inFlight = persistence.inFlight, inFlight.number == completion.number else { return }
        persistence.inFlight = nil
        defer { persistence.inFlightHistory = [] }
        for note in completion.notes { log.write(.warning, "state: \(note)") }
        if let failure = completion.failure {
            // What it held is written again with the next write, as it is then.
            persistence.dirtyTasks.formUnion(inFlight.tasks)
            if inFlight.complete { persistence.allDirty = true }
            // Before the ones made meanwhile: replay keeps their order.
            persistence.historyAppends.insert(contentsOf: persistence.inFlightHistory, at: 0)
            if let mark = inFlight.runIDMark {
                persistence.pendingRunIDMark = max(persistence.pendingRunIDMark ?? 0, mark)
            }
            recordStateFailure(failure)
            // Replies are not held back while writes fail: they could wait forever.
            let waiters = persistence.waiters
            persistence.waiters = []
            for waiter in waiters { waiter.action(nil) }
        } else {
            if let failingSince = persistence.failingSince {
                log.write(
                    .info, "state: saved again after failing since \(failingSince.formatted())",
                    [("file", persistence.location)])
            }
            let recovered = persistence.error != nil
            if let mark = inFlight.runIDMark {
                persistence.durableRunIDMark = max(persistence.durableRunIDMark, mark)
                if nextRunID <= persistence.durableRunIDMark { persistence.warnedAboveMark = false }
            }
            persistence.saved = Timestamp.now()
            persistence.failure = nil
            persistence.failingSince = nil
            persistence.retryAt = nil
            persistence.retryDelay = .seconds(1)
            if recovered { notifyStatus() }
            var remaining: [(number: Int, action: (ProtocolError?) -> Void)] = []
            var answered: [(ProtocolError?) -> Void] = []
            for waiter in persistence.waiters {
                if waiter.number <= completion.number {
                    answered.append(waiter.action)
                } else {
                    remaining.append(waiter)
                }
            }
            persistence.waiters = remaining
            for action in answered { action(nil) }
        }
        // At shutdown the files are written once more on the loop's thread; etcd is written on
        // while someone waits for it (the leader resigns after that).
        let goesOn = !isShuttingDown || (persistence.store == nil && !persistence.waiters.isEmpty)
        if persistence.isDirty && goesOn { scheduleSave(urgent: !persistence.waiters.isEmpty) }
    }

    /// At shutdown: waits for the write in flight, stops the writer thread, and writes what is
    /// left on the loop's thread (it serves no more).
    func finalStateWrite() {
        guard let persistence, persistence.store != nil else { return }
        if let timer = persistence.timer {
            loop.cancel(timer)
            persistence.timer = nil
            persistence.timerDeadline = nil
        }
        if let writer = persistence.writer {
            persistence.writer = nil
            for completion in writer.stop() { stateWritten(completion) }
            // Every job's completion has come back by now; none is in flight.
            persistence.inFlight = nil
        }
        persistence.retryAt = nil
        saveState()
        if let error = persistence.error { log.write(.error, "state: the final write failed: \(error)") }
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
        persistence.retryAt = loop.now + persistence.retryDelay.nanosecondsClamped
        persistence.retryDelay = min(persistence.retryDelay * 2, StatePersistence.longestRetryDelay)
        if first { notifyStatus() }
        if !isShuttingDown { scheduleSave(urgent: false) }
    }
}
