import SmartPollProtocol

/// One write of ``EtcdStateStore``: the etcd operations that make a ``StateStore/Changes``
/// durable, in order, cut into transactions of at most ``maximumOperations`` operations and
/// about ``maximumBytes`` bytes (etcd's defaults: 128 operations, 1.5 MiB a request).
///
/// Order: the run id mark first (a task's record never lands without the mark that covers its
/// run), then removed tasks' keys, then each changed task (a new result's chunks, then the
/// record that names them, then the deletion of every other generation of its result), then
/// history entries with the deletion of the oldest beyond the task's bound. No transaction puts
/// a key that one of its deletions covers (etcd refuses that).
///
/// - Complexity: building it is O(changed tasks + history entries); each transaction taken costs
///   O(its bytes): a result's chunks are copied as their transaction is taken, never all at once.
struct EtcdStateWritePlan {
    static let maximumOperations = 120
    /// Two whole chunks and the records after them; etcd's limit is 1.5 MiB a request.
    static let maximumBytes = (1 << 20) + (16 << 10)
    /// What an operation costs beyond its key and value (the protobuf's framing, the guard).
    private static let operationOverhead = 32

    private enum Step {
        case put(key: [UInt8], value: [UInt8])
        case delete(Etcd.KeyRange)
        /// A new result generation: its chunks, the task's record naming it, then the deletion of
        /// the task's other generations (and of chunks of this one beyond its count, left by a
        /// write that failed).
        case result(name: String, task: SavedTask, generation: Int)
    }

    private let layout: EtcdStateLayout
    private var steps: [Step] = []
    private var position = 0
    /// Within a ``Step/result(name:task:generation:)``: the next of its chunks, record and two
    /// deletions.
    private var part = 0
    private var checksum = EtcdStateLayout.checksumStart
    /// The store's mirror of etcd once every transaction succeeded.
    private(set) var outcome: EtcdStateStore.Mirror
    /// The result generations this plan uses, whether or not it succeeds: a transaction that
    /// timed out may have been applied, so none is used twice.
    private(set) var generationsUsed: [String: Int] = [:]

    init(_ changes: StateStore.Changes, mirror: EtcdStateStore.Mirror, layout: EtcdStateLayout) {
        self.layout = layout
        var next = mirror
        if let run = changes.lastRunID, run > mirror.lastRunID {
            next.lastRunID = run
            steps.append(.put(key: layout.meta, value: EtcdStateLayout.encodeMeta(lastRunID: run)))
        }
        // The last of a name handed over twice wins.
        var order: [String] = []
        var latest: [String: SavedTask] = [:]
        for (name, task) in changes.tasks where latest.updateValue(task, forKey: name) == nil {
            order.append(name)
        }
        var removed: Set<String> = []
        if changes.complete {
            removed = Set(mirror.tasks.keys).union(mirror.histories.keys).union(mirror.unusable).subtracting(order)
            for name in removed.sorted() {
                steps.append(.delete(.key(layout.task(name))))
                steps.append(.delete(.prefix(layout.results(name))))
                steps.append(.delete(.prefix(layout.history(name))))
                next.tasks[name] = nil
                next.histories[name] = nil
                next.unusable.remove(name)
            }
        }
        for name in order {
            assert(!name.isEmpty && !name.contains("/"), "a task name is one key segment")
            let task = latest[name]!
            // An unusable record is replaced by this one.
            next.unusable.remove(name)
            var stripped = task
            stripped.result?.output = []
            let durable = mirror.tasks[name]
            // Handed over as etcd already has it (every task, after a reload): nothing to write.
            if durable?.task == stripped { continue }
            if let result = task.result {
                if let record = durable?.result, record.run == result.run {
                    // The same run's result: its chunks are in etcd already.
                    steps.append(
                        .put(key: layout.task(name), value: EtcdStateLayout.encodeTask(stripped, result: record)))
                    next.tasks[name] = EtcdStateStore.DurableTask(task: stripped, result: record)
                } else {
                    let generation = (mirror.generations[name] ?? 0) + 1
                    generationsUsed[name] = generation
                    next.generations[name] = generation
                    steps.append(.result(name: name, task: task, generation: generation))
                    // The record (with its checksum) is put in place when its step is taken.
                    next.tasks[name] = EtcdStateStore.DurableTask(task: stripped, result: nil)
                }
            } else {
                steps.append(.put(key: layout.task(name), value: EtcdStateLayout.encodeTask(stripped, result: nil)))
                if durable?.result != nil { steps.append(.delete(.prefix(layout.results(name)))) }
                next.tasks[name] = EtcdStateStore.DurableTask(task: stripped, result: nil)
            }
        }
        // History: each task's ring replayed on its sequence numbers, as RunHistory appends (trim
        // to the entry's bound, then append): only the entries that stay are put, and one range
        // deletion drops the ones that fell out.
        var historyOrder: [String] = []
        var appends: [String: [(keep: Int, entry: HistoryReply.Entry)]] = [:]
        for append in changes.historyAppends where !removed.contains(append.name) {
            if appends[append.name] == nil { historyOrder.append(append.name) }
            appends[append.name, default: []].append((append.keep, append.entry))
        }
        for name in historyOrder {
            let initial = mirror.histories[name] ?? EtcdStateStore.HistorySequence()
            var sequence = initial
            var puts: [(sequence: Int, entry: HistoryReply.Entry)] = []
            for (keep, entry) in appends[name]! {
                let keep = max(0, keep)
                sequence.oldest = max(sequence.oldest, sequence.next - keep)
                guard keep > 0 else { continue }
                puts.append((sequence.next, entry))
                sequence.next += 1
                sequence.oldest = max(sequence.oldest, sequence.next - keep)
            }
            if sequence.oldest > initial.oldest {
                steps.append(
                    .delete(.range(from: layout.history(name), to: layout.historyEntry(name, sequence.oldest))))
            }
            for put in puts where put.sequence >= sequence.oldest {
                let value = Array(SavedStateFormat.encode(put.entry).serialized().utf8)
                steps.append(.put(key: layout.historyEntry(name, put.sequence), value: value))
            }
            next.histories[name] = sequence
        }
        outcome = next
    }

