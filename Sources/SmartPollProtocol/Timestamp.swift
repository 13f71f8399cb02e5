#if hasFeature(Embedded)
import CSmartPollPosix
#else
import Glibc
#endif

/// A point in time: nanoseconds since 1970-01-01T00:00:00Z (Unix time, no leap seconds).
///
/// On the wire a time is an RFC 3339 string. ``parse(_:)`` accepts any offset
/// and any number of fraction digits; ``formatted()`` always writes UTC with
/// exactly three fraction digits (`2026-11-30T01:44:32.123Z`), truncating
/// towards the past. The representable range is that of `Int64` nanoseconds:
/// 1677-09-21T00:12:43.145224192Z to 2262-04-11T23:47:16.854775807Z.
public struct Timestamp: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// Nanoseconds since the Unix epoch; negative before 1970.
    public var nanosecondsSinceEpoch: Int64

    public init(nanosecondsSinceEpoch: Int64) {
        self.nanosecondsSinceEpoch = nanosecondsSinceEpoch
    }

    /// The current wall-clock time (`clock_gettime(CLOCK_REALTIME)`).
    public static func now() -> Timestamp {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Timestamp(nanosecondsSinceEpoch: Int64(spec.tv_sec) &* 1_000_000_000 &+ Int64(spec.tv_nsec))
    }

    public static func < (left: Timestamp, right: Timestamp) -> Bool {
        left.nanosecondsSinceEpoch < right.nanosecondsSinceEpoch
    }

    /// This time moved by `duration` (sub-nanosecond parts dropped), saturating at
    /// the ends of the representable range.
    public func advanced(by duration: Duration) -> Timestamp {
        let delta =
            DurationFormat.nanoseconds(of: duration)
            ?? (duration < .zero ? Int64.min : Int64.max)
        let (sum, overflow) = nanosecondsSinceEpoch.addingReportingOverflow(delta)
        if overflow { return Timestamp(nanosecondsSinceEpoch: delta < 0 ? .min : .max) }
        return Timestamp(nanosecondsSinceEpoch: sum)
    }

    /// The duration from this time to `other` (negative when `other` is earlier).
    public func duration(to other: Timestamp) -> Duration {
        let difference = Int128(other.nanosecondsSinceEpoch) - Int128(nanosecondsSinceEpoch)
        return Duration(attoseconds: difference * 1_000_000_000)
    }

    /// The RFC 3339 form, as ``formatted()``.
    public var description: String { formatted() }

    /// RFC 3339 in UTC with exactly three fraction digits: `2026-11-30T01:44:32.123Z`.
    /// Sub-millisecond digits are truncated towards the past (floor), also before 1970.
    public func formatted() -> String {
        var writer = JSONWriter(capacity: 32)
        writer.writeTime(self)
        return writer.text
    }

    /// The calendar fields of this time in UTC (milliseconds rounded down).
    var parts: (year: Int, month: Int, day: Int, hour: Int, minute: Int, second: Int, millisecond: Int) {
        let milliseconds = Timestamp.floorDivide(nanosecondsSinceEpoch, 1_000_000)
        let seconds = Timestamp.floorDivide(milliseconds, 1000)
        let millisecond = Int(milliseconds - seconds * 1000)
        let days = Timestamp.floorDivide(seconds, 86_400)
        let secondOfDay = Int(seconds - days * 86_400)
        let (year, month, day) = Timestamp.civil(fromDays: days)
        return (Int(year), month, day, secondOfDay / 3600, secondOfDay / 60 % 60, secondOfDay % 60, millisecond)
    }

    /// Parses an RFC 3339 date-time: `YYYY-MM-DDTHH:MM:SS[.fraction](Z|+hh:mm|-hh:mm)`.
    ///
    /// `T`/`t` and `Z`/`z` are accepted in either case; the fraction may have any
    /// number of digits (beyond nine they are truncated). Month, day (with leap
    /// years), hour, minute, second and offset ranges are checked.
    ///
    /// - Throws: ``ErrorCode/invalidArgument`` naming the input and the reason.
    ///   A leap second (`:60`) is rejected, as is a time outside the representable range.
    public static func parse(_ text: String) throws(ProtocolError) -> Timestamp {
        try withContiguousBytes(of: text) { (bytes) throws(ProtocolError) -> Timestamp in
            try parse(bytes, text: text)
        }
    }

    private static func parse(_ bytes: UnsafeRawBufferPointer, text: String) throws(ProtocolError) -> Timestamp {
        func fail(_ reason: String) -> ProtocolError {
            .invalidArgument("invalid time \(JSONValue.string(text).shortDescription): \(reason)")
        }
        let grammar = "expected RFC 3339 such as 2026-11-30T01:44:32.123Z"
        var index = 0
        func number(_ digits: Int) throws(ProtocolError) -> Int {
            guard index + digits <= bytes.count else { throw fail(grammar) }
            var value = 0
            for offset in 0..<digits {
                let byte = bytes[index + offset]
                guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { throw fail(grammar) }
                value = value * 10 + Int(byte - UInt8(ascii: "0"))
            }
            index += digits
            return value
        }
        func expect(_ characters: UInt8...) throws(ProtocolError) {
            guard index < bytes.count, characters.contains(bytes[index]) else { throw fail(grammar) }
            index += 1
        }
        let year = try number(4)
        try expect(UInt8(ascii: "-"))
        let month = try number(2)
        try expect(UInt8(ascii: "-"))
        let day = try number(2)
        try expect(UInt8(ascii: "T"), UInt8(ascii: "t"))
        let hour = try number(2)
        try expect(UInt8(ascii: ":"))
        let minute = try number(2)
        try expect(UInt8(ascii: ":"))
        let second = try number(2)
        var nanosecond = 0
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            index += 1
            var digits = 0
            while index < bytes.count, bytes[index] >= UInt8(ascii: "0"), bytes[index] <= UInt8(ascii: "9") {
                if digits < 9 { nanosecond = nanosecond * 10 + Int(bytes[index] - UInt8(ascii: "0")) }
                digits += 1
                index += 1
            }
            guard digits > 0 else { throw fail("expected digits after \".\"") }
            for _ in min(digits, 9)..<9 { nanosecond *= 10 }
        }
        var offsetSeconds = 0
        guard index < bytes.count else { throw fail("missing time zone offset (Z or +hh:mm)") }
        switch bytes[index] {
        case UInt8(ascii: "Z"), UInt8(ascii: "z"):
            index += 1
        case UInt8(ascii: "+"), UInt8(ascii: "-"):
            let sign = bytes[index] == UInt8(ascii: "-") ? -1 : 1
            index += 1
            let offsetHour = try number(2)
            try expect(UInt8(ascii: ":"))
            let offsetMinute = try number(2)
            guard offsetHour <= 23, offsetMinute <= 59 else { throw fail("time zone offset out of range") }
            offsetSeconds = sign * (offsetHour * 3600 + offsetMinute * 60)
        default:
            throw fail("expected Z or +hh:mm after the time")
        }
        guard index == bytes.count else { throw fail("unexpected characters after the time zone") }
        guard (1...12).contains(month) else { throw fail("month \(month) out of range") }
        guard day >= 1, day <= daysInMonth(year: year, month: month) else {
            throw fail("day \(day) out of range for \(year)-\(month < 10 ? "0" : "")\(month)")
        }
        guard hour <= 23 else { throw fail("hour \(hour) out of range") }
        guard minute <= 59 else { throw fail("minute \(minute) out of range") }
        guard second <= 59 else {
            throw fail(second == 60 ? "leap seconds are not supported" : "second \(second) out of range")
        }
        let days = daysFromCivil(year: Int64(year), month: month, day: day)
        let seconds = days * 86_400 + Int64(hour * 3600 + minute * 60 + second) - Int64(offsetSeconds)
        guard let total = Int64(exactly: Int128(seconds) * 1_000_000_000 + Int128(nanosecond)) else {
            throw fail("out of the representable range (years 1677 to 2262)")
        }
        return Timestamp(nanosecondsSinceEpoch: total)
    }

    static func isLeapYear(_ year: Int) -> Bool {
        year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
    }

    static func daysInMonth(year: Int, month: Int) -> Int {
        switch month {
        case 2: return isLeapYear(year) ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    static func floorDivide(_ value: Int64, _ divisor: Int64) -> Int64 {
        let quotient = value / divisor
        return (value % divisor < 0) ? quotient - 1 : quotient
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
    static func daysFromCivil(year: Int64, month: Int, day: Int) -> Int64 {
        let year = month <= 2 ? year - 1 : year
        let era = (year >= 0 ? year : year - 399) / 400
        let yearOfEra = year - era * 400
        let shiftedMonth = Int64(month > 2 ? month - 3 : month + 9)
        let dayOfYear = (153 * shiftedMonth + 2) / 5 + Int64(day) - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    /// The proleptic Gregorian date of a day count since 1970-01-01 (civil_from_days).
    static func civil(fromDays days: Int64) -> (year: Int64, month: Int, day: Int) {
        let shifted = days + 719_468
        let era = (shifted >= 0 ? shifted : shifted - 146_096) / 146_097
        let dayOfEra = shifted - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let shiftedMonth = (5 * dayOfYear + 2) / 153
        let day = Int(dayOfYear - (153 * shiftedMonth + 2) / 5 + 1)
        let month = Int(shiftedMonth < 10 ? shiftedMonth + 3 : shiftedMonth - 9)
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        return (year, month, day)
    }
}
