// TEMPORARY STUB (i16-cluster only): replaced by helper's EtcdStateStore at merge. Never on main.
final class EtcdStateStore {
    init(client: EtcdClient, keyPrefix: [UInt8], log: SupervisorLog) {}
    func load(_ completion: @escaping (Result<StateStore.Loaded, SupervisorError>) -> Void) {}
    func write(
        _ changes: StateStore.Changes, leadership: Etcd.Compare, _ completion: @escaping (SupervisorError?) -> Void
    ) {}
    func forget() {}
}
