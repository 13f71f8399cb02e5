/// Writes compact JSON text into a byte buffer, member by member, so that
/// replies and events are encoded in their fixed key order without building a
/// ``JSONValue`` tree first.
///
/// The writer does not check structure: callers open and close what they write.
/// Commas are inserted automatically between members and elements.
struct JSONWriter: ~Copyable {
    // A growable buffer of its own rather than an [UInt8]: every token used to be one or more
    // Array appends, each with a uniqueness and capacity check (measured: a third of a
    // 100-task status reply's encoding time). Noncopyable, so the memory has one owner.
    private var base: UnsafeMutablePointer<UInt8>
    private var count = 0
    private var capacity: Int
    /// Whether the next member or element of the innermost container needs a comma.
    private var needsComma = false
    /// The last date written (days since the epoch) and its `YYYY-MM-DD` text: the times of one
    /// reply mostly share their day, and the calendar arithmetic is most of a time's cost.
    private var cachedDay = Int64.min
    private var cachedDate: (UInt64, UInt16) = (0, 0)

    init(capacity: Int = 128) {
        self.capacity = max(capacity, 32)
        base = .allocate(capacity: self.capacity)
    }

    deinit {
        base.deallocate()
    }

    /// The bytes written so far.
    var bytes: UnsafeBufferPointer<UInt8> { UnsafeBufferPointer(start: base, count: count) }

    /// The text written so far.
    var text: String { String(decoding: bytes, as: UTF8.self) }

    /// Appends what was written, and a newline, to `output`.
    mutating func appendLine(to output: inout [UInt8]) {
        put(10)
        output.append(contentsOf: bytes)
    }

    /// The bytes written and a newline.
    mutating func line() -> [UInt8] {
        put(10)
        return Array(bytes)
    }

    // MARK: Raw output

    @inline(__always)
    private mutating func reserve(_ extra: Int) {
        if count + extra > capacity { grow(to: count + extra) }
    }

    private mutating func grow(to needed: Int) {
        let newCapacity = max(needed, capacity * 2)
        let newBase = UnsafeMutablePointer<UInt8>.allocate(capacity: newCapacity)
        newBase.update(from: base, count: count)
        base.deallocate()
        base = newBase
        capacity = newCapacity
    }

    @inline(__always)
    private mutating func put(_ byte: UInt8) {
        reserve(1)
        base[count] = byte
        count += 1
    }

    @inline(__always)
    private mutating func put(_ first: UInt8, _ second: UInt8) {
        reserve(2)
        base[count] = first
        base[count + 1] = second
        count += 2
    }

    private mutating func put(_ buffer: UnsafeBufferPointer<UInt8>) {
        guard let source = buffer.baseAddress, buffer.count > 0 else { return }
        let length = buffer.count
        reserve(length)
        UnsafeMutableRawPointer(base + count).copyMemory(from: source, byteCount: length)
        count += length
    }

