import Testing

@testable import SmartPollProtocol

/// The wire shapes of a cluster member (SPEC section 9): `status`'s `cluster`, the `standby`
/// loop state, `not_leader` naming the leader, and `leader_changed`.
@Suite struct ClusterShapeTests {
    @Test func aStandbysStatusCarriesItsRoleTheLeaderAndTheLeaseLeft() throws {
        let reply = try Reply.decode(Fixtures.line("replies", "status-cluster.json"), for: .status(tasks: nil))
        guard case .status(let status) = reply.body else {
            Issue.record("not a status reply: \(reply)")
            return
        }
        #expect(status.loop.state == .standby)
        #expect(
            status.cluster
                == ClusterStatus(node: "host-b", role: .standby, leader: "host-a", leaseLeftMilliseconds: 4100))
        #expect(status.stateFile?.path == "etcd:/smartpoll/weather/state/")
    }

    @Test func withoutAClusterStatusHasNoClusterMember() throws {
        let reply = try Reply.decode(Fixtures.line("replies", "status.json"), for: .status(tasks: nil))
        guard case .status(let status) = reply.body else {
            Issue.record("not a status reply: \(reply)")
            return
        }
        #expect(status.cluster == nil)
        #expect(!reply.encoded().contains("\"cluster\""))
    }

    @Test func notLeaderNamesTheLeaderInTheMessageAndItsOwnMember() throws {
        let reply = try Reply.decode(
            Fixtures.line("replies", "error-not_leader.json"), for: .run(task: "weather1", wait: false))
        guard case .failure(let error) = reply.body else {
            Issue.record("not an error: \(reply)")
            return
        }
        #expect(error.code == .notLeader)
        #expect(error.leader == "host-a")
        #expect(error.message.contains("host-a"))
        // No leader known: the member is left out, as any absent optional member of an error.
        let unknown = Reply(id: 1, body: .failure(.notLeader("no leader is known yet", leader: nil)))
        #expect(
            unknown.encoded()
                == #"{"id":1,"ok":false,"error":{"code":"not_leader","message":"no leader is known yet"}}"#)
    }

    @Test func leaderChangedSaysTheLeaderOrNullAndThisMembersRole() throws {
        let event = try Event.decode(Fixtures.line("events", "leader_changed.json"))
        #expect(event.kind == .leaderChanged(leader: "host-b", role: .standby))
        #expect(event.task == nil, "every watcher gets it, filtered or not")
        let none = Event(time: event.time, kind: .leaderChanged(leader: nil, role: .leader))
        #expect(none.encoded().hasSuffix(#","leader":null,"role":"leader"}"#))
        #expect(try Event.decode(none.encoded()) == none)
        #expect(throws: ProtocolError.self) {
            try Event.decode(
                #"{"event":"leader_changed","time":"2026-11-30T01:44:32.123Z","leader":null,"role":"boss"}"#)
        }
    }
}
