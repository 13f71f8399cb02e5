import SmartPoll

/// One member of a cluster (SPEC 9): a lease kept alive, a campaign by etcd's election recipe,
/// and the fence that bounds how long this member counts itself leader.
///
/// - Lease: granted with a TTL of ``Settings/lease`` (whole seconds, rounded up) and kept alive
///   every third of it, one keep-alive at a time. A keep-alive that says the lease is gone (TTL 0,
///   not found) ends the attempt at once.
/// - Election: the key `<keyPrefix>election/<lease id in hex>`, value the node's name, attached to
///   the lease and created by a transaction (`create_revision == 0`); the key with the lowest
///   create revision under the election prefix leads (etcd's recipe: the oldest key). The
///   current oldest key is learned with a range (sorted by create revision, limit 1) and kept
///   current by a watch on the prefix from the range's revision + 1: each event re-ranges; a
///   watch that ends is started again after a range. Each acknowledged keep-alive re-ranges
///   too, so a watch that falls silent delays what it misses by a third of the lease at most. A candidate whose key is not the oldest
///   waits: the watch says when the keys before it go.
/// - Fence: the leader counts itself leader until the monotonic send time of its last
///   acknowledged keep-alive (or of the grant) + lease − margin (``holdsLeadership(now:)``); a
///   timer at that deadline deposes it (``Change/deposed(reason:)``) if no keep-alive was
///   acknowledged meanwhile. A deposed member starts over: the old lease revoked (best effort,
///   so that its key does not stand in front of the new one), a new lease, a new key, whose
///   create revision (the next ``fence``) is larger than any before it.
/// - etcd out of reach: ``Change/unreachable(_:)`` once per outage, retries with a backoff of
///   100 ms doubling up to lease / 2; never leader without a live lease. The client's request
///   timeout is lease / 4, so that a keep-alive sent to a frozen member fails, and is sent again
///   to the next endpoint (``EtcdClient``'s rotation), well before the fence deadline: a third
///   of the lease after the last acknowledged one, plus a quarter, plus a round trip; a failed
///   keep-alive also restarts the watch there, since a watch on a frozen member stays silent.
///   A frozen etcd *leader* costs an etcd election on top (about etcd's election timeout, 1 s
///   by default), during which no keep-alive succeeds: when it ends after the fence deadline,
///   the leader is deposed and another member leads once etcd has a leader again.
///
/// Every attempt has a generation: a reply or timer of an earlier attempt is ignored.
///
/// - Important: Not thread-safe: the loop's thread only. Never blocks: every step is an
///   ``EtcdClient`` completion or an ``EventLoop`` timer. `onChange` is called on the loop's
///   thread after the member's state is updated (so ``role``, ``leader`` and ``fence`` already
///   say what the change says); it may call ``resign(_:)``. Keep the member alive until
///   ``resign(_:)`` calls back: releasing it drops the calls in flight. It logs at debug level
///   only: what the supervisor's log says about a change is the owner's, from `onChange`.
final class ClusterMember {
    struct Settings {
        /// etcd client URLs (`http://host:port`), at least one.
        var endpoints: [String]
        /// The cluster's name: the keys live under `/smartpoll/<name>/`.
        var name: String
        /// This member's name, the value of its election key.
        var node: String
        /// The lease's time to live.
        var lease: Duration
        /// The safety margin taken off the lease for the fence deadline.
        var margin: Duration
    }

    enum Role: Equatable { case standby, leader }

    enum Change: Equatable {
        /// This member leads, with this fence (its election key's create revision).
        case elected(fence: Int64)
        /// This member no longer leads (its fence deadline passed, its lease or key is gone); it
        /// campaigns again.
        case deposed(reason: String)
        /// The leading node as far as known (nil: none known).
        case leaderChanged(String?)
        /// etcd could not be reached: the first failure of an outage; retries follow.
        case unreachable(String)
    }

