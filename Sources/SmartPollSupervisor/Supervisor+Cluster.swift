import SmartPoll
import SmartPollProtocol

/// A member of a cluster (SPEC section 9): standby until elected, then the loop runs with the
/// state loaded from etcd; deposed, it kills its runs at once and is standby again.
///
/// Terms: ``Supervisor/clusterTerm`` grows at each election and each stand-down, so that the
/// completion of an etcd call made in an earlier term changes nothing.
extension Supervisor {
    /// The commands a standby refuses with `not_leader`: those that change the loop's state.
    static func changesLoopState(_ command: Command) -> Bool {
        switch command {
        case .schedule, .unschedule, .stopTimer, .run, .cancel, .emit, .pause, .resume, .stop, .start, .restart:
            return true
        case .ping, .status, .result, .results, .history, .logs, .watch, .reload, .shutdown, .metrics:
            return false
        }
    }

    /// The reads a standby answers from the state in etcd.
    static func readsSharedState(_ command: Command) -> Bool {
        switch command {
        case .status, .result, .results, .history: return true
        default: return false
        }
    }

    /// Joins the cluster: the loop is `standby` until this member is elected.
    func startCluster(_ cluster: SupervisorConfiguration.Cluster) throws(SupervisorError) {
        let member = try ClusterMember(
            loop: loop,
            settings: ClusterMember.Settings(
                endpoints: cluster.endpoints, name: cluster.name, node: cluster.node, lease: cluster.lease,
                margin: cluster.fenceMargin),
            log: log
        ) { [unowned self] change in self.clusterChanged(change) }
        self.member = member
        // The state's calls have a client of their own: a load or a write of a megabyte takes
        // longer than the keep-alives' timeout (a quarter of the lease) allows.
        let stateClient = try EtcdClient(loop: loop, endpoints: cluster.endpoints, requestTimeout: cluster.lease)
        let store = EtcdStateStore(client: stateClient, keyPrefix: member.keyPrefix, log: log)
        persistence = StatePersistence(etcd: store, location: "etcd:\(cluster.keyPrefix)state/")
        loopStatus = LoopStatus(state: .standby, since: Timestamp.now(), runs: 0, error: nil)
        log.write(
            .info, "cluster: standby until elected",
            [
                ("cluster", cluster.name), ("node", cluster.node),
                ("lease", DurationFormat.format(cluster.lease)), ("etcd", cluster.endpoints.joined(separator: ",")),
            ])
        member.start()
    }

    /// Whether this member is a cluster's member that does not run the loop now: standby, or
    /// elected and still loading the state.
    var isClusterStandby: Bool {
        guard member != nil, let persistence else { return false }
        return !persistence.etcdActive
    }

    private func clusterChanged(_ change: ClusterMember.Change) {
        guard let member else { return }
        switch change {
        case .elected(let fence):
            // A member that shuts down takes no leadership: its resign (at the end of the
            // shutdown) hands it on.
            guard !isShuttingDown else {
                return log.write(.info, "cluster: elected while shutting down; resigning at the end of it")
            }
            becomeLeader(fence: fence)
        case .deposed(let reason):
            standDown(reason)
        case .leaderChanged(let leader):
            log.write(.info, "cluster: " + (leader.map { "the leader is \($0)" } ?? "no leader is known"))
            // `leader` once this member runs the loop (it says so again when its load is done).
            let leading = member.role == .leader && persistence?.etcdActive == true && !clusterLoading
            publish(.leaderChanged(leader: leader, role: leading ? .leader : .standby))
            notifyStatus()
        case .unreachable(let message):
            log.write(.warning, "cluster: etcd cannot be reached (\(message)); standby, retrying")
        }
    }

    /// Elected: loads the state from etcd, reserves run ids there, then starts the loop.
    private func becomeLeader(fence: Int64) {
        clusterTerm += 1
        clusterLoading = true
        clusterLoadFailures = 0
        // A standby's read in flight is dropped (its load would overwrite what the leader's
        // learns); the reads waiting for it are answered once the leader's load is in place.
        persistence?.etcd?.forget()
        log.write(.info, "cluster: elected leader; loading the state from etcd", [("fence", "\(fence)")])
        loopStatus = LoopStatus(state: .starting, since: Timestamp.now(), runs: loopStatus.runs, error: nil)
        notifyStatus()
        loadAsLeader(term: clusterTerm)
    }

