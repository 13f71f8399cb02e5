/// The fixed task set's names, interned: a name's lookup answers its task index.
///
/// Scheduling by name sits on every hook's path, so this replaces `[String: Int]`, whose
/// lookup hashes the whole name with SipHash (about 90 ns a call on the benchmark machine):
/// an open-addressing table sized once (load at most one half), keyed by a multiply-xorshift
/// hash of the name's UTF-8 bytes taken 8 at a time; each 8-byte slot keeps the task and 32 more
/// bits of the hash, so that a probe compares the bytes of a name only when those match. The set is fixed at the
/// scheduler's creation and the names come from the program, not from an adversary, so the
/// unkeyed hash is enough.
///
/// Names of at most 15 bytes (most task names) are keyed by their two words in Swift's small
/// string form (the UTF-8 bytes inline, zero-padded, and the count): a native small `String` is
/// those two words already, so its look-up reads them with no copy of the bytes, hashes two words
/// and compares two (see ``SmallKey``), about a tenth of the cost of going through the bytes. (A perfect hash of the set would spare the probe loop, but its
/// building is long for 100,000 names, and the table's probes are about one already.)
///
/// - Complexity: lookup O(length of the name), one probe on average.
final class TaskNameTable: @unchecked Sendable {
    /// The name's ``SmallKey`` ((0, 0) for a name of more than 15 bytes), the high 32 bits of
    /// its hash, and the task index plus one (0: an empty slot): a short name's probe compares
    /// its key in the slot itself, one cache line for the whole look-up.
    fileprivate struct Slot {
        var key: SmallKey
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
        slots.initialize(repeating: Slot(key: SmallKey(low: 0, high: 0), tag: 0, taskPlusOne: 0))
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
            let nameBytes = UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(bytes)[starts[task]..<offset])
            let key = SmallKey(nameBytes)
            let hash = key?.hash ?? Self.hash(nameBytes)
            var position = Int(truncatingIfNeeded: hash) & mask
            while slots[position].taskPlusOne != 0 { position = (position + 1) & mask }
            slots[position] = Slot(
                key: key ?? SmallKey(low: 0, high: 0), tag: UInt32(truncatingIfNeeded: hash >> 32),
                taskPlusOne: UInt32(task + 1))
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
    var lookup: Lookup {
        Lookup(
            slots: slots, mask: mask, bytes: bytes, starts: starts, wordsAreKeys: Self.smallStringsAreKeys)
    }

    struct Lookup: @unchecked Sendable {
        fileprivate let slots: UnsafeMutableBufferPointer<Slot>
        fileprivate let mask: Int
        fileprivate let bytes: UnsafeMutableRawBufferPointer
        fileprivate let starts: UnsafeMutableBufferPointer<Int>
        /// ``TaskNameTable/smallStringsAreKeys``, copied (a global's read checks its initialization).
        fileprivate let wordsAreKeys: Bool

        /// The task whose name has exactly the bytes of `name`, or nil.
        @inline(__always)
        func index(of name: String) -> Int? {
            if wordsAreKeys, let key = SmallKey(name) { return index(of: key) }
            return slowPathIndex(of: name)
        }

        @inline(never)
        private func slowPathIndex(of name: String) -> Int? {
            let found: Int?? = name.utf8.withContiguousStorageIfAvailable { index(of: UnsafeRawBufferPointer($0)) }
            if let found { return found }
            return Array(name.utf8).withUnsafeBytes { index(of: $0) }
        }

        @inline(__always)
        private func index(of key: SmallKey) -> Int? {
            probe(key.hash) { $0.key == key }
        }

        private func index(of name: UnsafeRawBufferPointer) -> Int? {
            if let key = SmallKey(name) { return index(of: key) }
            return probe(TaskNameTable.hash(name)) { equal(Int($0.taskPlusOne &- 1), name) }
        }

