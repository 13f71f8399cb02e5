import SmartPollProtocol

/// `state_dir`'s counterpart for a cluster (SPEC section 9): the leader's saved state in etcd
/// under `PREFIX state/` (``EtcdStateLayout``), each task in keys of its own, written as guarded
/// transactions through ``EtcdClient`` on the loop's thread.
///
/// - ``load(_:)`` reads everything at one revision, in bounded pages, into the value
///   ``StateStore/load()`` gives, so that a new leader restores as a restarted supervisor does.
/// - ``write(_:leadership:_:)`` takes what ``StateWriter`` gets (``StateStore/Changes``) and
///   writes what changed since the last write: transactions of at most 120 operations and about
///   1 MiB, in order, each guarded by `leadership` (a comparison on the leader's election key).
///   When the guard fails, the member no longer leads: the write ends with
///   ``SupervisorError/Code/leadershipLost`` and nothing more is sent. A write that spans several
///   transactions is not atomic, but its order keeps what etcd holds consistent at every step
///   (``EtcdStateWritePlan``): a result's new generation is whole before the record names it.
/// - Compaction: at every ``compactionWrites``-th write, or at the first write
///   ``compactionInterval`` after the last checkpoint, the store's revision becomes the new
///   checkpoint and etcd's history is compacted (not physically) to the previous checkpoint, so
///   that a reader of a recent revision (a load in progress, a watch) is not cut off.
///
/// - Important: Not thread-safe: the loop's thread only. Every completion is called later on
///   that thread, never from inside the call. Writes are done one at a time in the order they
///   were asked for. Load before writing: the store writes what changed relative to what it
///   loaded or wrote (a store that loaded nothing takes etcd as empty), and ``forget()`` drops
///   that knowledge along with the callbacks.
final class EtcdStateStore {
    /// What etcd holds of a task, as far as this store knows: its saved state without the
    /// result's bytes, and the record of those bytes.
    struct DurableTask: Equatable {
        var task: SavedTask
        var result: EtcdStateLayout.ResultRecord?
    }

    /// A task's history entries in etcd are at sequence numbers `oldest..<next` (some may be
    /// missing, after a write that failed halfway).
    struct HistorySequence: Equatable {
        var oldest = 1
        var next = 1
    }

    /// What etcd holds under the prefix, as far as this store knows (after a load or a write).
    struct Mirror {
        var lastRunID = 0
        var tasks: [String: DurableTask] = [:]
        var histories: [String: HistorySequence] = [:]
        /// The highest result generation of each task used so far, written or tried.
        var generations: [String: Int] = [:]
        /// Tasks whose record in etcd could not be decoded: a complete write that does not have
        /// them deletes their keys; a write of one replaces its record.
        var unusable: Set<String> = []
    }

    let client: EtcdClient
    let keyPrefix: [UInt8]
    let layout: EtcdStateLayout
    let log: SupervisorLog
    let compactionWrites: Int
    let compactionInterval: Duration

    /// The revision etcd's history was last compacted to by this store (0: never).
    private(set) var compactedRevision: Int64 = 0
    /// Called after each compaction etcd acknowledged, with its revision.
    var onCompaction: ((Int64) -> Void)?
    /// etcd's revision after the last transaction this store had committed, or of its last load.
    private(set) var revision: Int64 = 0
    /// For tests: called before a load reads each page of `tasks/` and `history/`, with the read
    /// to start; nil starts it at once.
    var beforeLoadPage: ((@escaping () -> Void) -> Void)?

    private(set) var mirror = Mirror()
    /// Bumped by ``forget()``: a completion of an older epoch is dropped.
    private(set) var epoch = 0

    private struct PendingWrite {
        var changes: StateStore.Changes
        var leadership: Etcd.Compare
        var completion: (SupervisorError?) -> Void
    }

    private var pending: [PendingWrite] = []
    private var inFlight: (plan: EtcdStateWritePlan, write: PendingWrite, sent: Int)?

    /// The last checkpoint: the store's revision then, and when.
    private var checkpointRevision: Int64 = 0
    private var checkpointTime = ContinuousClock.now
    private var writesSinceCheckpoint = 0
    private var compacting = false

    /// - Parameters:
    ///   - keyPrefix: the cluster's prefix; the state is under `keyPrefix + "state/"`.
    ///   - compactionWrites: writes between two checkpoints (at least 1).
    ///   - compactionInterval: the longest time between two checkpoints while writes go on.
    init(
        client: EtcdClient, keyPrefix: [UInt8], log: SupervisorLog, compactionWrites: Int = 1000,
        compactionInterval: Duration = .seconds(300)
    ) {
        self.client = client
        self.keyPrefix = keyPrefix
        layout = EtcdStateLayout(keyPrefix: keyPrefix)
        self.log = log
        self.compactionWrites = max(1, compactionWrites)
        self.compactionInterval = compactionInterval
    }

    /// The prefix as text, for messages.
    var prefixDescription: String { String(decoding: layout.state, as: UTF8.self) }

    /// Drops every callback pending (the member stood down): no completion of a load or write
    /// asked for before is called, queued writes are not sent, and what the store knew of etcd
    /// is forgotten (load again before writing). A transaction already sent may still be applied
    /// by etcd, if its guard holds.
    func forget() {
        epoch += 1
        pending = []
        inFlight = nil
        mirror = Mirror()
        revision = 0
        compacting = false
        writesSinceCheckpoint = 0
        checkpointRevision = 0
        checkpointTime = ContinuousClock.now
    }

