import Glibc
import SmartPoll
import SmartPollEtcdSupport
import Testing

@testable import SmartPollSupervisor

/// ``ClusterMember`` against a real etcd: each member on its own ``EventLoop``, the loops run in
/// turn on the test's thread a slice at a time, so that a member can be frozen (its loop not
/// run) as a stopped process would be. Every step checks that no two members hold leadership at
/// the same instant of the shared monotonic clock, and each test that fences grow.
/// Serialized: each test starts its own etcd, and the timing assertions want the machine.
@Suite(.serialized) struct ClusterMemberTests {
    static let lease = Duration.seconds(2)
    static let margin = Duration.milliseconds(500)
    /// How long a loop runs in its turn: the granularity of the times measured here.
    static let slice = Duration.milliseconds(2)

    final class Node {
        let name: String
        let loop: EventLoop
        let member: ClusterMember
        /// A frozen node's loop is not run: the process is stopped.
        var frozen = false

        init(_ name: String, endpoints: [String], cluster: String = "test") throws {
            self.name = name
            let loop = try EventLoop()
            self.loop = loop
            var log = SupervisorLog()
            log.level = .error
            let box = ChangeBox()
            member = try ClusterMember(
                loop: loop,
                settings: .init(
                    endpoints: endpoints, name: cluster, node: name, lease: ClusterMemberTests.lease,
                    margin: ClusterMemberTests.margin),
                log: log, onChange: { [loop] change in box.changes.append((loop.now, change)) })
            self.box = box
        }

        private let box: ChangeBox
        /// Each change with the loop's monotonic time when it came.
        var recorded: [(at: Int64, change: ClusterMember.Change)] { box.changes }

        var elections: [(at: Int64, fence: Int64)] {
            recorded.compactMap { if case .elected(let fence) = $0.change { ($0.at, fence) } else { nil } }
        }

        var depositions: [(at: Int64, reason: String)] {
            recorded.compactMap { if case .deposed(let reason) = $0.change { ($0.at, reason) } else { nil } }
        }

        var unreachableReports: [String] {
            recorded.compactMap { if case .unreachable(let message) = $0.change { message } else { nil } }
        }
    }

    final class ChangeBox {
        var changes: [(at: Int64, change: ClusterMember.Change)] = []
    }

    /// The members of a test, and the invariant checked after every round of slices.
    final class Members {
        let nodes: [Node]
        private(set) var overlaps: [String] = []

        init(_ nodes: [Node]) { self.nodes = nodes }

        var now: Int64 { nodes[0].loop.now }

        var leaders: [Node] { nodes.filter { $0.member.holdsLeadership(now: now) } }

        /// Runs the loops of the nodes not frozen in turn until `condition`; throws after `limit`.
        func run(limit: Duration, until condition: () -> Bool) throws {
            let deadline = ContinuousClock.now + limit
            while !condition() {
                guard ContinuousClock.now < deadline else {
                    throw HarnessFailure("the condition did not hold within \(limit)")
                }
                round()
            }
        }

        /// Runs the loops for `duration`.
        func run(for duration: Duration) {
            let end = ContinuousClock.now + duration
            while ContinuousClock.now < end { round() }
        }

        private func round() {
            for node in nodes where !node.frozen {
                let loop = node.loop
                loop.schedule(after: ClusterMemberTests.slice) { loop.stop() }
                do {
                    try loop.run()
                } catch {
                    Issue.record("the loop of \(node.name) failed: \(error)")
                }
            }
            let holding = leaders.map(\.name)
            if holding.count > 1 { overlaps.append("\(holding) at \(now)") }
        }

        /// Every election of every node in time order: its fence larger than all before it.
        var fencesGrow: Bool {
            let fences = nodes.flatMap(\.elections).sorted { $0.at < $1.at }.map(\.fence)
            return zip(fences, fences.dropFirst()).allSatisfy { $0 < $1 }
        }
    }

    private static func milliseconds(_ nanoseconds: Int64) -> Int64 { nanoseconds / 1_000_000 }

    // MARK: Tests

