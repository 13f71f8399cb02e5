import SmartPollProtocol
import Testing

@Suite("Timestamps")
struct TimestampTests {
    static let millisecond: Int64 = 1_000_000
    static let second: Int64 = 1_000_000_000

    static let formatCases: [(Int64, String)] = [
        (0, "1970-01-01T00:00:00.000Z"),
        (1_796_003_072_123_999_999, "2026-11-30T01:44:32.123Z"),
        (-1, "1969-12-31T23:59:59.999Z"),
        (-millisecond, "1969-12-31T23:59:59.999Z"),
        (-millisecond - 1, "1969-12-31T23:59:59.998Z"),
        (-86_400 * second, "1969-12-31T00:00:00.000Z"),
        (951_825_600 * second, "2000-02-29T12:00:00.000Z"),
        (Int64.max, "2262-04-11T23:47:16.854Z"),
        (Int64.min, "1677-09-21T00:12:43.145Z"),
    ]

    static let validCases: [(String, Int64)] = [
        ("1970-01-01T00:00:00Z", 0),
        ("2026-11-30T01:44:32.123Z", 1_796_003_072_123_000_000),
        ("2026-11-30t01:44:32.123z", 1_796_003_072_123_000_000),
        ("2026-11-30T02:44:32.123+01:00", 1_796_003_072_123_000_000),
        ("2026-11-29T20:14:32.123-05:30", 1_796_003_072_123_000_000),
        ("2026-11-30T01:44:32.123456789Z", 1_796_003_072_123_456_789),
        ("2026-11-30T01:44:32.1234567891234Z", 1_796_003_072_123_456_789),
        ("2026-11-30T01:44:32.1Z", 1_796_003_072_100_000_000),
        ("1969-12-31T23:59:59.999Z", -millisecond),
        ("1969-12-31T23:59:59Z", -second),
        ("1900-01-01T00:00:00Z", -2_208_988_800 * second),
        ("2000-02-29T12:00:00Z", 951_825_600 * second),
        ("2024-02-29T00:00:00Z", 1_709_164_800 * second),
        ("2262-04-11T23:47:16.854775807Z", Int64.max),
        ("1677-09-21T00:12:43.145224192Z", Int64.min),
        ("2026-01-01T00:00:00+23:59", 1_767_139_260 * second),
    ]

    @Test("RFC 3339 text parses to nanoseconds since the epoch", arguments: Self.validCases)
    func validTimesParse(text: String, nanoseconds: Int64) throws {
        #expect(try Timestamp.parse(text).nanosecondsSinceEpoch == nanoseconds)
    }

    @Test(
        "invalid times are invalid_argument",
        arguments: [
            "", "2026-11-30", "2026-11-30T01:44:32", "2026-11-30 01:44:32Z", "2026-13-01T00:00:00Z",
            "2026-00-01T00:00:00Z", "2026-02-29T00:00:00Z", "1900-02-29T00:00:00Z", "2026-04-31T00:00:00Z",
            "2026-01-00T00:00:00Z", "2026-01-01T24:00:00Z", "2026-01-01T00:60:00Z", "2026-12-31T23:59:60Z",
            "2026-01-01T00:00:00.Z", "2026-01-01T00:00:00+24:00", "2026-01-01T00:00:00+01:60",
            "2026-01-01T00:00:00+0100",
            "2026-01-01T00:00:00Zjunk", "26-01-01T00:00:00Z", "2026-1-01T00:00:00Z", "2262-04-11T23:47:16.854775808Z",
            "1677-09-21T00:12:43.145224191Z", "9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "2026-01-01T00:00:00UTC",
            "２026-01-01T00:00:00Z",
        ])
    func invalidTimesAreRejected(text: String) {
        do {
            let value = try Timestamp.parse(text)
            Issue.record("\(text.debugDescription) parsed as \(value)")
        } catch {
            #expect(error.code == .invalidArgument)
            #expect(error.message.hasPrefix("invalid time "), "\(error.message)")
        }
    }

    @Test("formatting is UTC with exactly three fraction digits, floored", arguments: Self.formatCases)
    func formattingIsUTCMilliseconds(nanoseconds: Int64, text: String) {
        #expect(Timestamp(nanosecondsSinceEpoch: nanoseconds).formatted() == text)
        #expect(Timestamp(nanosecondsSinceEpoch: nanoseconds).description == text)
    }

    @Test("every day from 1678 to 2261 formats and parses back")
    func everyDayRoundTrips() throws {
        // Day by day over the whole range checks the civil-date conversions and leap years.
        var day: Int64 = -106_000
        while day < 106_000 {
            let midnight = day * 86_400 * Self.second
            let time = Timestamp(nanosecondsSinceEpoch: midnight + 45_296_789_123_456)
            let text = time.formatted()
            let parsed = try Timestamp.parse(text)
            // Formatting floors to the millisecond: 12:34:56.789123 becomes 12:34:56.789.
            #expect(parsed.nanosecondsSinceEpoch == midnight + 45_296_789_000_000, "\(text)")
            day += 1
        }
    }

    @Test("now is close to the present and ordered")
    func nowIsPlausible() {
        let first = Timestamp.now()
        let second = Timestamp.now()
        #expect(first <= second)
        #expect(first > (try! Timestamp.parse("2024-01-01T00:00:00Z")))
    }

    @Test("advancing saturates and durations between times are exact")
    func arithmetic() {
        let time = Timestamp(nanosecondsSinceEpoch: 1000)
        #expect(time.advanced(by: .seconds(1)).nanosecondsSinceEpoch == 1_000_001_000)
        #expect(time.advanced(by: .seconds(-1)).nanosecondsSinceEpoch == -999_999_000)
        #expect(Timestamp(nanosecondsSinceEpoch: .max - 1).advanced(by: .seconds(1)).nanosecondsSinceEpoch == .max)
        #expect(
            Timestamp(nanosecondsSinceEpoch: .min + 1).advanced(by: .seconds(Int64.min)).nanosecondsSinceEpoch == .min)
        #expect(time.duration(to: Timestamp(nanosecondsSinceEpoch: 3000)) == .nanoseconds(2000))
        #expect(
            Timestamp(nanosecondsSinceEpoch: .max).duration(to: Timestamp(nanosecondsSinceEpoch: .min))
                == .nanoseconds(Int64.min) - .nanoseconds(Int64.max))
    }
}
