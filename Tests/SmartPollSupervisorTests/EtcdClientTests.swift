import Glibc
import SmartPollEtcdSupport
import Testing

@testable import SmartPollSupervisor

/// The etcd client against a real etcd, with a real ``EventLoop`` run on the test's thread.
/// Serialized: each test starts its own etcd, and the timing assertions want the machine.
@Suite(.serialized) struct EtcdClientTests {
    private static func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    /// Runs the loop until a callback stops it; throws after `limit`.
    private static func run(_ loop: EventLoop, limit: Duration = .seconds(10)) throws {
        var timedOut = false
        let watchdog = loop.schedule(after: limit) {
            timedOut = true
            loop.stop()
        }
        try loop.run()
        loop.cancel(watchdog)
        if timedOut { throw HarnessFailure("the loop was not stopped within \(limit)") }
    }

    /// Starts a call and runs the loop until its completion.
    private static func complete<Reply>(
        _ loop: EventLoop, limit: Duration = .seconds(10),
        _ start: (@escaping (Result<Reply, EtcdError>) -> Void) -> Void
    ) throws -> Result<Reply, EtcdError> {
        var outcome: Result<Reply, EtcdError>?
        start {
            outcome = $0
            loop.stop()
        }
        try run(loop, limit: limit)
        guard let outcome else { throw HarnessFailure("no completion") }
        return outcome
    }

    @Test func putThenRangeByPrefixInCreationOrder() throws {
        let etcd = try EtcdHarness()
        let loop = try EventLoop()
        let client = try EtcdClient(loop: loop, endpoints: etcd.endpoints)
        let second = try Self.complete(loop) { client.put(Self.bytes("jobs/b"), Self.bytes("two"), $0) }.get()
        let first = try Self.complete(loop) { client.put(Self.bytes("jobs/a"), [0, 255, 10], $0) }.get()
        _ = try Self.complete(loop) { client.put(Self.bytes("jobt"), Self.bytes("outside"), $0) }.get()
        #expect(first.revision == second.revision + 1)
        var request = Etcd.RangeRequest(keys: .prefix(Self.bytes("jobs/")))
        request.sortByCreateRevision = true
        let range = try Self.complete(loop) { client.range(request, $0) }.get()
        #expect(range.count == 2)
        #expect(range.keyValues.map(\.key) == [Self.bytes("jobs/b"), Self.bytes("jobs/a")])
        #expect(range.keyValues.map(\.value) == [Self.bytes("two"), [0, 255, 10]])
        #expect(range.keyValues[1].createRevision == first.revision)
        #expect(range.keyValues[1].version == 1)
        #expect(range.revision == first.revision + 1)
        request.limit = 1
        let limited = try Self.complete(loop) { client.range(request, $0) }.get()
        #expect(limited.keyValues.count == 1 && limited.more && limited.count == 2)
        let none = try Self.complete(loop) { client.range(Etcd.RangeRequest(keys: .key(Self.bytes("absent"))), $0) }
            .get()
        #expect(none.keyValues.isEmpty && none.count == 0)
        let deleted = try Self.complete(loop) { client.deleteRange(.prefix(Self.bytes("jobs/")), previous: true, $0) }
            .get()
        #expect(deleted.deleted == 2 && deleted.previous.count == 2)
    }

