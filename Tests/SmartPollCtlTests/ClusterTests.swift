import Foundation
import Glibc
import SmartPollEtcdSupport
import SmartPollProtocol
import Testing

/// Three real supervisors of one cluster on a real 3-member etcd (SPEC section 9, issue 16's
/// tests 1 to 6): one leads, the others refuse changes naming it; a leader killed, frozen,
/// cut off from etcd's quorum or shut down is replaced, and no two runs of a task ever overlap.
@Suite(.endToEnd) struct ClusterTests {
    @Test func exactlyOneLeadsAndStandbysRefuseNamingIt() throws {
        let rig = try ClusterRig()
        let leader = try rig.waitForOneLeader()
        for node in rig.nodes where node != leader {
            let cluster = try rig.cluster(of: node)
            #expect(cluster.role == "standby" && cluster.leader == leader, "\(node): \(cluster)")
            #expect(try rig.loopState(of: node) == "standby")
            let refused = try rig.members[node]!.ctl("schedule", "later", "1h")
            #expect(refused.status == 1)
            #expect(refused.error.contains("not_leader") && refused.error.contains(leader), "\(refused.error)")
            let reply = try rig.members[node]!.call(.run(task: "tick", wait: false))
            #expect(reply.body == .failure(.notLeader(failureMessage(reply), leader: leader)))
            // Reads of the shared state come from etcd: the leader's runs are counted there too.
            #expect(
                try rig.members[node]!.ctl("status").output.hasPrefix(
                    "cluster: standby (node \(node)), leader \(leader)"))
            #expect(try rig.members[node]!.ctl("ping").status == 0)
            // metrics are about the member itself: its loop is standby.
            let metrics = try rig.members[node]!.ctl("metrics").output
            #expect(metrics.contains("\nsmartpoll_loop_state{state=\"standby\"} 1\n"), "\(metrics)")
            #expect(metrics.contains("\nsmartpoll_loop_state{state=\"running\"} 0\n"))
        }
        let table = try rig.members[leader]!.ctl("status").output
        #expect(table.hasPrefix("cluster: leader (node \(leader)), fence "), "\(table)")
        // Loaded for the etcd client (never linked: a supervisor without a cluster maps none of it).
        #expect(try rig.members[leader]!.hasMapped("libcurl.so"))
        let fence = try rig.cluster(of: leader)
        #expect(fence.role == "leader" && fence.leader == leader)
        #expect((fence.leaseLeft ?? 0) > 0)
        try rig.waitForRuns(atLeast: 3)
        let leaderMetrics = try rig.members[leader]!.ctl("metrics").output
        #expect(leaderMetrics.contains("\nsmartpoll_loop_state{state=\"running\"} 1\n"), "\(leaderMetrics)")
        try rig.checkRuns()
    }

    @Test func aKilledLeaderIsReplacedWithEveryAcknowledgedResultAndSchedule() throws {
        let rig = try ClusterRig()
        let leader = try rig.waitForOneLeader()
        let harness = rig.members[leader]!
        // Acknowledged changes: a schedule, and a run's result (run --wait answers once etcd
        // holds it).
        #expect(try harness.ctl("schedule", "later", "1h").status == 0)
        let scheduled = try rig.next(of: "later", on: leader)
        // A task nothing else runs: its result after the failover must be this very run's.
        let ran = try json(try harness.ctl("--json", "run", "--wait", "counter").output)
        let acknowledgedRun = try #require(ran["run"]?.int64Value.map(Int.init))
        let survivors = rig.nodes.filter { $0 != leader }
        let watch = try rig.members[survivors[0]]!.watch()
        let killed = Date()
        harness.signal(SIGKILL)
        _ = try harness.waitForExit()
        let next = try rig.waitForOneLeader(among: survivors, within: .seconds(3 + 2 * Sanitizer.slowdown))
        let elapsed = Date().timeIntervalSince(killed)
        print("cluster: leader \(leader) killed; \(next) leads after \(String(format: "%.2f", elapsed)) s")
        _ = try watch.until { event in
            if case .leaderChanged(let node, _) = event.kind { return node == next }
            return false
        }
        #expect(try rig.next(of: "later", on: next) == scheduled, "the acknowledged schedule survives")
        let result = try json(try rig.members[next]!.ctl("--json", "result", "counter").output)
        #expect(
            result["run"]?.int64Value.map(Int.init) == acknowledgedRun, "the acknowledged result survives: \(result)")
        #expect(try rig.members[next]!.ctl("result", "counter").output == "\(acknowledgedRun)\n")
        // The overdue tick starts at once on the new leader.
        try rig.waitForRuns(on: next, atLeast: 1, within: .seconds(2 * Sanitizer.slowdown))
        try rig.checkRuns()
    }

    @Test func aStoppedLeaderIsReplacedAndStartsNothingWhenItGoesOn() throws {
        let rig = try ClusterRig()
        let leader = try rig.waitForOneLeader()
        let harness = rig.members[leader]!
        try rig.waitForRuns(on: leader, atLeast: 1, within: .seconds(5))
        let stopped = Date()
        harness.signal(SIGSTOP)
        let survivors = rig.nodes.filter { $0 != leader }
        let next = try rig.waitForOneLeader(among: survivors, within: .seconds(4 + 2 * Sanitizer.slowdown))
        // The freeze lasts twice the lease in all.
        Thread.sleep(forTimeInterval: max(0, 4 - Date().timeIntervalSince(stopped)))
        let resumed = Rig.nanoseconds()
        harness.signal(SIGCONT)
        // It finds its fence lapsed: standby, and no run of it starts from now on.
        try rig.eventually(within: .seconds(3)) { try rig.loopState(of: leader) == "standby" }
        try rig.waitForRuns(on: next, atLeast: 3, within: .seconds(5))
        let late = try rig.runs().filter { $0.node == leader && $0.start >= resumed }
        #expect(late.isEmpty, "the old leader started runs after it resumed: \(late)")
        #expect(try rig.cluster(of: leader).leader == next)
        try rig.checkRuns()
    }

    @Test func losingEtcdsQuorumStopsEveryRunUntilItComesBack() throws {
        let rig = try ClusterRig()
        let leader = try rig.waitForOneLeader()
        try rig.waitForRuns(on: leader, atLeast: 1, within: .seconds(5))
        let watch = try rig.members[leader]!.watch()
        rig.etcd.pause(1)
        rig.etcd.pause(2)
        let cut = Rig.nanoseconds()
        // Within the lease the leader stands down, and says so.
        try watch.until { event in
            if case .leaderChanged(_, .standby) = event.kind { return true }
            return false
        }
        let steppedDown = Rig.nanoseconds()
        print("cluster: quorum lost; the leader stood down after \((steppedDown - cut) / 1_000_000) ms")
        #expect(steppedDown - cut < 2_000_000_000 * Int64(Sanitizer.slowdown), "the lease is 2 s")
        #expect(try rig.loopState(of: leader) == "standby")
        // No run starts anywhere while etcd has no quorum.
        Thread.sleep(forTimeInterval: 3)
        let during = try rig.runs().filter { $0.start > steppedDown }
        #expect(during.isEmpty, "runs started without a quorum: \(during)")
        rig.etcd.resume(1)
        rig.etcd.resume(2)
        let next = try rig.waitForOneLeader(within: .seconds(10))
        try rig.waitForRuns(on: next, atLeast: 2, within: .seconds(5), after: steppedDown)
        try rig.checkRuns()
    }

    @Test func aLeaderThatShutsDownHandsOverWithinASecond() throws {
        let rig = try ClusterRig()
        let leader = try rig.waitForOneLeader()
        let survivors = rig.nodes.filter { $0 != leader }
        let watch = try rig.members[survivors[0]]!.watch()
        let harness = rig.members[leader]!
        let shutdown = Date()
        harness.signal(SIGTERM)
        // A survivor hears of the new leader: the old one resigned as it shut down.
        let events = try watch.until { event in
            if case .leaderChanged(let leading, _) = event.kind { return leading != leader && leading != nil }
            return false
        }
        let handover = Date().timeIntervalSince(shutdown)
        var next: String?
        if case .leaderChanged(let leading, _) = events.last?.kind { next = leading }
        #expect(try harness.waitForExit() == 0)
        print(
            "cluster: leader \(leader) shut down; \(next ?? "?") leads \(String(format: "%.2f", handover)) s after SIGTERM"
        )
        #expect(handover < 1.0 * Double(Sanitizer.slowdown), "handover took \(handover) s")
        let leading = try #require(next)
        #expect(try rig.waitForOneLeader(among: survivors, within: .seconds(2)) == leading)
        try rig.checkRuns()
    }

    private func failureMessage(_ reply: Reply) -> String {
        if case .failure(let error) = reply.body { return error.message }
        return ""
    }
}

