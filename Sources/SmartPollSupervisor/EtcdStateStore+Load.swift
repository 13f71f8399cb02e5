import SmartPollProtocol

extension EtcdStateStore {
    /// Reads the saved state at one revision: `meta` first (its reply's revision is the one every
    /// later read asks for), then `tasks/` and `history/` in pages, then the results' chunks as
    /// read-only transactions of exact chunk ranges. Each turn of the loop decodes one reply of
    /// bounded size. `completion` gets what ``StateStore/load()`` gives: a state (nil when etcd
    /// holds none), with notes for the log of whatever could not be used (a task's record that
    /// does not decode, a result whose chunks are missing or do not match its record: that task
    /// starts without it). When the revision is compacted during the load, the load starts over
    /// (at most 3 times); an error of etcd fails the load with ``SupervisorError/Code/etcdFailed``.
    /// The store then knows what etcd holds, and writes what changes relative to it.
    ///
    /// A load only reads (a standby may load). Not while a write of this store is in flight: the
    /// write's end would overwrite what the load learnt.
    ///
    /// - Complexity: O(keys under the prefix) over the load; each turn decodes at most 256 task
    ///   records, 1000 history entries or about 2 MiB of results.
    func load(_ completion: @escaping (Result<StateStore.Loaded, SupervisorError>) -> Void) {
        EtcdStateLoader(store: self, completion: completion).start()
    }
}

/// One ``EtcdStateStore/load(_:)`` in progress; its replies keep it alive.
private final class EtcdStateLoader {
    static let taskPage: Int64 = 256
    static let historyPage: Int64 = 1_000
    /// The most result bytes one transaction asks for, and the most ranges in it.
    static let resultBytes = 2 << 20
    static let resultRanges = 120
    static let attempts = 3

    private let store: EtcdStateStore
    private let client: EtcdClient
    private let layout: EtcdStateLayout
    private let epoch: Int
    private let completion: (Result<StateStore.Loaded, SupervisorError>) -> Void
    private var attempt = 0

    private var revision: Int64 = 0
    private var requests = 0
    private var notes: [(level: SupervisorLog.Level, message: String)] = []
    private var lastRunID: Int?
    private var metaUnusable = false
    private var foundAnything = false
    private var tasks: [String: SavedTask] = [:]
    private var records: [String: EtcdStateLayout.ResultRecord] = [:]
    private var histories: [String: RunHistory] = [:]
    private var sequences: [String: EtcdStateStore.HistorySequence] = [:]
    private var unreadableEntries = 0
    private var unusable: Set<String> = []

    /// One range of one result's chunks, `first..<end`.
    private struct ChunkRange {
        var name: String
        var generation: Int
        var first: Int
        var end: Int
        var bytes: Int
    }

    private var batches: [[ChunkRange]] = []
    private var outputs: [String: [UInt8]] = [:]
    private var checksums: [String: UInt64] = [:]
    /// Chunks received in order; a task whose chunks came out of order or were missing is
    /// `broken`.
    private var received: [String: Int] = [:]
    private var broken: Set<String> = []

    init(store: EtcdStateStore, completion: @escaping (Result<StateStore.Loaded, SupervisorError>) -> Void) {
        self.store = store
        client = store.client
        layout = store.layout
        epoch = store.epoch
        self.completion = completion
    }

    private var isCurrent: Bool { store.epoch == epoch }

    func start() {
        attempt += 1
        revision = 0
        requests = 1
        lastRunID = nil
        metaUnusable = false
        notes = []
        foundAnything = false
        tasks = [:]
        records = [:]
        histories = [:]
        sequences = [:]
        unreadableEntries = 0
        unusable = []
        batches = []
        outputs = [:]
        checksums = [:]
        received = [:]
        broken = []
        client.range(Etcd.RangeRequest(keys: .key(layout.meta))) { [self] result in
            guard isCurrent else { return }
            switch result {
            case .failure(let error): fail(error)
            case .success(let reply):
                revision = reply.revision
                if let meta = reply.keyValues.first {
                    foundAnything = true
                    do throws(SavedStateFormat.Problem) {
                        lastRunID = try EtcdStateLayout.decodeMeta(meta.value)
                    } catch {
                        metaUnusable = true
                        notes.append(
                            (
                                .error,
                                "\(store.prefixDescription)meta is unusable (\(error.message)); the run id mark "
                                    + "is taken from the highest run id saved"
                            ))
                    }
                }
                readPages(from: layout.tasks, to: EtcdStateLayout.end(of: layout.tasks), limit: Self.taskPage) {
                    [self] keyValues in
                    for keyValue in keyValues { decodeTask(keyValue) }
                } then: { [self] in
                    readPages(
                        from: layout.history, to: EtcdStateLayout.end(of: layout.history), limit: Self.historyPage
                    ) { [self] keyValues in
                        for keyValue in keyValues { decodeEntry(keyValue) }
                    } then: { [self] in
                        planResults()
                        readResults(0)
                    }
                }
            }
        }
    }