    @Test func oneMemberLeadsWithAFenceAndKeepsLeading() throws {
        let etcd = try EtcdHarness()
        let node = try Node("a", endpoints: etcd.endpoints)
        let members = Members([node])
        #expect(node.member.role == .standby && node.member.leaseLeft(now: members.now) == nil)
        node.member.start()
        try members.run(limit: .seconds(10)) { node.member.role == .leader }
        let fence = try #require(node.member.fence)
        #expect(fence > 1)
        #expect(node.elections.map(\.fence) == [fence])
        #expect(node.recorded.map { $0.change } == [.elected(fence: fence), .leaderChanged("a")])
        #expect(node.member.leader == "a")
        #expect(node.member.holdsLeadership(now: members.now))
        let left = try #require(node.member.leaseLeft(now: members.now))
        #expect(left > .zero && left <= Self.lease - Self.margin)
        let guardCompare = try #require(node.member.leadershipGuard)
        #expect(guardCompare.target == .createRevision(fence))
        #expect(guardCompare.key.starts(with: Array("/smartpoll/test/election/".utf8)))
        #expect(node.member.keyPrefix == Array("/smartpoll/test/".utf8))

        // The key in etcd: our node's name, attached to a lease; a write guarded by it goes through.
        var stored: Result<Etcd.RangeReply, EtcdError>?
        node.member.client.range(Etcd.RangeRequest(keys: .key(guardCompare.key))) { stored = $0 }
        try members.run(limit: .seconds(5)) { stored != nil }
        let keyValue = try #require(try stored?.get().keyValues.first)
        #expect(keyValue.value == Array("a".utf8) && keyValue.lease != 0 && keyValue.createRevision == fence)
        var guarded: Result<Etcd.TxnReply, EtcdError>?
        node.member.client.txn(
            compare: [guardCompare], success: [.put(key: node.member.keyPrefix + [0x78], value: [1], lease: 0)]
        ) { guarded = $0 }
        try members.run(limit: .seconds(5)) { guarded != nil }
        #expect((try? guarded?.get().succeeded) == true)

        // Past twice the lease: kept alive, still leading, the fence deadline moving on.
        var smallestLeft = Self.lease
        let end = ContinuousClock.now + Self.lease * 2
        try members.run(limit: Self.lease * 3) {
            if let left = node.member.leaseLeft(now: members.now) { smallestLeft = min(smallestLeft, left) }
            return ContinuousClock.now >= end
        }
        #expect(node.member.role == .leader && node.member.fence == fence)
        #expect(node.depositions.isEmpty && node.unreachableReports.isEmpty)
        // Renewed every third of the lease: never closer than a third to the deadline (less the
        // keep-alive's round trip and a slice).
        #expect(smallestLeft > Self.lease - Self.margin - Self.lease / 3 - .milliseconds(200), "\(smallestLeft)")
    }

    @Test func ofTwoMembersExactlyOneLeadsAndTheOtherFollowsIt() throws {
        let etcd = try EtcdHarness()
        let a = try Node("a", endpoints: etcd.endpoints)
        let b = try Node("b", endpoints: etcd.endpoints)
        let members = Members([a, b])
        a.member.start()
        b.member.start()
        try members.run(limit: .seconds(10)) {
            members.nodes.contains { $0.member.role == .leader } && a.member.leader != nil
                && a.member.leader == b.member.leader
        }
        let leader = try #require(members.nodes.first { $0.member.role == .leader })
        let follower = try #require(members.nodes.first { $0 !== leader })
        #expect(follower.member.role == .standby && follower.member.fence == nil)
        #expect(follower.member.leader == leader.name)
        #expect(follower.recorded.map { $0.change } == [.leaderChanged(leader.name)])
        #expect(!follower.member.holdsLeadership(now: members.now) && follower.member.leadershipGuard == nil)
        #expect(follower.member.leaseLeft(now: members.now) != nil, "a standby holds a lease too")
        members.run(for: Self.lease * 2)
        #expect(leader.member.role == .leader && follower.member.role == .standby)
        #expect(leader.elections.count == 1 && follower.elections.isEmpty)
        #expect(members.overlaps.isEmpty, "\(members.overlaps)")
    }