    @Test func txnComparesCreateRevisionValueAndModRevision() throws {
        let etcd = try EtcdHarness()
        let loop = try EventLoop()
        let client = try EtcdClient(loop: loop, endpoints: etcd.endpoints)
        let key = Self.bytes("leader")
        let absent = Etcd.Compare(key: key, target: .createRevision(0))
        let created = try Self.complete(loop) {
            client.txn(
                compare: [absent], success: [.put(key: key, value: Self.bytes("a"), lease: 0)],
                failure: [.range(Etcd.RangeRequest(keys: .key(key)))], $0)
        }.get()
        #expect(created.succeeded)
        guard case .put(let put)? = created.responses.first else {
            Issue.record("no put response: \(created.responses)")
            return
        }
        #expect(put.revision == created.revision)
        let refused = try Self.complete(loop) {
            client.txn(
                compare: [absent], success: [.put(key: key, value: Self.bytes("b"), lease: 0)],
                failure: [.range(Etcd.RangeRequest(keys: .key(key)))], $0)
        }.get()
        #expect(!refused.succeeded)
        guard case .range(let current)? = refused.responses.first else {
            Issue.record("no range response: \(refused.responses)")
            return
        }
        #expect(current.keyValues.first?.value == Self.bytes("a"))
        let modRevision = current.keyValues.first?.modRevision ?? 0
        let guarded = try Self.complete(loop) {
            client.txn(
                compare: [
                    Etcd.Compare(key: key, target: .value(Self.bytes("a"))),
                    Etcd.Compare(key: key, target: .modRevision(modRevision)),
                    Etcd.Compare(key: key, target: .version(1)),
                ],
                success: [.delete(.key(key))], $0)
        }.get()
        #expect(guarded.succeeded)
        guard case .delete(let delete)? = guarded.responses.first else {
            Issue.record("no delete response: \(guarded.responses)")
            return
        }
        #expect(delete.deleted == 1)
        let stale = try Self.complete(loop) {
            client.txn(compare: [Etcd.Compare(key: key, target: .modRevision(modRevision))], success: [], $0)
        }.get()
        #expect(!stale.succeeded, "the key is gone: its mod revision no longer matches")
    }

    @Test func aLeaseKeptAliveHoldsItsKeyAndExpiresWithoutKeepAlives() throws {
        let etcd = try EtcdHarness()
        let loop = try EventLoop()
        let client = try EtcdClient(loop: loop, endpoints: etcd.endpoints)
        let lease = try Self.complete(loop) { client.leaseGrant(ttl: 2, $0) }.get()
        #expect(lease.id != 0 && lease.ttl == 2)
        let key = Self.bytes("held")
        _ = try Self.complete(loop) { client.put(key, Self.bytes("x"), lease: lease.id, $0) }.get()
        // Kept alive every 500 ms for 3 s, past the TTL: the key stays.
        var renewals: [Etcd.LeaseReply] = []
        var failures: [EtcdError] = []
        func renew() {
            client.leaseKeepAlive(lease.id) { result in
                switch result {
                case .success(let reply): renewals.append(reply)
                case .failure(let error): failures.append(error)
                }
                if renewals.count + failures.count == 6 {
                    loop.stop()
                } else {
                    loop.schedule(after: .milliseconds(500)) { renew() }
                }
            }
        }
        renew()
        try Self.run(loop)
        #expect(failures.isEmpty)
        #expect(renewals.count == 6 && renewals.allSatisfy { $0.id == lease.id && $0.ttl == 2 })
        let kept = try Self.complete(loop) { client.range(Etcd.RangeRequest(keys: .key(key)), $0) }.get()
        #expect(kept.keyValues.first?.lease == lease.id)
        // Then no more keep-alives: gone within the TTL and etcd's expiry check.
        let stoppedAt = ContinuousClock.now
        var gone = false
        func probe() {
            client.range(Etcd.RangeRequest(keys: .key(key))) { result in
                if case .success(let reply) = result, reply.count == 0 {
                    gone = true
                    loop.stop()
                } else {
                    loop.schedule(after: .milliseconds(100)) { probe() }
                }
            }
        }
        probe()
        try Self.run(loop, limit: .seconds(6))
        #expect(gone)
        #expect(ContinuousClock.now - stoppedAt >= .milliseconds(1_500), "not before the TTL")
        let expired = try Self.complete(loop) { client.leaseKeepAlive(lease.id, $0) }.get()
        #expect(expired.ttl == 0, "a keep-alive of an expired lease: TTL 0")
    }

    @Test func revokingALeaseDeletesItsKeys() throws {
        let etcd = try EtcdHarness()
        let loop = try EventLoop()
        let client = try EtcdClient(loop: loop, endpoints: etcd.endpoints)
        let lease = try Self.complete(loop) { client.leaseGrant(ttl: 30, $0) }.get()
        let key = Self.bytes("owned")
        _ = try Self.complete(loop) { client.put(key, Self.bytes("x"), lease: lease.id, $0) }.get()
        let revoked = try Self.complete(loop) { client.leaseRevoke(lease.id, $0) }.get()
        let after = try Self.complete(loop) { client.range(Etcd.RangeRequest(keys: .key(key)), $0) }.get()
        #expect(after.count == 0)
        #expect(after.revision == revoked.revision)
        let again = Self.failure(try Self.complete(loop) { client.leaseRevoke(lease.id, $0) })
        guard case .gateway(let code, let message, let status)? = again else {
            Issue.record("revoking a revoked lease: \(String(describing: again))")
            return
        }
        #expect(code == EtcdError.codeNotFound && status == 404 && message.contains("lease not found"))
    }

