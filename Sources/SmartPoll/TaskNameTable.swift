/// The fixed task set's names, interned: a name's lookup answers its task index.
///
/// Scheduling by name sits on every hook's path, so this replaces `[String: Int]`, whose
/// lookup hashes the whole name with SipHash (about 90 ns a call on the benchmark machine):
/// an open-addressing table sized once (load at most one half), keyed by a multiply-xorshift
/// hash of the name's UTF-8 bytes taken 8 at a time; each 8-byte slot keeps the task and 32 more
/// bits of the hash, so that a probe compares the bytes of a name only when those match. The set is fixed at the
/// scheduler's creation and the names come from the program, not from an adversary, so the
/// unkeyed hash is enough. (A perfect hash of the set would spare the probe loop, but its
/// building is long for 100,000 names, and the table's probes are about one already.)
///
/// - Complexity: lookup O(length of the name), one probe on average.
final class TaskNameTable: @unchecked Sendable {
    /// The high 32 bits of the name's hash, and the task index plus one (0: an empty slot).
    fileprivate struct Slot {
        var tag: UInt32
        var taskPlusOne: UInt32
    }

    // Written once by init, read-only after (hence Sendable): no copy-on-write checks, no
    // retains of array buffers on the lookup path.
    private let slots: UnsafeMutableBufferPointer<Slot>
    private let mask: Int
    /// Every name's UTF-8 bytes, one after the other; name `t` is `bytes[starts[t]..<starts[t + 1]]`.
    private let bytes: UnsafeMutableRawBufferPointer
    private let starts: UnsafeMutableBufferPointer<Int>
    /// For the rare look-up that the bytes miss (see ``index(of:)``).
    private let names: [String]
    private let allASCII: Bool

    init(names: [String]) {
        self.names = names
        allASCII = names.allSatisfy { $0.utf8.allSatisfy { $0 < 0x80 } }
        var capacity = 8
        while capacity < names.count * 2 { capacity <<= 1 }
        mask = capacity - 1
        slots = .allocate(capacity: capacity)
        slots.initialize(repeating: Slot(tag: 0, taskPlusOne: 0))
        starts = .allocate(capacity: names.count + 1)
        var total = 0
        for (task, name) in names.enumerated() {
            starts[task] = total
            total += name.utf8.count
        }
        starts[names.count] = total
        bytes = .allocate(byteCount: max(total, 1), alignment: 8)
        for (task, name) in names.enumerated() {
            var offset = starts[task]
            for byte in name.utf8 {
                bytes[offset] = byte
                offset += 1
            }
            let hash = Self.hash(name)
            var position = Int(truncatingIfNeeded: hash) & mask
            while slots[position].taskPlusOne != 0 { position = (position + 1) & mask }
            slots[position] = Slot(tag: UInt32(truncatingIfNeeded: hash >> 32), taskPlusOne: UInt32(task + 1))
        }
    }

    deinit {
        slots.deallocate()
        starts.deallocate()
        bytes.deallocate()
    }

    /// The task index of `name`, or nil. Names are equal as Swift's `String` compares them
    /// (canonical equivalence, as the `[String: SchedulerTask]` the set came from): the bytes
    /// are looked up first (``lookup``); a name they miss that is not ASCII may be another
    /// normalization of a task's name, so it is compared with every name (O(n), on a path that
    /// is the programmer's error or a differently normalized spelling).
    @inline(__always)
    func index(of name: String) -> Int? {
        lookup.index(of: name) ?? slowIndex(of: name)
    }

    @inline(never)
    func slowIndex(of name: String) -> Int? {
        if allASCII && name.utf8.allSatisfy({ $0 < 0x80 }) {
            return nil
        }
        return names.firstIndex(of: name)
    }

    /// The table's look-up by bytes, a plain value of pointers that the table keeps alive:
    /// held by ``SchedulerControl``, a look-up costs no retain and release of the table.
    var lookup: Lookup { Lookup(slots: slots, mask: mask, bytes: bytes, starts: starts) }

    struct Lookup: @unchecked Sendable {
        fileprivate let slots: UnsafeMutableBufferPointer<Slot>
        fileprivate let mask: Int
        fileprivate let bytes: UnsafeMutableRawBufferPointer
        fileprivate let starts: UnsafeMutableBufferPointer<Int>

        /// The task whose name has exactly the bytes of `name`, or nil.
        @inline(__always)
        func index(of name: String) -> Int? {
            let found: Int?? = name.utf8.withContiguousStorageIfAvailable { index(of: UnsafeRawBufferPointer($0)) }
            if let found { return found }
            return Array(name.utf8).withUnsafeBytes { index(of: $0) }
        }

        private func index(of name: UnsafeRawBufferPointer) -> Int? {
            let hash = TaskNameTable.hash(name)
            let tag = UInt32(truncatingIfNeeded: hash >> 32)
            var position = Int(truncatingIfNeeded: hash) & mask
            while true {
                let slot = slots[position]
                if slot.taskPlusOne == 0 { return nil }
                if slot.tag == tag {
                    let task = Int(slot.taskPlusOne &- 1)
                    if equal(task, name) { return task }
                }
                position = (position + 1) & mask
            }
        }

        @inline(__always)
        private func equal(_ task: Int, _ name: UnsafeRawBufferPointer) -> Bool {
            let start = starts[task]
            let count = name.count
            guard starts[task + 1] - start == count else { return false }
            var offset = 0
            while offset + 8 <= count {
                if bytes.loadUnaligned(fromByteOffset: start + offset, as: UInt64.self)
                    != name.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
                {
                    return false
                }
                offset += 8
            }
            while offset < count {
                if bytes[start + offset] != name[offset] { return false }
                offset += 1
            }
            return true
        }
    }

    /// Bytes `offset..<count` (1 to 7 of them) as one little-endian word, zero-padded: the last
    /// 8 bytes loaded at once and shifted when there are 8 bytes, byte by byte otherwise.
    @inline(__always)
    static func tailWord(_ bytes: UnsafeRawBufferPointer, from offset: Int) -> UInt64 {
        let remaining = bytes.count - offset
        if bytes.count >= 8 {
            let last = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: bytes.count - 8, as: UInt64.self))
            return last >> UInt64(8 * (8 - remaining))
        }
        var word: UInt64 = 0
        for index in 0..<remaining {
            word |= UInt64(bytes[offset + index]) << UInt64(8 * index)
        }
        return word
    }

    @inline(__always)
    static func hash(_ name: String) -> UInt64 {
        if let hash = name.utf8.withContiguousStorageIfAvailable({ hash(UnsafeRawBufferPointer($0)) }) {
            return hash
        }
        return Array(name.utf8).withUnsafeBytes { hash($0) }
    }

    /// Multiply-xorshift over 8-byte words (the tail zero-padded), mixed with the length, then
    /// finalized (murmur3's fmix64) so that the low bits, which pick the slot, depend on every byte.
    @inline(__always)
    static func hash(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        let multiplier: UInt64 = 0x9E37_79B9_7F4A_7C15
        var state = UInt64(truncatingIfNeeded: bytes.count) &* multiplier
        var offset = 0
        let count = bytes.count
        while offset + 8 <= count {
            let word = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
            state = (state ^ word) &* multiplier
            state ^= state >> 29
            offset += 8
        }
        if offset < count {
            state = (state ^ tailWord(bytes, from: offset)) &* multiplier
            state ^= state >> 29
        }
        state ^= state >> 33
        state = state &* 0xFF51_AFD7_ED55_8CCD
        state ^= state >> 33
        state = state &* 0xC4CE_B9FE_1A85_EC53
        state ^= state >> 33
        return state
    }
}