    private func loadAsLeader(term: Int) {
        guard let persistence, let store = persistence.etcd else { return }
        store.load { [unowned self] result in
            guard term == self.clusterTerm, self.member?.role == .leader, !self.isShuttingDown else { return }
            switch result {
            case .failure(let error):
                self.clusterLoadFailures += 1
                if self.clusterLoadFailures >= Supervisor.clusterLoadAttempts {
                    // Another member may read etcd better: this one gives the leadership up and
                    // campaigns again, at the back of the queue.
                    self.log.write(
                        .error,
                        "cluster: cannot load the state from etcd (\(error.message)), "
                            + "\(self.clusterLoadFailures) times; resigning the leadership")
                    return self.resignAndCampaign("its state could not be loaded from etcd")
                }
                self.log.write(.error, "cluster: cannot load the state from etcd: \(error.message); retrying in 1s")
                self.loop.schedule(after: .seconds(1)) { [unowned self] in
                    guard term == self.clusterTerm else { return }
                    self.loadAsLeader(term: term)
                }
            case .success(let loaded):
                for note in loaded.notes { self.log.write(note.level, "state: \(note.message)") }
                let state = loaded.state ?? SavedState()
                let results = self.restore(state, everyTask: true)
                persistence.etcdActive = true
                self.log.write(
                    .info, "state loaded from etcd",
                    [
                        ("tasks", "\(state.tasks.count)"), ("results", "\(results)"),
                        ("schedules", "\(persistence.restoredSchedules.count)"), ("last_run", "\(state.lastRunID)"),
                    ])
                // Reads that came meanwhile see the loaded state.
                self.answerSharedReads()
                // The first block of run ids is reserved in etcd before any is handed out.
                let mark = self.nextRunID + StatePersistence.runIDBlock
                persistence.requestedRunIDMark = mark
                persistence.pendingRunIDMark = mark
                self.startOnceReserved(term: term)
            }
        }
    }

    /// Starts the loop once etcd holds the run ids reserved at the election (a write that fails
    /// is retried; a failure that lasts is answered with an error: then this waits again).
    private func startOnceReserved(term: Int) {
        whenDurable(urgent: true) { [unowned self] error in
            guard term == self.clusterTerm, !self.isShuttingDown else { return }
            if error != nil { return self.startOnceReserved(term: term) }
            self.clusterLoading = false
            self.publish(.leaderChanged(leader: self.member?.leader, role: .leader))
            self.requestStart()
        }
    }

    /// Gives the leadership up (as deposed), then campaigns again.
    private func resignAndCampaign(_ reason: String) {
        standDown(reason)
        member?.resign { [unowned self] in
            guard !self.isShuttingDown else { return }
            self.member?.start()
        }
    }

    /// Deposed (the fence lapsed, etcd refused a guarded write, the lease is gone): every run is
    /// killed at once, the loop is `standby`, and replies that waited for etcd are refused.
    func standDown(_ reason: String) {
        guard let member, let persistence else { return }
        clusterTerm += 1
        let wasLeading = persistence.etcdActive || clusterLoading
        clusterLoading = false
        persistence.etcdActive = false
        persistence.etcd?.forget()
        // The load they waited for will not end now: they are answered from the copy held.
        answerSharedReads()
        let refusal = ProtocolError.notLeader(
            "this member lost its cluster's leadership (\(reason)) before etcd held the change; "
                + "ask the leader whether it did", leader: member.leader)
        let waiters = persistence.waiters
        persistence.waiters = []
        // The fence is hard: SIGKILL to every process of every run, no grace.
        for index in tasks.indices { tasks[index].current?.terminate(.fenced) }
        hooks.inFlight?.run.terminate(.fenced)
        for run in detachedRuns { run.terminate(.fenced) }
        cancelLoopRestart()
        endRun(error: nil)
        // What was not written stays with etcd's last state: the next leader loads that.
        if let timer = persistence.timer { loop.cancel(timer) }
        persistence.timer = nil
        persistence.timerDeadline = nil
        persistence.inFlight = nil
        persistence.dirtyTasks = []
        persistence.allDirty = false
        persistence.historyAppends = []
        persistence.pendingRunIDMark = nil
        persistence.failure = nil
        persistence.failingSince = nil
        persistence.retryAt = nil
        persistence.retryDelay = .seconds(1)
        loopStatus = LoopStatus(state: .standby, since: Timestamp.now(), runs: loopStatus.runs, error: nil)
        if wasLeading {
            log.write(.warning, "cluster: no longer leader (\(reason)); every run killed; standby")
            publish(.leaderChanged(leader: member.leader, role: .standby))
        }
        for waiter in waiters { waiter.action(refusal) }
        notifyStatus()
    }