    private static func failure<Reply>(_ result: Result<Reply, EtcdError>) -> EtcdError? {
        if case .failure(let error) = result { return error }
        return nil
    }

    @Test func aWatchSeesAPutAndADeleteAndNothingAfterCancel() throws {
        let etcd = try EtcdHarness()
        let loop = try EventLoop()
        let client = try EtcdClient(loop: loop, endpoints: etcd.endpoints)
        var messages: [Etcd.WatchMessage] = []
        var errors: [EtcdError] = []
        let outside = try Self.complete(loop) { client.put(Self.bytes("before/1"), Self.bytes("old"), $0) }.get()
        // From a revision in the past: the put before the watch is replayed first.
        let watch = client.watch(.prefix(Self.bytes("before/")), startRevision: outside.revision) { result in
            switch result {
            case .success(let message):
                messages.append(message)
                if message.created {
                    client.put(Self.bytes("before/2"), Self.bytes("new")) { _ in
                        client.deleteRange(.key(Self.bytes("before/1"))) { _ in }
                    }
                }
                if messages.flatMap(\.events).count == 3 { loop.stop() }
            case .failure(let error):
                errors.append(error)
                loop.stop()
            }
        }
        try Self.run(loop)
        #expect(errors.isEmpty)
        #expect(messages.first?.created == true)
        let events = messages.flatMap(\.events)
        #expect(events.map(\.kind) == [.put, .put, .delete])
        #expect(events.map(\.keyValue.key) == [Self.bytes("before/1"), Self.bytes("before/2"), Self.bytes("before/1")])
        #expect(events[1].keyValue.value == Self.bytes("new"))
        #expect(events[2].keyValue.modRevision == messages.last?.revision)
        watch.cancel()
        let count = messages.count
        _ = try Self.complete(loop) { client.put(Self.bytes("before/3"), Self.bytes("unseen"), $0) }.get()
        let settled = try Self.complete(loop) {
            client.range(Etcd.RangeRequest(keys: .prefix(Self.bytes("before/"))), $0)
        }
        #expect((try? settled.get().count) == 2)
        #expect(messages.count == count && errors.isEmpty, "nothing after cancel")
    }