    /// Every key of `[from, to)` at the load's revision, `limit` a reply, each page handed to
    /// `page` in key order; then `then`.
    private func readPages(
        from: [UInt8], to: [UInt8], limit: Int64, _ page: @escaping ([Etcd.KeyValue]) -> Void,
        then: @escaping () -> Void
    ) {
        if let hook = store.beforeLoadPage {
            return hook { [self] in
                guard isCurrent else { return }
                requestPage(from: from, to: to, limit: limit, page, then: then)
            }
        }
        requestPage(from: from, to: to, limit: limit, page, then: then)
    }

    private func requestPage(
        from: [UInt8], to: [UInt8], limit: Int64, _ page: @escaping ([Etcd.KeyValue]) -> Void,
        then: @escaping () -> Void
    ) {
        requests += 1
        var request = Etcd.RangeRequest(keys: .range(from: from, to: to))
        request.limit = limit
        request.revision = revision
        client.range(request) { [self] result in
            guard isCurrent else { return }
            switch result {
            case .failure(let error): fail(error)
            case .success(let reply):
                page(reply.keyValues)
                if reply.more, let last = reply.keyValues.last {
                    readPages(from: EtcdStateLayout.successor(last.key), to: to, limit: limit, page, then: then)
                } else {
                    then()
                }
            }
        }
    }

    private func decodeTask(_ keyValue: Etcd.KeyValue) {
        foundAnything = true
        guard let suffix = EtcdStateLayout.suffix(keyValue.key, after: layout.tasks),
            let name = String(validating: suffix, as: UTF8.self), !name.isEmpty, !name.contains("/")
        else {
            notes.append((.warning, "ignored \(describe(keyValue.key)): not a task's key"))
            return
        }
        do throws(SavedStateFormat.Problem) {
            let (task, record) = try EtcdStateLayout.decodeTask(name, keyValue.value)
            tasks[name] = task
            records[name] = record
        } catch {
            unusable.insert(name)
            notes.append(
                (.error, "the saved state of task \(name) in etcd is unusable (\(error.message)); it starts afresh"))
        }
    }

    private func decodeEntry(_ keyValue: Etcd.KeyValue) {
        foundAnything = true
        guard let suffix = EtcdStateLayout.suffix(keyValue.key, after: layout.history),
            let slash = suffix.lastIndex(of: 0x2F),
            let name = String(validating: suffix[..<slash], as: UTF8.self), !name.isEmpty,
            let sequence = EtcdStateLayout.number(suffix[(slash + 1)...], width: 20)
        else {
            unreadableEntries += 1
            return
        }
        do throws(SavedStateFormat.Problem) {
            guard let value = try? JSONParser.parse(keyValue.value, mode: .strict) else {
                throw SavedStateFormat.Problem(message: "not JSON")
            }
            let entry = try SavedStateFormat.decodeEntry(value, "history entry \(sequence) of task \(name)")
            // Keys come in order: oldest first. The ring's bound is the task's, applied by the
            // supervisor on restore.
            histories[name, default: RunHistory(capacity: Int.max)].append(entry, keeping: Int.max)
            var range = sequences[name] ?? EtcdStateStore.HistorySequence(oldest: sequence, next: sequence)
            range.next = max(range.next, sequence + 1)
            sequences[name] = range
        } catch {
            unreadableEntries += 1
        }
    }

    /// Cuts the results' chunks into transactions of at most ``resultRanges`` ranges and about
    /// ``resultBytes`` bytes.
    private func planResults() {
        var batch: [ChunkRange] = []
        var batchBytes = 0
        func close() {
            if !batch.isEmpty { batches.append(batch) }
            batch = []
            batchBytes = 0
        }
        for name in records.keys.sorted() {
            let record = records[name]!
            guard record.chunks > 0 else {
                outputs[name] = []
                continue
            }
            let perChunk = (record.size + record.chunks - 1) / record.chunks
            checksums[name] = EtcdStateLayout.checksumStart
            received[name] = 0
            var first = 0
            while first < record.chunks {
                if batch.count == Self.resultRanges || batchBytes + perChunk > Self.resultBytes { close() }
                let room = max(1, (Self.resultBytes - batchBytes) / max(1, perChunk))
                let end = min(record.chunks, first + room)
                let bytes = (end - first) * perChunk
                batch.append(
                    ChunkRange(name: name, generation: record.generation, first: first, end: end, bytes: bytes))
                batchBytes += bytes
                first = end
            }
        }
        close()
    }