    /// `/smartpoll/<name>/`.
    let keyPrefix: [UInt8]
    /// `/smartpoll/<name>/election/`.
    let electionPrefix: [UInt8]
    let client: EtcdClient
    let settings: Settings

    private(set) var role: Role = .standby
    /// The leading node's name, as far as known.
    private(set) var leader: String?

    /// While leader: the create revision of our election key (it grows with every new leader).
    var fence: Int64? { role == .leader ? createRevision : nil }

    /// The lease's TTL asked of etcd, in seconds.
    let leaseSeconds: Int64
    /// The first retry delay; each failure doubles it up to lease / 2.
    static let firstBackoff = Duration.milliseconds(100)

    /// The watches started so far (the first of each attempt, and each restart).
    private(set) var watchesStarted = 0

    /// Test hook: when set, keep-alives are no longer sent (the timer still runs), as if the
    /// process could not reach etcd; clearing it resumes them.
    var keepAlivesSuspended = false

    private let loop: EventLoop
    private let log: SupervisorLog
    private let onChange: (Change) -> Void
    private let keepAliveInterval: Duration
    private let maximumBackoff: Duration
    /// lease − margin, in nanoseconds.
    private let fenceSpan: Int64
    private let oldestRequest: Etcd.RangeRequest

    private var running = false
    /// The current attempt; a completion or timer of another is ignored.
    private var generation: UInt64 = 0
    private var leaseID: Int64?
    private var grantedTTL: Int64 = 0
    private var electionKey: [UInt8]?
    private var createRevision: Int64 = 0
    /// The monotonic send time (ns) of the last acknowledged keep-alive or of the grant.
    private var lastAcknowledgedSend: Int64 = 0
    /// The oldest election key as of `appliedRevision`.
    private var oldest: Etcd.KeyValue?
    private var appliedRevision: Int64 = 0
    private var watch: EtcdClient.Watch?
    private var watchSerial: UInt64 = 0
    private var rangeInFlight = false
    private var rangeAgain = false
    /// Leases of earlier attempts not known to be revoked (bounded: they expire by themselves).
    private var abandonedLeases: [Int64] = []
    private static let abandonedLimit = 16
    private var reportedUnreachable = false
    private var backoff = ClusterMember.firstBackoff
    private var keepAliveBackoff = ClusterMember.firstBackoff
    private var refreshBackoff = ClusterMember.firstBackoff
    private var keepAliveTimer: EventLoop.TimerID?
    private var deadlineTimer: EventLoop.TimerID?
    private var retryTimer: EventLoop.TimerID?
    private var refreshTimer: EventLoop.TimerID?

    init(
        loop: EventLoop, settings: Settings, log: SupervisorLog, onChange: @escaping (Change) -> Void
    ) throws(SupervisorError) {
        guard !settings.endpoints.isEmpty else {
            throw SupervisorError(code: .invalidConfiguration, message: "cluster: no etcd endpoint")
        }
        guard settings.lease > .zero, settings.margin >= .zero, settings.margin < settings.lease * 2 / 3 else {
            throw SupervisorError(
                code: .invalidConfiguration,
                message: "cluster: the safety margin must be at least 0 and less than two thirds of the lease")
        }
        self.loop = loop
        self.settings = settings
        self.log = log
        self.onChange = onChange
        keyPrefix = Array("/smartpoll/\(settings.name)/".utf8)
        electionPrefix = keyPrefix + Array("election/".utf8)
        let nanoseconds = settings.lease.nanosecondsClamped
        leaseSeconds = max(1, (nanoseconds + 999_999_999) / 1_000_000_000)
        keepAliveInterval = settings.lease / 3
        maximumBackoff = max(Self.firstBackoff, settings.lease / 2)
        fenceSpan = (settings.lease - settings.margin).nanosecondsClamped
        oldestRequest = Etcd.RangeRequest(keys: .prefix(electionPrefix), limit: 1, sortByCreateRevision: true)
        client = try EtcdClient(loop: loop, endpoints: settings.endpoints, requestTimeout: settings.lease / 4)
    }