    @Test func aResigningLeaderHandsOverWithinASecond() throws {
        let etcd = try EtcdHarness()
        let a = try Node("a", endpoints: etcd.endpoints)
        let b = try Node("b", endpoints: etcd.endpoints)
        let members = Members([a, b])
        a.member.start()
        try members.run(limit: .seconds(10)) { a.member.role == .leader }
        b.member.start()
        try members.run(limit: .seconds(10)) { b.member.leader == "a" }
        let oldFence = try #require(a.member.fence)
        let resignedAt = members.now
        var doneAt: Int64?
        a.member.resign { doneAt = members.now }
        #expect(a.member.role == .standby && !a.member.holdsLeadership(now: members.now), "at once")
        try members.run(limit: .seconds(5)) { b.member.role == .leader && doneAt != nil }
        let elected = try #require(b.elections.first)
        let failover = Self.milliseconds(elected.at - resignedAt)
        print("failover after the leader resigned: \(failover) ms")
        #expect(failover < 1_000)
        #expect(try #require(doneAt) - resignedAt < 1_000_000_000, "done after etcd's reply")
        #expect(elected.fence > oldFence)
        #expect(b.member.leader == "b" && b.member.fence == elected.fence)
        #expect(members.overlaps.isEmpty, "\(members.overlaps)")
        #expect(members.fencesGrow)
        // A resigned member stays out until started again; then it follows b.
        members.run(for: .milliseconds(300))
        #expect(a.member.role == .standby && a.elections.count == 1)
        a.member.start()
        try members.run(limit: .seconds(5)) { a.member.leader == "b" }
        #expect(a.member.role == .standby && b.member.role == .leader)
    }

    @Test func aLeaderWhoseKeepAlivesStopDeposesItselfByItsDeadline() throws {
        let etcd = try EtcdHarness()
        let a = try Node("a", endpoints: etcd.endpoints)
        let b = try Node("b", endpoints: etcd.endpoints)
        let members = Members([a, b])
        a.member.start()
        try members.run(limit: .seconds(10)) { a.member.role == .leader }
        b.member.start()
        try members.run(limit: .seconds(10)) { b.member.leader == "a" }
        let oldFence = try #require(a.member.fence)
        a.member.keepAlivesSuspended = true
        // The last deadline it had (a keep-alive in flight may still move it once).
        var deadline = try #require(a.member.fenceDeadline)
        try members.run(limit: Self.lease * 2) {
            if let current = a.member.fenceDeadline { deadline = current }
            return !a.depositions.isEmpty
        }
        let deposed = try #require(a.depositions.first)
        #expect(deposed.at >= deadline, "not before its deadline")
        #expect(deposed.at - deadline < 250_000_000, "late by \(Self.milliseconds(deposed.at - deadline)) ms")
        #expect(deposed.reason.contains("keep-alive"))
        #expect(a.member.role == .standby && a.member.fence == nil)
        a.member.keepAlivesSuspended = false
        // It revoked its lease on the way out: b leads soon after, with a larger fence.
        try members.run(limit: Self.lease * 2) { b.member.role == .leader && a.member.leader == "b" }
        let elected = try #require(b.elections.first)
        #expect(elected.at >= deadline && elected.fence > oldFence)
        print(
            "failover after a leader's keep-alives stopped: \(Self.milliseconds(elected.at - deadline)) ms after its deadline"
        )
        #expect(members.overlaps.isEmpty, "\(members.overlaps)")
        #expect(members.fencesGrow)
    }

    @Test func aFrozenLeaderIsReplacedAfterItsLeaseAndStandsDownWhenItThaws() throws {
        let etcd = try EtcdHarness()
        let a = try Node("a", endpoints: etcd.endpoints)
        let b = try Node("b", endpoints: etcd.endpoints)
        let members = Members([a, b])
        a.member.start()
        try members.run(limit: .seconds(10)) { a.member.role == .leader }
        b.member.start()
        try members.run(limit: .seconds(10)) { b.member.leader == "a" }
        let oldFence = try #require(a.member.fence)
        a.frozen = true
        let deadline = try #require(a.member.fenceDeadline)
        let lastAcknowledged = deadline - (Self.lease - Self.margin).nanosecondsClamped
        try members.run(limit: Self.lease * 2) { b.member.role == .leader }
        let elected = try #require(b.elections.first)
        // Frozen, a still says leader, but its fence has lapsed by its own clock.
        #expect(a.member.role == .leader && !a.member.holdsLeadership(now: members.now))
        #expect(elected.at >= deadline && elected.fence > oldFence)
        let afterAcknowledged = Self.milliseconds(elected.at - lastAcknowledged)
        print(
            "failover after a frozen leader: \(afterAcknowledged) ms after its last acknowledged keep-alive was sent"
                + " (lease \(Self.lease)), \(Self.milliseconds(elected.at - deadline)) ms after its fence deadline")
        #expect(afterAcknowledged < (Self.lease + .seconds(1)).nanosecondsClamped / 1_000_000)
        // Thawed after twice the lease: deposed at once (its deadline passed), then follows b.
        members.run(for: Self.lease * 2 - .nanoseconds(members.now - lastAcknowledged))
        a.frozen = false
        try members.run(limit: Self.lease * 2) { a.member.role == .standby && a.member.leader == "b" }
        #expect(a.depositions.count == 1)
        #expect(b.member.role == .leader && b.member.fence == elected.fence)
        #expect(members.overlaps.isEmpty, "\(members.overlaps)")
        #expect(members.fencesGrow)
    }