    /// Every operation was taken.
    var isFinished: Bool { position == steps.count }

    /// Whether the plan has no operation at all (nothing changed).
    var isEmpty: Bool { steps.isEmpty }

    /// The next transaction's operations; empty once finished.
    mutating func nextTransaction() -> [Etcd.Operation] {
        var operations: [Etcd.Operation] = []
        var bytes = 0
        while position < steps.count, operations.count < Self.maximumOperations {
            let size = nextOperationSize()
            if !operations.isEmpty && bytes + size > Self.maximumBytes { break }
            operations.append(takeOperation())
            bytes += size
        }
        return operations
    }

    private func chunkRange(_ index: Int, of size: Int) -> Range<Int> {
        let start = index * EtcdStateLayout.chunkSize
        return start..<min(size, start + EtcdStateLayout.chunkSize)
    }

    private func nextOperationSize() -> Int {
        switch steps[position] {
        case .put(let key, let value): return key.count + value.count + Self.operationOverhead
        case .delete(let range):
            let bounds = range.bounds
            return bounds.key.count + (bounds.rangeEnd?.count ?? 0) + Self.operationOverhead
        case .result(let name, let task, _):
            let size = task.result?.output.count ?? 0
            let chunks = EtcdStateLayout.ResultRecord.chunks(of: size)
            // A chunk; the record and the deletions are small.
            if part < chunks { return chunkRange(part, of: size).count + 64 + Self.operationOverhead }
            return 2 * layout.results(name).count + 4_096 + Self.operationOverhead
        }
    }

    private mutating func takeOperation() -> Etcd.Operation {
        switch steps[position] {
        case .put(let key, let value):
            position += 1
            return .put(key: key, value: value, lease: 0)
        case .delete(let range):
            position += 1
            return .delete(range)
        case .result(let name, let task, let generation):
            let output = task.result?.output ?? []
            let chunks = EtcdStateLayout.ResultRecord.chunks(of: output.count)
            let current = part
            part += 1
            if current < chunks {
                let bytes = output[chunkRange(current, of: output.count)]
                checksum = EtcdStateLayout.checksum(continuing: checksum, bytes)
                return .put(key: layout.chunk(name, generation, current), value: Array(bytes), lease: 0)
            }
            switch current - chunks {
            case 0:
                let record = EtcdStateLayout.ResultRecord(
                    run: task.result?.run ?? 0, generation: generation, chunks: chunks, size: output.count,
                    checksum: checksum)
                var stripped = task
                stripped.result?.output = []
                outcome.tasks[name] = EtcdStateStore.DurableTask(task: stripped, result: record)
                return .put(
                    key: layout.task(name), value: EtcdStateLayout.encodeTask(stripped, result: record), lease: 0)
            case 1:
                return .delete(.range(from: layout.results(name), to: layout.generation(name, generation)))
            default:
                position += 1
                part = 0
                checksum = EtcdStateLayout.checksumStart
                return .delete(
                    .range(
                        from: layout.chunk(name, generation, chunks),
                        to: EtcdStateLayout.end(of: layout.results(name))))
            }
        }
    }
}