    private mutating func put(_ text: StaticString) {
        // Literals always have a pointer representation.
        put(UnsafeBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    @inline(__always)
    private mutating func separate() {
        if needsComma { put(UInt8(ascii: ",")) }
        needsComma = true
    }

    mutating func beginObject() {
        separate()
        put(UInt8(ascii: "{"))
        needsComma = false
    }

    mutating func endObject() {
        put(UInt8(ascii: "}"))
        needsComma = true
    }

    mutating func beginArray() {
        separate()
        put(UInt8(ascii: "["))
        needsComma = false
    }

    mutating func endArray() {
        put(UInt8(ascii: "]"))
        needsComma = true
    }

    /// Writes `"key":` for a fixed key (a literal: plain ASCII that needs no escape, copied as
    /// it is); the value written next belongs to it.
    mutating func key(_ key: StaticString) {
        let length = key.utf8CodeUnitCount
        reserve(length &+ 4)
        var at = base + count
        if needsComma {
            at.pointee = UInt8(ascii: ",")
            at += 1
        }
        at.pointee = UInt8(ascii: "\"")
        UnsafeMutableRawPointer(at + 1).copyMemory(from: key.utf8Start, byteCount: length)
        at += length &+ 1
        at[0] = UInt8(ascii: "\"")
        at[1] = UInt8(ascii: ":")
        count = at - base + 2
        needsComma = false
    }

    /// Writes `"name":` for a key that is data (a task's name), escaped as a string.
    /// Bytes as a member: `"textKey":"..."` when they are valid UTF-8, else
    /// `"base64Key":"..."` in standard padded Base64 (a result's output, an event's data).
    mutating func bytes(_ bytes: [UInt8], textKey: StaticString, base64Key: StaticString) {
        if let text = String(validating: bytes, as: UTF8.self) {
            key(textKey)
            string(text)
        } else {
            key(base64Key)
            string(Base64.encode(bytes))
        }
    }

    mutating func key(name: String) {
        separate()
        writeEscaped(name)
        put(UInt8(ascii: ":"))
        needsComma = false
    }

    mutating func null() {
        separate()
        put("null")
    }

    mutating func bool(_ value: Bool) {
        separate()
        put(value ? "true" : "false")
    }

    mutating func int(_ value: Int64) {
        separate()
        writeDecimal(value)
    }

    mutating func int(_ value: Int) { int(Int64(value)) }

    /// Writes the shortest text that reads back as the same `Double`;
    /// a non-finite value (which JSON cannot express) is written as `null`.
    mutating func double(_ value: Double) {
        separate()
        if value.isFinite {
            // Swift's description is the shortest round-trip form and always valid JSON
            // for finite values ("1.5", "100.0", "1e-07", "1e+16", "-0.0").
            var text = value.description
            text.withUTF8 { put($0) }
        } else {
            put("null")
        }
    }

    mutating func string(_ value: String) {
        separate()
        writeEscaped(value)
    }

    mutating func value(_ value: JSONValue) {
        switch value {
        case .null: null()
        case .bool(let flag): bool(flag)
        case .int(let number): int(number)
        case .double(let number): double(number)
        case .string(let text): string(text)
        case .array(let elements):
            beginArray()
            for element in elements { self.value(element) }
            endArray()
        case .object(let object):
            beginObject()
            for pair in object.pairs {
                key(name: pair.key)
                self.value(pair.value)
            }
            endObject()
        }
    }

    // Convenience for the many optional members of replies: nil is written as null.

    mutating func string(_ value: String?) {
        if let value { string(value) } else { null() }
    }

    mutating func int(_ value: Int?) {
        if let value { int(value) } else { null() }
    }

    /// An RFC 3339 time with milliseconds, in quotes (it never needs an escape); `exact` adds
    /// the sub-millisecond digits when there are any (nine fraction digits then).
    mutating func timestamp(_ value: Timestamp?, exact: Bool = false) {
        guard let value else { return null() }
        separate()
        put(UInt8(ascii: "\""))
        writeTime(value, exact: exact)
        put(UInt8(ascii: "\""))
    }

    /// `YYYY-MM-DDTHH:MM:SS.mmmZ`, unquoted (``Timestamp/formatted()``); with `exact` and a time
    /// that is not a whole millisecond, `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`.
    mutating func writeTime(_ time: Timestamp, exact: Bool = false) {
        let milliseconds = Timestamp.floorDivide(time.nanosecondsSinceEpoch, 1_000_000)
        let seconds = Timestamp.floorDivide(milliseconds, 1000)
        let days = Timestamp.floorDivide(seconds, 86_400)
        let millisecond = Int(milliseconds - seconds * 1000)
        let secondOfDay = Int(seconds - days * 86_400)
        reserve(24)
        if days != cachedDay {
            let (year, month, day) = Timestamp.civil(fromDays: days)
            let start = count
            digits(Int(year), 4)
            put(UInt8(ascii: "-"))
            digits(month, 2)
            put(UInt8(ascii: "-"))
            digits(day, 2)
            let raw = UnsafeRawPointer(base + start)
            cachedDate = (raw.loadUnaligned(as: UInt64.self), raw.loadUnaligned(fromByteOffset: 8, as: UInt16.self))
            cachedDay = days
        } else {
            let raw = UnsafeMutableRawPointer(base + count)
            raw.storeBytes(of: cachedDate.0, as: UInt64.self)
            raw.storeBytes(of: cachedDate.1, toByteOffset: 8, as: UInt16.self)
            count += 10
        }
        put(UInt8(ascii: "T"))
        digits(secondOfDay / 3600, 2)
        put(UInt8(ascii: ":"))
        digits(secondOfDay / 60 % 60, 2)
        put(UInt8(ascii: ":"))
        digits(secondOfDay % 60, 2)
        put(UInt8(ascii: "."))
        digits(millisecond, 3)
        if exact {
            let nanoseconds = time.nanosecondsSinceEpoch - milliseconds * 1_000_000
            if nanoseconds != 0 { digits(Int(nanoseconds), 6) }
        }
        put(UInt8(ascii: "Z"))
    }

    /// `value` in exactly `width` digits (zero-padded; the lowest digits of a larger value),
    /// two at a time from a table.
    @inline(__always)
    private mutating func digits(_ value: Int, _ width: Int) {
        reserve(width)
        var rest = value.magnitude
        var index = count + width
        JSONWriter.digitPairs.withUTF8Buffer { pairs in
            while index - count >= 2 {
                let pair = Int(truncatingIfNeeded: rest % 100) * 2
                rest /= 100
                index -= 2
                base[index] = pairs[pair]
                base[index + 1] = pairs[pair + 1]
            }
            if index > count {
                base[count] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: rest % 10)
            }
        }
        count += width
    }

    private static let digitPairs: StaticString =
        "00010203040506070809101112131415161718192021222324252627282930313233343536373839404142434445464748495051525354555657585960616263646566676869707172737475767778798081828384858687888990919293949596979899"

    /// The members every run outcome shares (`run` replies, `task_finished`, `last`), in SPEC
    /// order: `exit_code`, `signal`, `timed_out`, `succeeded`.
    mutating func outcomeMembers(exitCode: Int?, signal: Int?, timedOut: Bool, succeeded: Bool) {
        key("exit_code")
        int(exitCode)
        key("signal")
        int(signal)
        key("timed_out")
        bool(timedOut)
        key("succeeded")
        bool(succeeded)
    }

    private mutating func writeDecimal(_ value: Int64) {
        var rest = value.magnitude
        var width = 1
        var limit: UInt64 = 10
        while width < 20 && rest >= limit {
            width += 1
            limit = limit &* 10
        }
        reserve(width + 1)
        if value < 0 { put(UInt8(ascii: "-")) }
        var index = count + width - 1
        while index >= count {
            base[index] = UInt8(ascii: "0") + UInt8(rest % 10)
            rest /= 10
            index -= 1
        }
        count += width
    }

    private static let hexDigits: StaticString = "0123456789abcdef"

    /// Runs of bytes that need no escape are copied whole; this is the hot path of every
    /// reply (a `status` of 100 tasks writes hundreds of strings).
    private mutating func writeEscaped(_ text: String) {
        put(UInt8(ascii: "\""))
        var text = text
        text.withUTF8 { writeEscapedContent($0) }
        put(UInt8(ascii: "\""))
    }

    /// Writes the escaped form of UTF-8 text without its quotes. Only single ASCII bytes are
    /// ever escaped, so text cut anywhere and written piece by piece gives the same bytes as
    /// written whole (sliced replies rely on it).
    mutating func writeEscapedContent(_ utf8: UnsafeBufferPointer<UInt8>) {
        var runStart = 0
        for index in 0..<utf8.count {
            let byte = utf8[index]
            if byte >= 0x20 && byte != UInt8(ascii: "\"") && byte != UInt8(ascii: "\\") && byte != 0x7F {
                continue
            }
            put(UnsafeBufferPointer(rebasing: utf8[runStart..<index]))
            writeEscape(byte)
            runStart = index + 1
        }
        put(UnsafeBufferPointer(rebasing: utf8[runStart...]))
    }

    /// Writes a byte as it is (a piece of JSON already encoded: a comma, a quote).
    mutating func raw(_ byte: UInt8) {
        put(byte)
    }

    /// Writes an element or value that is already JSON text (a ``TaskStatusRecord``'s row),
    /// separated from the one before it as any value is.
    mutating func encodedValue(_ text: [UInt8]) {
        separate()
        text.withUnsafeBufferPointer { put($0) }
        needsComma = true
    }

    /// Appends what was written to `output`, without a newline.
    func append(to output: inout [UInt8]) {
        output.append(contentsOf: bytes)
    }

    private mutating func writeEscape(_ byte: UInt8) {
        switch byte {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"): put(UInt8(ascii: "\\"), byte)
        case 0x0A: put(UInt8(ascii: "\\"), UInt8(ascii: "n"))
        case 0x0D: put(UInt8(ascii: "\\"), UInt8(ascii: "r"))
        case 0x09: put(UInt8(ascii: "\\"), UInt8(ascii: "t"))
        case 0x08: put(UInt8(ascii: "\\"), UInt8(ascii: "b"))
        case 0x0C: put(UInt8(ascii: "\\"), UInt8(ascii: "f"))
        default:
            put("\\u00")
            JSONWriter.hexDigits.withUTF8Buffer { hex in
                put(hex[Int(byte >> 4)], hex[Int(byte & 0x0F)])
            }
        }
    }
}