    @Test func losingTheEtcdQuorumDeposesTheLeaderAndNobodyLeadsUntilItIsBack() throws {
        let etcd = try EtcdHarness(members: 3)
        let a = try Node("a", endpoints: etcd.endpoints)
        let b = try Node("b", endpoints: etcd.endpoints)
        let members = Members([a, b])
        a.member.start()
        try members.run(limit: .seconds(10)) { a.member.role == .leader }
        b.member.start()
        try members.run(limit: .seconds(10)) { b.member.leader == "a" }
        let oldFence = try #require(a.member.fence)
        // The member a's calls go to, and one more: no quorum left.
        etcd.pause(0)
        etcd.pause(1)
        var resumed = false
        defer {
            if !resumed {
                etcd.resume(0)
                etcd.resume(1)
            }
        }
        let pausedAt = members.now
        try members.run(limit: Self.lease * 2) { !a.depositions.isEmpty }
        let deposed = try #require(a.depositions.first)
        #expect(deposed.at - pausedAt <= Self.lease.nanosecondsClamped, "deposed within the lease")
        print("quorum lost: the leader deposed itself \(Self.milliseconds(deposed.at - pausedAt)) ms after")
        // Nobody leads while the quorum is gone.
        members.run(for: Self.lease * 2)
        #expect(members.nodes.allSatisfy { $0.member.role == .standby })
        #expect(a.elections.count == 1 && b.elections.isEmpty)
        #expect(!a.unreachableReports.isEmpty && !b.unreachableReports.isEmpty)
        #expect(a.member.leaseLeft(now: members.now) == nil, "no lease without etcd")
        etcd.resume(0)
        etcd.resume(1)
        resumed = true
        let resumedAt = members.now
        try members.run(limit: Self.lease * 5) { members.nodes.contains { $0.member.role == .leader } }
        let leader = try #require(members.nodes.first { $0.member.role == .leader })
        let fence = try #require(leader.member.fence)
        #expect(fence > oldFence)
        print("quorum back: \(leader.name) leads \(Self.milliseconds(members.now - resumedAt)) ms after SIGCONT")
        try members.run(limit: Self.lease * 2) { members.nodes.allSatisfy { $0.member.leader == leader.name } }
        #expect(members.overlaps.isEmpty, "\(members.overlaps)")
        #expect(members.fencesGrow)
    }

    @Test func aFrozenEtcdFollowerCostsTheLeaderNothingAndTheWatchMovesOn() throws {
        let etcd = try EtcdHarness(members: 3)
        var raftLeader: Int?
        let probeEnd = ContinuousClock.now + .seconds(5)
        while raftLeader == nil, ContinuousClock.now < probeEnd {
            raftLeader = etcd.leaderIndex()
            if raftLeader == nil { usleep(50_000) }
        }
        let leaderIndex = try #require(raftLeader, "etcd has a leader")
        // Both members' calls go first to a follower, which then freezes.
        let follower = (leaderIndex + 1) % 3
        let endpoints =
            [etcd.endpoints[follower]]
            + etcd.endpoints.enumerated().filter { $0.offset != follower }.map {
                $0.element
            }
        let a = try Node("a", endpoints: endpoints)
        let b = try Node("b", endpoints: endpoints)
        let members = Members([a, b])
        a.member.start()
        try members.run(limit: .seconds(10)) { a.member.role == .leader }
        b.member.start()
        try members.run(limit: .seconds(10)) { b.member.leader == "a" }
        let fence = try #require(a.member.fence)
        let watches = b.member.watchesStarted
        etcd.pause(follower)
        defer { etcd.resume(follower) }
        members.run(for: Self.lease * 3)
        #expect(b.member.watchesStarted > watches, "b's watch started again after a keep-alive timed out")
        #expect(a.member.role == .leader && a.member.fence == fence && a.depositions.isEmpty)
        #expect(b.member.role == .standby && b.member.leader == "a")
        #expect(a.member.client.preferredEndpoint != 0 && b.member.client.preferredEndpoint != 0)
        // b's watch moved to a member that answers: it sees a resign at once.
        let resignedAt = members.now
        a.member.resign {}
        try members.run(limit: .seconds(5)) { b.member.role == .leader }
        let elected = try #require(b.elections.first)
        print(
            "with a frozen etcd follower: failover after the leader resigned: \(Self.milliseconds(elected.at - resignedAt)) ms"
        )
        #expect(elected.at - resignedAt < 1_000_000_000)
        #expect(elected.fence > fence)
        #expect(members.overlaps.isEmpty, "\(members.overlaps)")
    }