/// Clock readings comparable with the runs' `date +%s%N`.
private enum Rig {
    static func nanoseconds() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
    }
}

/// One cluster for a test: a 3-member etcd, three supervisors (node-a, node-b, node-c) with
/// a 2 s lease, and a task `tick` every 300 ms that appends `node run start end fence` to a
/// file they share (a run ended by SIGTERM writes its end as it goes; one killed outright writes
/// none: it ran at most its 100 ms).
private final class ClusterRig {
    struct Run: CustomStringConvertible {
        var node: String
        var run: Int
        var start: Int64
        var end: Int64?
        var fence: Int64
        var description: String { "\(node) run \(run) [\(start), \(end.map(String.init) ?? "killed")] fence \(fence)" }
    }

    let etcd: EtcdHarness
    let nodes = ["node-a", "node-b", "node-c"]
    let folder: String
    let name = "e2e-\(UUID().uuidString.prefix(8))"
    var members: [String: SupervisorHarness] = [:]
    var runsFile: String { folder + "/runs" }

    init() throws {
        etcd = try EtcdHarness(members: 3)
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("smartpoll-cluster-\(name)").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        for node in nodes { members[node] = try SupervisorHarness(configuration(node)) }
    }

    deinit {
        for harness in members.values where harness.isRunning {
            harness.signal(SIGCONT)
            harness.signal(SIGKILL)
        }
        try? FileManager.default.removeItem(atPath: folder)
    }