        /// Linear probing from `hash`: the task of the first slot whose tag matches and for
        /// which `matches` holds, or nil at the first empty slot.
        @inline(__always)
        private func probe(_ hash: UInt64, _ matches: (Slot) -> Bool) -> Int? {
            let tag = UInt32(truncatingIfNeeded: hash >> 32)
            var position = Int(truncatingIfNeeded: hash) & mask
            while true {
                let slot = slots[position]
                if slot.taskPlusOne == 0 { return nil }
                if slot.tag == tag && matches(slot) { return Int(slot.taskPlusOne &- 1) }
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

/// A name of at most 15 UTF-8 bytes as the two words of Swift's small string form on 64-bit
/// platforms: bytes 0 to 7 in `low`, bytes 8 to 14 in `high`, zero-padded, and in `high`'s top
/// byte the count and the small-form flags (bit 63 immortal, bit 61 small; bit 62, whether the
/// bytes are ASCII, is cleared, as it follows from the bytes). This layout is the standard
/// library's `_StringObject` ABI, stable on Apple's platforms and the same on Linux; it is
/// checked once at start-up (``TaskNameTable/smallStringsAreKeys``), and if it ever differs, or on
/// 32-bit platforms, every look-up takes the byte path instead.
struct SmallKey: Equatable {
    var low: UInt64
    var high: UInt64

    private static let smallFlags: UInt64 = 0xA0 << 56
    private static let asciiFlag: UInt64 = 1 << 62

    init(low: UInt64, high: UInt64) {
        self.low = low
        self.high = high
    }

    /// The key of `bytes`, or nil when there are more than 15.
    @inline(__always)
    init?(_ bytes: UnsafeRawBufferPointer) {
        let count = bytes.count
        guard count <= 15 else { return nil }
        var low: UInt64 = 0
        var high: UInt64 = 0
        for index in 0..<count {
            let byte = UInt64(bytes[index])
            if index < 8 {
                low |= byte << UInt64(8 * index)
            } else {
                high |= byte << UInt64(8 * (index - 8))
            }
        }
        self.init(low: low, high: high | Self.smallFlags | UInt64(count) << 56)
    }

    /// The key of `string` if it is stored in the small form (no copy of its bytes), else nil.
    /// - Precondition: ``TaskNameTable/smallStringsAreKeys``.
    @inline(__always)
    init?(_ string: String) {
        let (low, high) = Self.words(of: string)
        guard high & Self.smallFlags == Self.smallFlags else { return nil }
        self.init(low: low, high: high & ~Self.asciiFlag)
    }

    /// `string`'s two words as they are (no retain: a bitwise copy of the value).
    @inline(__always)
    static func words(of string: String) -> (UInt64, UInt64) {
        unsafeBitCast(string, to: (UInt64, UInt64).self)
    }

    /// Two words mixed (two multiplications, then murmur3's finalizer's last rounds) so that
    /// the low bits, which pick the slot, and the high ones, the tag, depend on every byte.
    @inline(__always)
    var hash: UInt64 {
        var state = (low &* 0x9E37_79B9_7F4A_7C15) ^ (high &* 0xC2B2_AE3D_27D4_EB4F)
        state ^= state >> 32
        state = state &* 0xFF51_AFD7_ED55_8CCD
        state ^= state >> 29
        return state
    }
}

extension TaskNameTable {
    /// Whether `SmallKey.init(_: String)` may read a `String`'s words: a 64-bit platform, and
    /// strings made at run time in the small form have the layout ``SmallKey`` expects, ASCII or
    /// not, while a long string does not look small.
    static let smallStringsAreKeys: Bool = {
        guard MemoryLayout<String>.size == 16 else { return false }
        func smallKey(_ bytes: [UInt8]) -> SmallKey? { bytes.withUnsafeBytes { SmallKey($0) } }
        for sample: [UInt8] in [[0x61, 0x62], [0xC3, 0xA9, 0x2D, 0x31], Array("0123456789abcde".utf8), []] {
            let string = String(decoding: sample, as: UTF8.self)
            let (low, high) = SmallKey.words(of: string)
            guard let expected = smallKey(sample), SmallKey(low: low, high: high & ~(1 << 62)) == expected
            else { return false }
        }
        let long = String(decoding: Array(repeating: UInt8(0x78), count: 40), as: UTF8.self)
        return SmallKey.words(of: long).1 & (0xA0 << 56) != 0xA0 << 56
    }()
}