    deinit {
        cancelTimers()
        watch?.cancel()
    }

    /// Starts campaigning (again, after ``resign(_:)``); does nothing while running.
    func start() {
        guard !running else { return }
        running = true
        begin()
    }

    /// While leader: the monotonic time (ns) until which this member counts itself leader.
    var fenceDeadline: Int64? {
        role == .leader ? lastAcknowledgedSend &+ fenceSpan : nil
    }

    /// Whether this member leads and `now` (the loop's monotonic ns) is before its fence deadline:
    /// what to check before starting anything.
    func holdsLeadership(now: Int64) -> Bool {
        guard let fenceDeadline else { return false }
        return now < fenceDeadline
    }

    /// The time left until the fence deadline (leader) or until the lease runs out unless kept
    /// alive (standby, from the last acknowledged send); nil without a lease.
    func leaseLeft(now: Int64) -> Duration? {
        if let fenceDeadline { return .nanoseconds(max(0, fenceDeadline &- now)) }
        guard leaseID != nil, lastAcknowledgedSend != 0 else { return nil }
        return .nanoseconds(max(0, lastAcknowledgedSend &+ grantedTTL * 1_000_000_000 &- now))
    }

    /// While leader: the comparison `create_revision(our election key) == fence`, for the
    /// transactions that must fail once another member leads.
    var leadershipGuard: Etcd.Compare? {
        guard role == .leader, let electionKey else { return nil }
        return Etcd.Compare(key: electionKey, target: .createRevision(createRevision))
    }

    /// Stops campaigning and revokes the lease (which deletes the election key, so the next
    /// candidate leads at once); ``role`` is standby at once and no ``Change`` is emitted.
    /// `done` is called after etcd's reply or after 1 s at most, never from inside this call.
    func resign(_ done: @escaping () -> Void) {
        running = false
        let current = leaseID
        abandonAttempt()
        if leader == settings.node { leader = nil }
        let leases = abandonedLeases
        abandonedLeases = []
        for lease in leases where lease != current {
            client.leaseRevoke(lease) { _ in }
        }
        guard let current else {
            loop.callNextTurn(done)
            return
        }
        var finished = false
        var limit: EventLoop.TimerID?
        // The loop weakly: the 1 s timer below holds this closure, and a loop that is let go
        // with the timer pending (a test that ends before etcd answers) must not be kept alive
        // by it (ASan found the cycle).
        let finish: () -> Void = { [weak loop] in
            guard !finished else { return }
            finished = true
            if let limit { loop?.cancel(limit) }
            done()
        }
        limit = loop.schedule(after: .seconds(1)) { finish() }
        log.write(.debug, "cluster: resigning", [("node", settings.node), ("lease", Self.hex(current))])
        client.leaseRevoke(current) { _ in finish() }
    }

    // MARK: Attempts

    /// Ends the current attempt: its completions and timers are ignored from now on, its lease
    /// is kept for revoking, and the member is standby.
    private func abandonAttempt() {
        generation &+= 1
        cancelTimers()
        watch?.cancel()
        watch = nil
        watchSerial &+= 1
        rangeInFlight = false
        rangeAgain = false
        if let leaseID { abandon(leaseID) }
        leaseID = nil
        grantedTTL = 0
        electionKey = nil
        createRevision = 0
        lastAcknowledgedSend = 0
        oldest = nil
        appliedRevision = 0
        role = .standby
    }

    private func abandon(_ lease: Int64) {
        guard !abandonedLeases.contains(lease) else { return }
        abandonedLeases.append(lease)
        if abandonedLeases.count > Self.abandonedLimit { abandonedLeases.removeFirst() }
    }