    /// Hands a write to etcd, guarded by this member's leadership: a deposed leader's write
    /// changes nothing there, and it stands down.
    func writeToEtcd(_ job: StateWriter.Job) {
        guard let persistence, let store = persistence.etcd else { return }
        guard let leadership = member?.leadershipGuard else {
            return standDown("it holds no leadership key to guard its writes with")
        }
        let term = clusterTerm
        store.write(job.changes, leadership: leadership) { [unowned self] failure in
            guard term == self.clusterTerm else { return }
            if failure != nil, self.member?.holdsLeadership(now: self.loop.now) != true {
                return self.standDown("a write to etcd failed and its lease may have run out")
            }
            if let failure, failure.code == .leadershipLost {
                return self.standDown(failure.message)
            }
            self.stateWritten(StateWriter.Completion(number: job.number, failure: failure, notes: []))
        }
    }

    /// Before a start: a leader whose fence lapsed stands down instead (SPEC section 9).
    func holdsClusterLeadership() -> Bool {
        guard let member else { return true }
        if member.holdsLeadership(now: loop.now) { return true }
        standDown("its lease may have run out: no keep-alive acknowledged in time")
        return false
    }

    /// A standby's answer to a command that changes the loop's state.
    func notLeaderRefusal() -> ProtocolError {
        let node = configuration.cluster?.node ?? ""
        if clusterLoading {
            return ProtocolError(
                .notRunning, "this member (\(node)) was just elected and is loading the state from etcd; try again")
        }
        let leader = member?.leader
        let whom = leader.map { "the leader is \($0): send it there" } ?? "no leader is known yet"
        return .notLeader("this member (\(node)) is a standby of its cluster; \(whom)", leader: leader)
    }

    /// A standby's read of the shared state: loads it from etcd (one load for the reads that
    /// arrive meanwhile), then answers from it; when etcd cannot be read, from the copy it read
    /// last (`status` still shows the member's role and what it knows of the leader).
    func readSharedState(_ answer: @escaping (ProtocolError?) -> Void) {
        if standbyReads != nil {
            standbyReads!.append(answer)
            return
        }
        // Elected and loading: the read waits for that load.
        if clusterLoading {
            standbyReads = [answer]
            return
        }
        guard let store = persistence?.etcd else { return answer(nil) }
        standbyReads = [answer]
        let term = clusterTerm
        store.load { [unowned self] result in
            let pending = self.standbyReads ?? []
            self.standbyReads = nil
            switch result {
            case .success(let loaded):
                // Only a standby's copy is replaced: a leader's own state is the newest.
                if term == self.clusterTerm, self.isClusterStandby, !self.clusterLoading {
                    self.restore(loaded.state ?? SavedState(), everyTask: true)
                }
            case .failure(let error):
                self.log.write(
                    .warning,
                    "cluster: cannot read the state from etcd (\(error.message)); answering from the copy read last")
            }
            for answer in pending { answer(nil) }
        }
    }

    /// Answers the reads waiting for a load from the state held now.
    func answerSharedReads() {
        guard let pending = standbyReads else { return }
        standbyReads = nil
        for answer in pending { answer(nil) }
    }

    /// Failed loads after which an elected member resigns.
    static let clusterLoadAttempts = 5

    /// The `cluster` member of `status`.
    var clusterStatus: ClusterStatus? {
        guard let member, let cluster = configuration.cluster else { return nil }
        let left = member.leaseLeft(now: loop.now).map { Int($0.nanosecondsClamped / 1_000_000) }
        return ClusterStatus(
            node: cluster.node, role: member.role == .leader ? .leader : .standby, leader: member.leader,
            leaseLeftMilliseconds: left)
    }

    /// At shutdown, after every run ended: a leader waits until etcd holds the last changes,
    /// then resigns (its lease revoked, so another member leads at once); then the supervisor
    /// stops.
    func leaveCluster() {
        let finish = { [unowned self] in
            let stop = { [unowned self] in
                self.server.shutdown()
                self.loop.stop()
            }
            if let member = self.member { member.resign(stop) } else { stop() }
        }
        if persistence?.etcdActive == true {
            whenDurable(urgent: true) { _ in finish() }
        } else {
            finish()
        }
    }
}