    @Test func aFrozenEtcdLeaderNeverMakesTwoLeadersAndSomeoneLeadsAfterEtcdsElection() throws {
        let etcd = try EtcdHarness(members: 3)
        var raftLeader: Int?
        let probeEnd = ContinuousClock.now + .seconds(5)
        while raftLeader == nil, ContinuousClock.now < probeEnd {
            raftLeader = etcd.leaderIndex()
            if raftLeader == nil { usleep(50_000) }
        }
        let frozen = try #require(raftLeader, "etcd has a leader")
        let endpoints =
            [etcd.endpoints[frozen]]
            + etcd.endpoints.enumerated().filter { $0.offset != frozen }.map {
                $0.element
            }
        let a = try Node("a", endpoints: endpoints)
        let b = try Node("b", endpoints: endpoints)
        let members = Members([a, b])
        a.member.start()
        try members.run(limit: .seconds(10)) { a.member.role == .leader }
        b.member.start()
        try members.run(limit: .seconds(10)) { b.member.leader == "a" }
        let fence = try #require(a.member.fence)
        etcd.pause(frozen)
        defer { etcd.resume(frozen) }
        let pausedAt = members.now
        members.run(for: Self.lease * 3)
        let leader = try #require(members.leaders.first, "someone leads on the two members left")
        let survived = a.depositions.isEmpty
        print(
            "a frozen etcd leader: \(survived ? "the leader kept leading" : "the leader was deposed")"
                + (survived
                    ? ""
                    : ", \(leader.name) leads since \(Self.milliseconds((leader.elections.last?.at ?? 0) - pausedAt)) ms after the freeze")
        )
        #expect(survived ? leader === a && a.member.fence == fence : (leader.member.fence ?? 0) > fence)
        #expect(members.overlaps.isEmpty, "\(members.overlaps)")
        #expect(members.fencesGrow)
    }

    @Test func aMemberWithoutEtcdStaysStandbyAndLeadsOnceEtcdStarts() throws {
        let port = try EtcdHarness.freePort()
        let a = try Node("a", endpoints: ["http://127.0.0.1:\(port)"])
        let members = Members([a])
        a.member.start()
        try members.run(limit: .seconds(5)) { !a.unreachableReports.isEmpty }
        #expect(a.unreachableReports.first?.contains("cannot reach etcd") == true, "\(a.unreachableReports)")
        members.run(for: .seconds(1))
        #expect(a.member.role == .standby && a.member.leader == nil && a.elections.isEmpty)
        #expect(a.member.leaseLeft(now: members.now) == nil && !a.member.holdsLeadership(now: members.now))
        #expect(a.unreachableReports.count == 1, "once per outage: \(a.unreachableReports)")
        let etcd = try EtcdHarness(clientPorts: [port])
        let upAt = members.now
        try members.run(limit: .seconds(10)) { a.member.role == .leader }
        let waited = Self.milliseconds(members.now - upAt)
        print("etcd up: the member leads \(waited) ms after etcd answered its health check")
        // At most one backoff (lease / 2) and a few round trips.
        #expect(waited < (Self.lease / 2).nanosecondsClamped / 1_000_000 + 500)
        #expect(a.member.leader == "a" && etcd.endpoints == ["http://127.0.0.1:\(port)"])
    }
}
