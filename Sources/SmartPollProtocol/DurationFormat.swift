/// Durations as text, in the grammar of Go's `time.ParseDuration`, and as JSON.
///
/// Values are Swift `Duration`s whose range this module limits to `Int64`
/// nanoseconds (about ±292 years), like Go's `time.Duration`.
///
/// Text grammar (``parse(_:)``): an optional sign, then one or more decimal
/// numbers, each with an optional fraction and a unit:
/// `ns`, `us` (also `µs`, `μs`), `ms`, `s`, `m`, `h`, and — beyond Go — `d`
/// (exactly 24 h, no calendar). A number needs a digit before or after the
/// point (`.5s`, `5.s` are fine, `.s` is not). `"0"` alone needs no unit.
/// Exponents are not part of the grammar (`1e3s` is an unknown unit `e`).
/// Fractions beyond 18 digits are truncated; the result is truncated to whole
/// nanoseconds. Negative durations are accepted; the caller decides where they
/// make sense (`schedule` uses them to clear a schedule).
///
/// Canonical text (``format(_:)``) is exactly Go's `Duration.String()`: the
/// largest unit is hours, with zero minutes and seconds written out (`2h0m0s`,
/// `1m30s`, `-1h0m0s`, `1.5s`, `0s`); below one second a single unit `ms`,
/// `µs` (U+00B5) or `ns` with a fraction (`250ms`, `1.5µs`, `1ns`). Trailing zeros
/// of fractions are dropped. It never uses `d`. Parsing the canonical text gives
/// back the same value.
public enum DurationFormat {
    /// The largest duration: `Int64.max` nanoseconds (`2562047h47m16.854775807s`).
    public static let maximum = Duration.nanoseconds(Int64.max)
    /// The smallest duration: `Int64.min` nanoseconds.
    public static let minimum = Duration.nanoseconds(Int64.min)

    /// Parses duration text such as `250ms`, `1m30s`, `-1.5h`, `2d`.
    ///
    /// - Throws: ``ErrorCode/invalidArgument`` naming the input and why, for example
    ///   `unknown unit "x" in duration "5x"`.
    public static func parse(_ text: String) throws(ProtocolError) -> Duration {
        .nanoseconds(try parseNanoseconds(text))
    }

    /// As ``parse(_:)``, giving nanoseconds.
    public static func parseNanoseconds(_ text: String) throws(ProtocolError) -> Int64 {
        try withContiguousBytes(of: text) { (bytes) throws(ProtocolError) -> Int64 in
            try parseNanoseconds(bytes, text: text)
        }
    }

    /// The canonical text of `duration` (see the type's documentation); a duration
    /// beyond the `Int64` nanosecond range is clamped to it first.
    public static func format(_ duration: Duration) -> String {
        format(nanoseconds: nanoseconds(of: duration) ?? (duration < .zero ? .min : .max))
    }

    /// The canonical text of a duration given in nanoseconds.
    public static func format(nanoseconds: Int64) -> String {
        // Go's Duration.format, writing backwards into a buffer.
        var buffer = [UInt8](repeating: 0, count: 32)
        var position = buffer.count
        var value = nanoseconds.magnitude
        func put(_ byte: UInt8) {
            position -= 1
            buffer[position] = byte
        }
        func putFraction(precision: Int) {
            var printing = false
            for _ in 0..<precision {
                let digit = UInt8(value % 10)
                printing = printing || digit != 0
                if printing { put(UInt8(ascii: "0") + digit) }
                value /= 10
            }
            if printing { put(UInt8(ascii: ".")) }
        }
        func putInteger(_ number: UInt64) {
            var number = number
            if number == 0 {
                put(UInt8(ascii: "0"))
                return
            }
            while number > 0 {
                put(UInt8(ascii: "0") + UInt8(number % 10))
                number /= 10
            }
        }
        if value < 1_000_000_000 {
            put(UInt8(ascii: "s"))
            if value == 0 {
                put(UInt8(ascii: "0"))
                return String(decoding: buffer[position...], as: UTF8.self)
            } else if value < 1000 {
                put(UInt8(ascii: "n"))
                putFraction(precision: 0)
            } else if value < 1_000_000 {
                put(0xB5)
                put(0xC2)
                putFraction(precision: 3)
            } else {
                put(UInt8(ascii: "m"))
                putFraction(precision: 6)
            }
            putInteger(value)
        } else {
            put(UInt8(ascii: "s"))
            putFraction(precision: 9)
            putInteger(value % 60)
            value /= 60
            if value > 0 {
                put(UInt8(ascii: "m"))
                putInteger(value % 60)
                value /= 60
                if value > 0 {
                    put(UInt8(ascii: "h"))
                    putInteger(value)
                }
            }
        }
        if nanoseconds < 0 { put(UInt8(ascii: "-")) }
        return String(decoding: buffer[position...], as: UTF8.self)
    }