    @Test func aWatchFromACompactedRevisionIsCanceled() throws {
        let etcd = try EtcdHarness()
        let loop = try EventLoop()
        let client = try EtcdClient(loop: loop, endpoints: etcd.endpoints)
        _ = try Self.complete(loop) { client.put(Self.bytes("k"), Self.bytes("1"), $0) }.get()
        let latest = try Self.complete(loop) { client.put(Self.bytes("k"), Self.bytes("2"), $0) }.get()
        _ = try Self.complete(loop) { client.compact(latest.revision, $0) }.get()
        let old = Self.failure(try Self.complete(loop) { client.compact(latest.revision - 1, $0) })
        #expect(
            old
                == .gateway(
                    code: EtcdError.codeOutOfRange, message: "etcdserver: mvcc: required revision has been compacted",
                    status: 400))
        var canceled: Etcd.WatchMessage?
        let watch = client.watch(.key(Self.bytes("k")), startRevision: 1) { result in
            if case .success(let message) = result, message.canceled {
                canceled = message
                loop.stop()
            }
        }
        try Self.run(loop)
        watch.cancel()
        #expect(canceled?.compactRevision == latest.revision)
    }

    @Test func aDeadFirstEndpointIsSkipped() throws {
        let etcd = try EtcdHarness()
        let loop = try EventLoop()
        let dead = "http://127.0.0.1:\(try EtcdHarness.freePort())"
        let client = try EtcdClient(loop: loop, endpoints: [dead] + etcd.endpoints)
        let put = try Self.complete(loop) { client.put(Self.bytes("k"), Self.bytes("v"), $0) }.get()
        #expect(put.revision > 1)
        #expect(client.preferredEndpoint == 1, "the next call starts where the last one worked")
        var watched: Etcd.WatchMessage?
        let deadClient = try EtcdClient(loop: loop, endpoints: [dead] + etcd.endpoints)
        let watch = deadClient.watch(.key(Self.bytes("k"))) { result in
            if case .success(let message) = result {
                watched = message
                loop.stop()
            }
        }
        try Self.run(loop)
        watch.cancel()
        #expect(watched?.created == true)
        let onlyDead = try EtcdClient(loop: loop, endpoints: [dead])
        let refused = Self.failure(try Self.complete(loop) { onlyDead.put(Self.bytes("k"), Self.bytes("v"), $0) })
        guard case .connection? = refused else {
            Issue.record("a dead endpoint: \(String(describing: refused))")
            return
        }
    }

    @Test func aFrozenEtcdTimesOutWhileTheLoopServesItsTimers() throws {
        let etcd = try EtcdHarness()
        let loop = try EventLoop()
        let timeout = Duration.milliseconds(800)
        let client = try EtcdClient(loop: loop, endpoints: etcd.endpoints, requestTimeout: timeout)
        // A connection in the cache, then a frozen server behind it.
        _ = try Self.complete(loop) { client.put(Self.bytes("k"), Self.bytes("v"), $0) }.get()
        etcd.pause(0)
        defer { etcd.resume(0) }
        var ticks = 0
        var ticking: EventLoop.TimerID?
        func tick() {
            ticks += 1
            ticking = loop.schedule(after: .milliseconds(20)) { tick() }
        }
        tick()
        // The ticking timer holds the loop: cancelled at the end, or both leak (LeakSanitizer).
        defer { ticking.map(loop.cancel) }
        let started = ContinuousClock.now
        let result = try Self.complete(loop, limit: .seconds(5)) { client.put(Self.bytes("k"), Self.bytes("w"), $0) }
        let elapsed = ContinuousClock.now - started
        #expect(Self.failure(result) == .timeout)
        #expect(elapsed >= timeout - .milliseconds(50) && elapsed < timeout + .seconds(1))
        // 40 ticks in 800 ms; a debug build on a busy machine keeps at least a quarter.
        #expect(ticks >= 10, "the loop kept serving timers: \(ticks) ticks")
        etcd.resume(0)
        let again = try Self.complete(loop) { client.put(Self.bytes("k"), Self.bytes("x"), $0) }
        #expect((try? again.get()) != nil, "thawed, etcd answers again")
    }

    @Test func aThreeMemberClusterServesThroughAnotherMemberWhenOneFreezes() throws {
        let etcd = try EtcdHarness(members: 3)
        let loop = try EventLoop()
        let timeout = Duration.milliseconds(800)
        let client = try EtcdClient(loop: loop, endpoints: etcd.endpoints, requestTimeout: timeout)
        let reader = try EtcdClient(loop: loop, endpoints: Array(etcd.endpoints.reversed()))
        let written = try Self.complete(loop) { client.put(Self.bytes("shared"), Self.bytes("1"), $0) }.get()
        let read = try Self.complete(loop) { reader.range(Etcd.RangeRequest(keys: .key(Self.bytes("shared"))), $0) }
            .get()
        #expect(read.keyValues.first?.value == Self.bytes("1"), "written through member 0, read through member 2")
        #expect(read.revision >= written.revision)
        #expect(client.preferredEndpoint == 0)
        etcd.pause(0)
        defer { etcd.resume(0) }
        let frozen = try Self.complete(loop) { client.put(Self.bytes("shared"), Self.bytes("2"), $0) }
        #expect(Self.failure(frozen) == .timeout)
        #expect(client.preferredEndpoint == 1, "the next call goes to another member")
        // Two of three members still make a quorum, whichever of them leads: when the frozen one
        // led etcd, the others elect a leader first (the harness's election timeout is 500 ms),
        // and a call meanwhile may time out.
        var after: Result<Etcd.PutReply, EtcdError> = .failure(.timeout)
        for _ in 0..<5 {
            after = try Self.complete(loop) { client.put(Self.bytes("shared"), Self.bytes("3"), $0) }
            if (try? after.get()) != nil { break }
        }
        #expect((try? after.get().revision) ?? 0 > written.revision)
    }

    @Test func aWatchEndsWithAnErrorWhenItsMemberDies() throws {
        let etcd = try EtcdHarness()
        let loop = try EventLoop()
        let client = try EtcdClient(loop: loop, endpoints: etcd.endpoints)
        var created = false
        var ending: EtcdError?
        var endings = 0
        let watch = client.watch(.prefix([])) { result in
            switch result {
            case .success(let message):
                created = created || message.created
                if message.created { loop.stop() }
            case .failure(let error):
                ending = error
                endings += 1
                loop.stop()
            }
        }
        try Self.run(loop)
        #expect(created)
        etcd.kill(0)
        try Self.run(loop, limit: .seconds(5))
        #expect(ending == .streamEnded || ending.map { if case .connection = $0 { true } else { false } } == true)
        // Nothing more: the watch is over, and cancelling it now does nothing.
        watch.cancel()
        loop.schedule(after: .milliseconds(100)) { loop.stop() }
        try Self.run(loop)
        #expect(endings == 1)
    }

    @Test func manyConcurrentCallsAllCompleteAndNeverInsideTheCall() throws {
        let etcd = try EtcdHarness()
        let loop = try EventLoop()
        let client = try EtcdClient(loop: loop, endpoints: etcd.endpoints)
        // More than CurlMultiDriver.completionsPerTurn at once: some carried to the next turn.
        let total = 3 * CurlMultiDriver.completionsPerTurn
        var revisions: Set<Int64> = []
        var failures: [EtcdError] = []
        var inside = false
        for index in 0..<total {
            inside = true
            client.put(Self.bytes("concurrent/\(index)"), Self.bytes("v")) { result in
                #expect(!inside, "a completion called from inside put")
                switch result {
                case .success(let reply): revisions.insert(reply.revision)
                case .failure(let error): failures.append(error)
                }
                if revisions.count + failures.count == total { loop.stop() }
            }
            inside = false
        }
        try Self.run(loop, limit: .seconds(15))
        #expect(failures.isEmpty, "\(failures.first.map(String.init(describing:)) ?? "")")
        #expect(revisions.count == total, "one revision a put")
        // A URL curl refuses fails on a later turn, all of them in the same action of curl: the
        // completions beyond one turn's share wait for the next turn, after a due timer.
        let unsupported = try EtcdClient(loop: loop, endpoints: ["nope://127.0.0.1:1"])
        var refusals: [EtcdError] = []
        var timerFiredAfter: Int?
        for _ in 0..<total {
            inside = true
            unsupported.range(Etcd.RangeRequest(keys: .key([1]))) { result in
                #expect(!inside)
                if let error = Self.failure(result) { refusals.append(error) }
                if refusals.count == 1 {
                    loop.schedule(at: loop.now) { timerFiredAfter = refusals.count }
                }
                if refusals.count == total { loop.stop() }
            }
            inside = false
        }
        try Self.run(loop)
        #expect(refusals.count == total)
        #expect(refusals.allSatisfy { if case .connection = $0 { true } else { false } }, "\(refusals.first!)")
        // Work carried over from a timer's callback runs at the end of that wake-up; the share
        // after it waits for the next wait, which finds the timer due.
        #expect(
            timerFiredAfter.map { $0 < total && $0 % CurlMultiDriver.completionsPerTurn == 0 } == true,
            "a due timer between two turns' shares: fired after \(String(describing: timerFiredAfter))")
    }

    @Test func sequentialPutsReuseTheConnection() throws {
        let etcd = try EtcdHarness()
        let loop = try EventLoop()
        let client = try EtcdClient(loop: loop, endpoints: etcd.endpoints)
        let total = 1_000
        var done = 0
        var failures: [EtcdError] = []
        let value = [UInt8](repeating: 120, count: 64)
        let started = ContinuousClock.now
        func next() {
            client.put(Self.bytes("bench/\(done % 10)"), value) { result in
                if case .failure(let error) = result { failures.append(error) }
                done += 1
                if done == total { loop.stop() } else { next() }
            }
        }
        next()
        try Self.run(loop, limit: .seconds(30))
        let elapsed = ContinuousClock.now - started
        let microseconds = elapsed.components.seconds * 1_000_000 + elapsed.components.attoseconds / 1_000_000_000_000
        print("etcd put round trip: \(microseconds / Int64(total)) µs on average over \(total) sequential puts")
        #expect(failures.isEmpty)
        #expect(done == total)
        #expect(client.connectionsOpened == 1, "one keep-alive connection for every put")
        // A responsiveness bound, not a speed target: a new connection per put would still pass.
        #expect(elapsed < .seconds(20))
    }
}