    private func cancelTimers() {
        for timer in [keepAliveTimer, deadlineTimer, retryTimer, refreshTimer] {
            if let timer { loop.cancel(timer) }
        }
        keepAliveTimer = nil
        deadlineTimer = nil
        retryTimer = nil
        refreshTimer = nil
    }

    /// A new attempt: the abandoned leases revoked and a new lease granted, together; the
    /// campaign once both are done, so that our old keys do not stand in front of the new one.
    private func begin() {
        abandonAttempt()
        let attempt = generation
        var pending = 1 + abandonedLeases.count
        var granted: (reply: Etcd.LeaseReply, sent: Int64)?
        var failure: EtcdError?
        let proceed: () -> Void = { [weak self] in
            pending -= 1
            guard pending == 0, let self, attempt == generation else { return }
            if let granted {
                campaign(granted.reply, sent: granted.sent)
            } else {
                retryLater(failure ?? .malformedReply("no lease"))
            }
        }
        for lease in abandonedLeases {
            client.leaseRevoke(lease) { [weak self] result in
                switch result {
                case .success, .failure(.gateway(code: EtcdError.codeNotFound, message: _, status: _)):
                    self?.abandonedLeases.removeAll { $0 == lease }
                case .failure: break
                }
                proceed()
            }
        }
        let sent = loop.now
        client.leaseGrant(ttl: leaseSeconds) { [weak self] result in
            guard let self else { return }
            switch result {
            case .success(let reply):
                if attempt != generation {
                    // Granted for an attempt given up meanwhile: revoked with the others.
                    abandon(reply.id)
                    return
                }
                granted = (reply, sent)
            case .failure(let error):
                failure = error
            }
            proceed()
        }
    }

    /// Reports an outage (once), gives up the attempt, and begins again after the backoff.
    private func retryLater(_ error: EtcdError) {
        abandonAttempt()
        let attempt = generation
        let delay = backoff
        backoff = min(backoff * 2, maximumBackoff)
        log.write(.debug, "cluster: etcd: \(error); retrying", [("node", settings.node), ("in", "\(delay)")])
        reportUnreachable(error)
        guard attempt == generation, running else { return }
        retryTimer = loop.schedule(after: delay) { [weak self] in
            guard let self, attempt == generation else { return }
            retryTimer = nil
            begin()
        }
    }

    private func reportUnreachable(_ error: EtcdError) {
        guard !reportedUnreachable else { return }
        reportedUnreachable = true
        onChange(.unreachable(error.description))
    }

    /// Creates our election key with the lease just granted, and learns the oldest key in the
    /// same transaction.
    private func campaign(_ lease: Etcd.LeaseReply, sent: Int64) {
        let attempt = generation
        leaseID = lease.id
        grantedTTL = lease.ttl
        lastAcknowledgedSend = sent
        let key = electionPrefix + Array(Self.hex(lease.id).utf8)
        electionKey = key
        scheduleKeepAlive(at: sent &+ keepAliveInterval.nanosecondsClamped)
        client.txn(
            compare: [Etcd.Compare(key: key, target: .createRevision(0))],
            success: [.put(key: key, value: Array(settings.node.utf8), lease: lease.id), .range(oldestRequest)],
            failure: [.range(Etcd.RangeRequest(keys: .key(key))), .range(oldestRequest)]
        ) { [weak self] result in
            guard let self, attempt == generation else { return }
            let reply: Etcd.TxnReply
            switch result {
            case .success(let value): reply = value
            case .failure(let error):
                retryLater(error)
                return
            }
            guard reply.responses.count == 2, case .range(let oldestReply) = reply.responses[1] else {
                retryLater(.malformedReply("a campaign transaction without its range"))
                return
            }
            if reply.succeeded {
                createRevision = reply.revision
            } else if case .range(let mine) = reply.responses[0], let existing = mine.keyValues.first,
                existing.lease == lease.id
            {
                createRevision = existing.createRevision
            } else {
                retryLater(.malformedReply("our election key exists with another lease"))
                return
            }
            backoff = Self.firstBackoff
            reportedUnreachable = false
            appliedRevision = reply.revision
            oldest = oldestReply.keyValues.first
            log.write(
                .debug, "cluster: campaigning",
                [("node", settings.node), ("lease", Self.hex(lease.id)), ("revision", String(createRevision))])
            startWatch(from: reply.revision + 1)
            evaluate()
        }
    }