    func configuration(_ node: String) -> String {
        let endpoints = etcd.endpoints.map { "\"\($0)\"" }.joined(separator: ", ")
        let script =
            #"s=$(date +%s%N); echo "$NODE $SMARTPOLL_RUN $s - $SMARTPOLL_FENCE" >> "$RUNS"; "#
            + #"end() { e=$(date +%s%N); echo "$NODE $SMARTPOLL_RUN $s $e $SMARTPOLL_FENCE" >> "$RUNS"; }; "#
            + #"trap 'end; exit 143' TERM; sleep 0.1; end; echo "$e""#
        return """
            {"cluster": {"etcd": [\(endpoints)], "name": "\(name)", "node": "\(node)", "lease": "2s"},
             "tasks": {
               "tick": {"command": ["/bin/sh", "-c", \(JSONValue.string(script).serialized())], "every": "300ms",
                        "env": {"NODE": "\(node)", "RUNS": "\(runsFile)"}},
               "later": {"command": ["true"], "start": null},
               "counter": {"command": ["/bin/sh", "-c", "echo \\"$SMARTPOLL_RUN\\""], "start": null}}}
            """
    }

    func status(of node: String) throws -> JSONObject {
        try json(try members[node]!.ctl("--json", "status").output)
    }

    func loopState(of node: String) throws -> String? {
        guard case .object(let loop)? = try status(of: node)["loop"] else { return nil }
        return loop["state"]?.stringValue
    }

