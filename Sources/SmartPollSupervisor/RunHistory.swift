import SmartPollProtocol

/// A task's last finished runs (task key `history`), kept for `history` and in `state_dir`: a
/// ring of at most ``capacity`` entries; an append past it drops the oldest.
///
/// - Complexity: ``append(_:keeping:)`` is O(1) amortised (O(kept) when `keeping` shrinks the
///   ring); ``newestFirst(limit:)`` O(entries returned).
struct RunHistory: Equatable, Sendable {
    /// Slots in ring order; ``start`` is the oldest once the ring is full.
    private var storage: [HistoryReply.Entry] = []
    private var start = 0
    /// The most entries kept: the task's `history` as it was at the last append or trim.
    private(set) var capacity: Int

    init(capacity: Int) {
        self.capacity = max(0, capacity)
    }

    var count: Int { storage.count }
    var isEmpty: Bool { storage.isEmpty }

    /// Appends `entry` as the newest, keeping at most `keeping` entries (the newest).
    mutating func append(_ entry: HistoryReply.Entry, keeping: Int) {
        trim(to: keeping)
        guard capacity > 0 else { return }
        if storage.count < capacity {
            storage.append(entry)
        } else {
            storage[start] = entry
            start = (start + 1) % capacity
        }
    }

    /// Keeps at most `keeping` entries, the newest (a lowered `history`).
    mutating func trim(to keeping: Int) {
        let keeping = max(0, keeping)
        guard keeping != capacity else { return }
        if keeping < storage.count || start != 0 {
            let ordered = oldestFirst()
            storage = Array(ordered.suffix(keeping))
            start = 0
        }
        capacity = keeping
    }

    /// Every entry, oldest first (as the state file holds them).
    func oldestFirst() -> [HistoryReply.Entry] {
        guard start != 0 else { return storage }
        return Array(storage[start...] + storage[..<start])
    }

    /// The newest `limit` entries (nil: all), newest first.
    func newestFirst(limit: Int? = nil) -> [HistoryReply.Entry] {
        let total = min(limit ?? storage.count, storage.count)
        var entries: [HistoryReply.Entry] = []
        entries.reserveCapacity(total)
        var position = (start + storage.count - 1) % max(storage.count, 1)
        for _ in 0..<total {
            entries.append(storage[position])
            position = position == 0 ? storage.count - 1 : position - 1
        }
        return entries
    }

    static func == (left: RunHistory, right: RunHistory) -> Bool {
        left.oldestFirst() == right.oldestFirst()
    }
}
