/// A binary min-heap of task indices ordered by `(time, sequence)`, with each task's position
/// tracked so that any task can be removed or re-keyed in O(log n).
///
/// - Important: A task index appears at most once. `sequence` breaks ties between equal times so
///   that tasks due at the same instant come out in the order they were scheduled.
/// - Complexity: `insert`, `remove`, `popMin` are O(log n); `min` and `contains` are O(1).
struct DeadlineHeap {
    struct Entry {
        var time: Int64
        var sequence: UInt64
        var task: Int32

        @inline(__always)
        func precedes(_ other: Entry) -> Bool {
            time < other.time || (time == other.time && sequence < other.sequence)
        }
    }

    private(set) var entries: [Entry] = []
    /// `positions[task]` is the task's index in `entries`, or -1.
    private var positions: [Int32]

    init(taskCount: Int) {
        positions = Array(repeating: -1, count: taskCount)
    }

    var count: Int { entries.count }
    var isEmpty: Bool { entries.isEmpty }
    var min: Entry? { entries.first }

    @inline(__always)
    func contains(_ task: Int32) -> Bool {
        positions[Int(task)] >= 0
    }

    /// Adds `task`, or moves it if it is already present.
    mutating func insert(_ task: Int32, time: Int64, sequence: UInt64) {
        let entry = Entry(time: time, sequence: sequence, task: task)
        let position = Int(positions[Int(task)])
        if position >= 0 {
            let old = entries[position]
            entries[position] = entry
            if entry.precedes(old) { siftUp(position) } else { siftDown(position) }
            return
        }
        entries.append(entry)
        positions[Int(task)] = Int32(entries.count - 1)
        siftUp(entries.count - 1)
    }

    /// Removes `task` if present; returns whether it was.
    @discardableResult
    mutating func remove(_ task: Int32) -> Bool {
        let position = Int(positions[Int(task)])
        guard position >= 0 else { return false }
        positions[Int(task)] = -1
        let last = entries.removeLast()
        if position < entries.count {
            entries[position] = last
            positions[Int(last.task)] = Int32(position)
            if position > 0 && last.precedes(entries[(position - 1) / 2]) {
                siftUp(position)
            } else {
                siftDown(position)
            }
        }
        return true
    }

    mutating func popMin() -> Entry? {
        guard let first = entries.first else { return nil }
        remove(first.task)
        return first
    }

    /// Empties the heap. O(count).
    mutating func removeAll() {
        for entry in entries { positions[Int(entry.task)] = -1 }
        entries.removeAll(keepingCapacity: true)
    }

    private mutating func siftUp(_ start: Int) {
        var child = start
        let entry = entries[child]
        while child > 0 {
            let parent = (child - 1) / 2
            guard entry.precedes(entries[parent]) else { break }
            entries[child] = entries[parent]
            positions[Int(entries[child].task)] = Int32(child)
            child = parent
        }
        entries[child] = entry
        positions[Int(entry.task)] = Int32(child)
    }

    private mutating func siftDown(_ start: Int) {
        var parent = start
        let entry = entries[parent]
        let count = entries.count
        while true {
            let left = 2 * parent + 1
            guard left < count else { break }
            let right = left + 1
            let child = right < count && entries[right].precedes(entries[left]) ? right : left
            guard entries[child].precedes(entry) else { break }
            entries[parent] = entries[child]
            positions[Int(entries[parent].task)] = Int32(parent)
            parent = child
        }
        entries[parent] = entry
        positions[Int(entry.task)] = Int32(parent)
    }
}