    /// After a load of `epoch`: what etcd holds is what was loaded (unless forgotten since).
    func adopt(_ loaded: Mirror, revision: Int64, epoch loadEpoch: Int) -> Bool {
        guard loadEpoch == epoch else { return false }
        self.revision = revision
        // The loaded revision is a checkpoint, and the first write after it compacts etcd's
        // history to it: a leader that lasts less than a checkpoint's writes or time (many
        // failovers in a row) still leaves etcd no older history than its load.
        if checkpointRevision == 0 {
            checkpointRevision = revision
            checkpointTime = ContinuousClock.now
            writesSinceCheckpoint = compactionWrites
        }
        // Generations tried by this store's writes stay used.
        var loaded = loaded
        loaded.generations.merge(mirror.generations) { max($0, $1) }
        mirror = loaded
        return true
    }

    // MARK: Writing

    /// Writes `changes` (what changed since the last write; see ``StateStore/Changes``), each
    /// transaction guarded by `leadership`. `completion` gets nil once etcd committed all of it,
    /// ``SupervisorError/Code/leadershipLost`` when a guard failed (the rest is not sent, and the
    /// write must not be retried by this member), or ``SupervisorError/Code/etcdFailed`` when etcd
    /// could not be reached or refused a request (what was committed before stays; writing the
    /// same changes again is safe). A write with nothing to change still sends one empty guarded
    /// transaction: its success says the member still led at that revision.
    ///
    /// - Complexity: O(changed tasks + history entries) to plan (O(n) for a complete write), then
    ///   each transaction's bytes on the turn that sends it.
    func write(
        _ changes: StateStore.Changes, leadership: Etcd.Compare, _ completion: @escaping (SupervisorError?) -> Void
    ) {
        pending.append(PendingWrite(changes: changes, leadership: leadership, completion: completion))
        startNextWrite()
    }

    private func startNextWrite() {
        guard inFlight == nil, !pending.isEmpty else { return }
        let write = pending.removeFirst()
        let plan = EtcdStateWritePlan(write.changes, mirror: mirror, layout: layout)
        mirror.generations.merge(plan.generationsUsed) { max($0, $1) }
        inFlight = (plan, write, 0)
        sendNextTransaction()
    }

    private func sendNextTransaction() {
        guard var current = inFlight else { return }
        // Out of the property while it changes: the plan's outcome is not copied.
        inFlight = nil
        let operations = current.plan.nextTransaction()
        current.sent += 1
        inFlight = current
        let epoch = epoch
        client.txn(compare: [current.write.leadership], success: operations) { [weak self] result in
            guard let self, self.epoch == epoch else { return }
            self.transactionDone(result)
        }
    }

    private func transactionDone(_ result: Result<Etcd.TxnReply, EtcdError>) {
        guard let current = inFlight else { return }
        switch result {
        case .failure(let error):
            finishWrite(
                SupervisorError(
                    code: .etcdFailed, message: "cannot write the state to etcd (\(prefixDescription)): \(error)"),
                revision: nil)
        case .success(let reply) where !reply.succeeded:
            let part = current.sent == 1 ? "" : " (transaction \(current.sent) of the write)"
            finishWrite(
                SupervisorError(
                    code: .leadershipLost,
                    message: "leadership was lost: etcd refused a state write\(part) because this member's "
                        + "election key changed"),
                revision: nil)
        case .success(let reply):
            revision = reply.revision
            if current.plan.isFinished {
                let outcome = current.plan.outcome
                mirror.lastRunID = outcome.lastRunID
                mirror.tasks = outcome.tasks
                mirror.histories = outcome.histories
                mirror.unusable = outcome.unusable
                finishWrite(nil, revision: reply.revision)
            } else {
                sendNextTransaction()
            }
        }
    }

    private func finishWrite(_ failure: SupervisorError?, revision: Int64?) {
        guard let current = inFlight else { return }
        inFlight = nil
        let epoch = epoch
        current.write.completion(failure)
        guard self.epoch == epoch else { return }
        if let revision { checkpointIfDue(revision: revision) }
        startNextWrite()
    }

    // MARK: Compaction

    private func checkpointIfDue(revision: Int64) {
        writesSinceCheckpoint += 1
        let now = ContinuousClock.now
        guard writesSinceCheckpoint >= compactionWrites || now - checkpointTime >= compactionInterval else { return }
        let previous = checkpointRevision
        checkpointRevision = revision
        checkpointTime = now
        writesSinceCheckpoint = 0
        guard previous > compactedRevision, !compacting else { return }
        compacting = true
        let epoch = epoch
        client.compact(previous) { [weak self] result in
            guard let self, self.epoch == epoch else { return }
            compacting = false
            switch result {
            case .success:
                compactedRevision = previous
                log.write(.debug, "state: compacted etcd's history to revision \(previous)")
                onCompaction?(previous)
            case .failure(.gateway(EtcdError.codeOutOfRange, _, _)):
                // Compacted further already (by another member): nothing left to do.
                compactedRevision = max(compactedRevision, previous)
                onCompaction?(previous)
            case .failure(let error):
                log.write(
                    .warning,
                    "state: cannot compact etcd's history to revision \(previous): \(error); "
                        + "tried again at the next checkpoint")
            }
        }
    }
}