    func cluster(of node: String) throws -> (role: String?, leader: String?, leaseLeft: Int?) {
        guard case .object(let cluster)? = try status(of: node)["cluster"] else {
            throw HarnessError("\(node): no cluster in status")
        }
        return (
            cluster["role"]?.stringValue, cluster["leader"]?.stringValue,
            cluster["lease_left_ms"]?.int64Value.map(Int.init)
        )
    }

    /// When `task` is next due on `node`, as `status` shows it.
    func next(of task: String, on node: String) throws -> String? {
        let row = try members[node]!.statusRow(task)
        return row["next"]?.stringValue
    }

    /// Waits until exactly one of `among` leads with its loop running, the others agreeing.
    @discardableResult
    func waitForOneLeader(among candidates: [String]? = nil, within limit: Duration = .seconds(10)) throws -> String {
        let candidates = candidates ?? nodes
        var found: String?
        try eventually(within: limit) {
            var leaders: [String] = []
            var named: Set<String?> = []
            for node in candidates {
                let cluster = try cluster(of: node)
                named.insert(cluster.leader)
                if cluster.role == "leader", try loopState(of: node) == "running" { leaders.append(node) }
            }
            guard leaders.count == 1, named == [leaders[0]] else { return false }
            found = leaders[0]
            return true
        }
        return found!
    }

    /// Polls `condition` (the state of other processes) until it holds or `limit` passes.
    func eventually(within limit: Duration, _ condition: () throws -> Bool) throws {
        let deadline = ContinuousClock.now + limit * Sanitizer.slowdown
        while true {
            if try condition() { return }
            guard ContinuousClock.now < deadline else {
                let logs = members.map { "== \($0.key)\n\($0.value.logText.suffix(3000))" }.joined(separator: "\n")
                throw HarnessError("not within \(limit):\n\(logs)")
            }
            usleep(50_000)
        }
    }

    /// Every run so far, as the runs wrote them (a start line, then an end line).
    func runs() throws -> [Run] {
        let text = (try? String(contentsOfFile: runsFile, encoding: .utf8)) ?? ""
        var runs: [String: Run] = [:]
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ").map(String.init)
            guard fields.count == 5, let run = Int(fields[1]), let start = Int64(fields[2]),
                let fence = Int64(fields[4])
            else { throw HarnessError("a malformed run line: \(line)") }
            let key = "\(fields[0]) \(run)"
            runs[key] = Run(
                node: fields[0], run: run, start: start, end: Int64(fields[3]) ?? runs[key]?.end, fence: fence)
        }
        return runs.values.sorted { $0.start < $1.start }
    }

    func waitForRuns(
        on node: String? = nil, atLeast count: Int, within limit: Duration = .seconds(10), after: Int64 = .min
    ) throws {
        try eventually(within: limit) {
            try runs().filter { (node == nil || $0.node == node) && $0.start > after && $0.end != nil }.count >= count
        }
    }

    /// Issue 16's test 6: no two runs of `tick` overlap in time across members, and fences never
    /// go down in the order runs started.
    func checkRuns() throws {
        let runs = try runs()
        #expect(!runs.isEmpty)
        for (earlier, later) in zip(runs, runs.dropFirst()) {
            // A run killed outright (SIGKILL) wrote no end: it ran at most its sleep and the shell's start.
            let end = earlier.end ?? earlier.start + 150_000_000
            #expect(end <= later.start, "runs overlap: \(earlier) and \(later)")
            #expect(earlier.fence <= later.fence, "the fence went down: \(earlier) then \(later)")
            if earlier.node != later.node {
                #expect(earlier.fence < later.fence, "a new leader kept the old fence: \(earlier) then \(later)")
            }
        }
    }
}