    /// `duration` in whole nanoseconds (truncated towards zero), or `nil` when it
    /// lies outside the `Int64` range.
    public static func nanoseconds(of duration: Duration) -> Int64? {
        Int64(exactly: duration.attoseconds / 1_000_000_000)
    }

    /// Reads a duration from JSON: a string in the text grammar, or a number of
    /// seconds (integer or fractional, rounded to the nearest nanosecond).
    ///
    /// - Throws: ``ErrorCode/badRequest`` for another JSON type,
    ///   ``ErrorCode/invalidArgument`` for bad text or a number out of range;
    ///   messages start with `field "<field>": `.
    public static func decode(_ value: JSONValue, field: String) throws(ProtocolError) -> Duration {
        do {
            return try decode(value)
        } catch {
            throw error.inField(field)
        }
    }

    /// ``decode(_:field:)`` without naming a field, for callers that say where the
    /// value came from in their own way (a configuration key path).
    public static func decode(_ value: JSONValue) throws(ProtocolError) -> Duration {
        switch value {
        case .string(let text):
            return try parse(text)
        case .int(let seconds):
            let (nanoseconds, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
            guard !overflow else {
                throw ProtocolError.invalidArgument("\(seconds) seconds is out of range (at most about 292 years)")
            }
            return .nanoseconds(nanoseconds)
        case .double(let seconds):
            let nanoseconds = (seconds * 1e9).rounded()
            guard nanoseconds >= -9.223372036854775808e18, nanoseconds < 9.223372036854775808e18 else {
                throw ProtocolError.invalidArgument("\(seconds) seconds is out of range (at most about 292 years)")
            }
            return .nanoseconds(Int64(nanoseconds))
        case .null, .bool, .array, .object:
            throw ProtocolError.badRequest("expected a duration string or number, got \(value.shortDescription)")
        }
    }

    /// The JSON form written by this module: the canonical text as a string.
    public static func encode(_ duration: Duration) -> JSONValue {
        .string(format(duration))
    }

    private static func unitNanoseconds(_ unit: UnsafeRawBufferPointer) -> UInt64? {
        switch unit.count {
        case 1:
            switch unit[0] {
            case UInt8(ascii: "s"): return 1_000_000_000
            case UInt8(ascii: "m"): return 60_000_000_000
            case UInt8(ascii: "h"): return 3_600_000_000_000
            case UInt8(ascii: "d"): return 86_400_000_000_000
            default: return nil
            }
        case 2 where unit[1] == UInt8(ascii: "s"):
            switch unit[0] {
            case UInt8(ascii: "n"): return 1
            case UInt8(ascii: "u"): return 1000
            case UInt8(ascii: "m"): return 1_000_000
            default: return nil
            }
        case 3 where unit[2] == UInt8(ascii: "s"):
            // U+00B5 MICRO SIGN and U+03BC GREEK SMALL LETTER MU, as Go accepts.
            if (unit[0] == 0xC2 && unit[1] == 0xB5) || (unit[0] == 0xCE && unit[1] == 0xBC) { return 1000 }
            return nil
        default:
            return nil
        }
    }

    private static func parseNanoseconds(_ bytes: UnsafeRawBufferPointer, text: String) throws(ProtocolError) -> Int64 {
        let quoted = JSONValue.string(text).shortDescription
        func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }
        let units = "use ns, us, ms, s, m, h or d, as in \"1m30s\""
        var index = 0
        var negative = false
        if index < bytes.count, bytes[index] == UInt8(ascii: "-") || bytes[index] == UInt8(ascii: "+") {
            negative = bytes[index] == UInt8(ascii: "-")
            index += 1
        }
        if bytes.count - index == 1, bytes[index] == UInt8(ascii: "0") { return 0 }
        guard index < bytes.count else {
            throw .invalidArgument("invalid duration \(quoted): expected a number and a unit, \(units)")
        }
        let limit: UInt64 = 1 << 63
        var total: UInt64 = 0
        let outOfRange = ProtocolError.invalidArgument("duration \(quoted) is out of range (at most about 292 years)")
        while index < bytes.count {
            guard bytes[index] == UInt8(ascii: ".") || isDigit(bytes[index]) else {
                throw .invalidArgument("invalid duration \(quoted): expected a number and a unit, \(units)")
            }
            var whole: UInt64 = 0
            var wholeDigits = 0
            var wholeOverflow = false
            while index < bytes.count, isDigit(bytes[index]) {
                let (times, overflow1) = whole.multipliedReportingOverflow(by: 10)
                let (plus, overflow2) = times.addingReportingOverflow(UInt64(bytes[index] - UInt8(ascii: "0")))
                if overflow1 || overflow2 || plus > limit { wholeOverflow = true }
                whole = plus
                wholeDigits += 1
                index += 1
            }
            var fraction: UInt64 = 0
            var fractionScale: UInt64 = 1
            var fractionDigits = 0
            if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
                index += 1
                while index < bytes.count, isDigit(bytes[index]) {
                    if fractionDigits < 18 {
                        fraction = fraction * 10 + UInt64(bytes[index] - UInt8(ascii: "0"))
                        fractionScale *= 10
                    }
                    fractionDigits += 1
                    index += 1
                }
            }
            guard wholeDigits > 0 || fractionDigits > 0 else {
                throw .invalidArgument("invalid duration \(quoted): expected digits around \".\"")
            }
            let unitStart = index
            while index < bytes.count, bytes[index] != UInt8(ascii: "."), !isDigit(bytes[index]) { index += 1 }
            guard index > unitStart else {
                throw .invalidArgument("missing unit in duration \(quoted): \(units)")
            }
            let unitBytes = UnsafeRawBufferPointer(rebasing: bytes[unitStart..<index])
            guard let unit = unitNanoseconds(unitBytes) else {
                let unitText = String(decoding: unitBytes, as: UTF8.self)
                throw .invalidArgument(
                    "unknown unit \(JSONValue.string(unitText).shortDescription) in duration \(quoted): \(units)")
            }
            guard !wholeOverflow else { throw outOfRange }
            let (scaled, overflow) = whole.multipliedReportingOverflow(by: unit)
            guard !overflow, scaled <= limit else { throw outOfRange }
            var component = scaled
            if fraction > 0 {
                // fraction < 10^18 and unit < 10^14: the product fits in 128 bits.
                let part = UInt64((UInt128(fraction) * UInt128(unit)) / UInt128(fractionScale))
                component += part
                guard component <= limit else { throw outOfRange }
            }
            total += component
            guard total <= limit else { throw outOfRange }
        }
        if negative { return total == limit ? Int64.min : -Int64(total) }
        guard total < limit else { throw outOfRange }
        return Int64(total)
    }
}