    private func readResults(_ index: Int) {
        guard index < batches.count else { return finish() }
        requests += 1
        let ranges = batches[index]
        let operations: [Etcd.Operation] = ranges.map { range in
            var request = Etcd.RangeRequest(
                keys: .range(
                    from: layout.chunk(range.name, range.generation, range.first),
                    to: layout.chunk(range.name, range.generation, range.end)))
            request.limit = Int64(range.end - range.first)
            request.revision = revision
            return .range(request)
        }
        client.txn(compare: [], success: operations) { [self] result in
            guard isCurrent else { return }
            switch result {
            case .failure(let error): fail(error)
            case .success(let reply):
                for (range, response) in zip(ranges, reply.responses) {
                    guard case .range(let chunks) = response else {
                        broken.insert(range.name)
                        continue
                    }
                    for chunk in chunks.keyValues { add(chunk, of: range) }
                }
                readResults(index + 1)
            }
        }
    }

    private func add(_ chunk: Etcd.KeyValue, of range: ChunkRange) {
        let name = range.name
        guard !broken.contains(name) else { return }
        let prefix = layout.generation(name, range.generation)
        guard let suffix = EtcdStateLayout.suffix(chunk.key, after: prefix),
            let index = EtcdStateLayout.number(suffix, width: 6), index == received[name]
        else {
            broken.insert(name)
            return
        }
        received[name] = index + 1
        outputs[name, default: []].append(contentsOf: chunk.value)
        checksums[name] = EtcdStateLayout.checksum(continuing: checksums[name]!, chunk.value[...])
    }

    private func finish() {
        var state = SavedState()
        var mirror = EtcdStateStore.Mirror()
        for (name, record) in records {
            mirror.generations[name] = record.generation
        }
        // Every saved run id, for a mark that is missing or unusable.
        var highest = 0
        for (name, var task) in tasks {
            mirror.tasks[name] = EtcdStateStore.DurableTask(task: task, result: records[name])
            if let record = records[name] {
                let output = outputs[name] ?? []
                if !broken.contains(name), received[name] ?? 0 == record.chunks, output.count == record.size,
                    (checksums[name] ?? EtcdStateLayout.checksumStart) == record.checksum
                {
                    task.result?.output = output
                } else {
                    notes.append(
                        (
                            .error,
                            "the result of task \(name) is lost: its \(record.chunks) chunks of generation "
                                + "\(record.generation) in etcd are missing or do not match its record "
                                + "(\(output.count) bytes of \(record.size), or a different checksum)"
                        ))
                    task.result = nil
                }
            }
            highest = max(highest, task.last?.run ?? 0, task.result?.run ?? 0, task.interruptedRun ?? 0)
            state.tasks[name] = task
        }
        for (name, history) in histories {
            highest = max(highest, history.newestFirst(limit: 1).first?.run.run ?? 0)
            state.histories[name] = history
        }
        mirror.histories = sequences
        mirror.unusable = unusable
        if unreadableEntries > 0 {
            notes.append(
                (.warning, "ignored \(unreadableEntries) history entries in etcd that do not decode"))
        }
        guard foundAnything else {
            notes.append((.info, "no saved state in etcd under \(store.prefixDescription) yet; starting afresh"))
            return deliver(StateStore.Loaded(state: nil, notes: notes), mirror: mirror)
        }
        if let mark = lastRunID {
            state.lastRunID = mark
            mirror.lastRunID = mark
        } else {
            state.lastRunID = highest
            if !metaUnusable {
                notes.append(
                    (
                        .warning,
                        "\(store.prefixDescription)meta is missing; the run id mark is taken from the highest "
                            + "run id saved (\(highest))"
                    ))
            }
        }
        // A task whose counters contradict each other was not written by a supervisor: it alone
        // starts afresh (SavedState.contradiction() checks one task against the mark).
        for name in state.tasks.keys.sorted() {
            let single = SavedState(lastRunID: state.lastRunID, tasks: [name: state.tasks[name]!])
            if let contradiction = single.contradiction() {
                notes.append(
                    (.error, "the saved state of task \(name) in etcd is unusable (\(contradiction)); it starts afresh")
                )
                state.tasks[name] = nil
            }
        }
        notes.append(
            (
                .debug,
                "read the state from etcd at revision \(revision) in \(requests) requests: \(state.tasks.count) "
                    + "tasks, \(state.histories.count) histories"
            ))
        deliver(StateStore.Loaded(state: state, notes: notes), mirror: mirror)
    }

    private func deliver(_ loaded: StateStore.Loaded, mirror: EtcdStateStore.Mirror) {
        guard store.adopt(mirror, revision: revision, epoch: epoch) else { return }
        completion(.success(loaded))
    }

    private func fail(_ error: EtcdError) {
        if case .gateway(EtcdError.codeOutOfRange, _, _) = error, attempt < Self.attempts {
            // The revision was compacted while the load read it: again at the newest.
            return start()
        }
        completion(
            .failure(
                SupervisorError(
                    code: .etcdFailed, message: "cannot read the state from etcd (\(store.prefixDescription)): \(error)"
                )))
    }

    private func describe(_ key: [UInt8]) -> String {
        JSONValue.string(String(decoding: key, as: UTF8.self)).serialized()
    }
}
