// TEMPORARY STUB (i16-cluster only): replaced by helper's ClusterMember at merge. Never on main.
final class ClusterMember {
    struct Settings {
        var endpoints: [String]
        var name: String
        var node: String
        var lease: Duration
        var margin: Duration
    }
    enum Role: Equatable { case standby, leader }
    enum Change: Equatable {
        case elected(fence: Int64)
        case deposed(reason: String)
        case leaderChanged(String?)
        case unreachable(String)
    }
    let keyPrefix: [UInt8]
    let client: EtcdClient
    private(set) var role: Role = .standby
    private(set) var leader: String?
    var fence: Int64? { nil }
    init(
        loop: EventLoop, settings: Settings, log: SupervisorLog, onChange: @escaping (Change) -> Void
    ) throws(SupervisorError) {
        keyPrefix = Array("/smartpoll/\(settings.name)/".utf8)
        client = try EtcdClient(loop: loop, endpoints: settings.endpoints)
    }
    func start() {}
    func holdsLeadership(now: Int64) -> Bool { false }
    func leaseLeft(now: Int64) -> Duration? { nil }
    var leadershipGuard: Etcd.Compare? { nil }
    func resign(_ done: @escaping () -> Void) { done() }
}