    /// Applies what is known of the oldest key: leads when it is ours (and the lease is live),
    /// gives up when our key is gone, follows another leader otherwise.
    private func evaluate() {
        guard let electionKey else { return }
        let attempt = generation
        guard let oldest, oldest.createRevision <= createRevision else {
            lose("our election key is gone")
            return
        }
        guard oldest.key == electionKey else {
            if role == .leader {
                lose("another member's election key is older than ours")
                return
            }
            setLeader(String(decoding: oldest.value, as: UTF8.self))
            return
        }
        guard role == .standby else { return }
        guard loop.now < lastAcknowledgedSend &+ fenceSpan else {
            // Ours is the oldest key, but the lease is not known to be live: nobody leads for now.
            setLeader(nil)
            return
        }
        role = .leader
        leader = settings.node
        scheduleDeadline()
        log.write(.debug, "cluster: elected", [("node", settings.node), ("fence", String(createRevision))])
        onChange(.elected(fence: createRevision))
        guard attempt == generation else { return }
        onChange(.leaderChanged(settings.node))
    }

    private func setLeader(_ name: String?) {
        guard leader != name else { return }
        leader = name
        onChange(.leaderChanged(name))
    }

    /// The lease or the leadership is lost: deposed if leader, then a new attempt.
    private func lose(_ reason: String) {
        let wasLeader = role == .leader
        abandonAttempt()
        let attempt = generation
        log.write(.debug, "cluster: \(reason)", [("node", settings.node)])
        if wasLeader {
            onChange(.deposed(reason: reason))
            guard attempt == generation else { return }
            if leader == settings.node { setLeader(nil) }
        }
        guard attempt == generation, running else { return }
        begin()
    }

    // MARK: Keep-alives and the fence

    private func scheduleKeepAlive(at deadline: Int64) {
        if let keepAliveTimer { loop.cancel(keepAliveTimer) }
        let attempt = generation
        keepAliveTimer = loop.schedule(at: deadline) { [weak self] in
            guard let self, attempt == generation else { return }
            keepAliveTimer = nil
            keepAlive()
        }
    }

    private func keepAlive() {
        guard let leaseID else { return }
        let attempt = generation
        let sent = loop.now
        guard !keepAlivesSuspended else {
            scheduleKeepAlive(at: sent &+ keepAliveInterval.nanosecondsClamped)
            return
        }
        client.leaseKeepAlive(leaseID) { [weak self] result in
            guard let self, attempt == generation else { return }
            switch result {
            case .success(let reply) where reply.ttl > 0:
                lastAcknowledgedSend = max(lastAcknowledgedSend, sent)
                keepAliveBackoff = Self.firstBackoff
                reportedUnreachable = false
                if role == .leader { scheduleDeadline() }
                scheduleKeepAlive(at: sent &+ keepAliveInterval.nanosecondsClamped)
                if role == .standby, oldest?.key == electionKey { evaluate() }
                // A range a keep-alive too: what a silent watch misses (one on a member that
                // froze or lost its quorum while our calls went elsewhere) is known a third of
                // the lease later at most.
                guard attempt == generation else { return }
                refresh()
            case .success:
                lose("etcd says our lease is gone")
            case .failure(.gateway(code: EtcdError.codeNotFound, message: _, status: _)):
                lose("etcd says our lease is gone")
            case .failure(let error):
                // After a timeout, at once: the time went by already, and the client sends the
                // next call to the next endpoint. Quick failures (refused) back off.
                var delay = Duration.zero
                if error != .timeout {
                    delay = min(keepAliveBackoff, keepAliveInterval)
                    keepAliveBackoff = min(keepAliveBackoff * 2, maximumBackoff)
                }
                log.write(.debug, "cluster: keep-alive failed: \(error)", [("node", settings.node)])
                scheduleKeepAlive(at: loop.now &+ delay.nanosecondsClamped)
                // The watch may be stuck on the member that did not answer: start it again
                // where the next call goes.
                restartWatch()
                guard attempt == generation else { return }
                reportUnreachable(error)
            }
        }
    }

    private func scheduleDeadline() {
        if let deadlineTimer { loop.cancel(deadlineTimer) }
        guard let fenceDeadline else { return }
        let attempt = generation
        deadlineTimer = loop.schedule(at: fenceDeadline) { [weak self] in
            guard let self, attempt == generation else { return }
            deadlineTimer = nil
            guard let fenceDeadline = self.fenceDeadline, loop.now >= fenceDeadline else { return }
            let since = Duration.nanoseconds(loop.now &- lastAcknowledgedSend)
            lose("no keep-alive acknowledged in time (the last one was sent \(since) ago)")
        }
    }

    // MARK: Watching the election

    private func startWatch(from revision: Int64) {
        let attempt = generation
        watchesStarted += 1
        watchSerial &+= 1
        let serial = watchSerial
        watch = client.watch(.prefix(electionPrefix), startRevision: revision) { [weak self] result in
            guard let self, attempt == generation, serial == watchSerial else { return }
            switch result {
            case .success(let message):
                if message.created { refreshBackoff = Self.firstBackoff }
                if message.canceled {
                    // Its start revision was compacted: range again, then watch from there.
                    stopWatch()
                    refresh()
                    return
                }
                if let electionKey,
                    message.events.contains(where: { $0.kind == .delete && $0.keyValue.key == electionKey })
                {
                    lose("our election key was deleted")
                    return
                }
                if !message.events.isEmpty { refresh() }
            case .failure(let error):
                log.write(.debug, "cluster: watch ended: \(error)", [("node", settings.node)])
                stopWatch()
                scheduleRefresh()
            }
        }
    }

    private func stopWatch() {
        watch?.cancel()
        watch = nil
        watchSerial &+= 1
    }

    private func restartWatch() {
        guard watch != nil else { return }
        stopWatch()
        refresh()
    }

    /// Ranges for the oldest key (one range at a time; events meanwhile make one more), starts
    /// the watch if there is none, and applies the result.
    private func refresh() {
        guard electionKey != nil else { return }
        if rangeInFlight {
            rangeAgain = true
            return
        }
        rangeInFlight = true
        let attempt = generation
        client.range(oldestRequest) { [weak self] result in
            guard let self, attempt == generation else { return }
            rangeInFlight = false
            switch result {
            case .success(let reply):
                if reply.revision >= appliedRevision {
                    appliedRevision = reply.revision
                    oldest = reply.keyValues.first
                }
                if watch == nil { startWatch(from: reply.revision + 1) }
                evaluate()
                guard attempt == generation, rangeAgain else { return }
                rangeAgain = false
                refresh()
            case .failure(let error):
                log.write(.debug, "cluster: range failed: \(error)", [("node", settings.node)])
                rangeAgain = false
                scheduleRefresh()
            }
        }
    }

    private func scheduleRefresh() {
        guard refreshTimer == nil else { return }
        let attempt = generation
        let delay = refreshBackoff
        refreshBackoff = min(refreshBackoff * 2, maximumBackoff)
        refreshTimer = loop.schedule(after: delay) { [weak self] in
            guard let self, attempt == generation else { return }
            refreshTimer = nil
            refresh()
        }
    }

    private static func hex(_ lease: Int64) -> String { String(UInt64(bitPattern: lease), radix: 16) }
}
