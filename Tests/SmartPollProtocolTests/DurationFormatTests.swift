import SmartPollProtocol
import SmartPollTestSupport
import Testing

@Suite("Durations")
struct DurationFormatTests {
    static let second: Int64 = 1_000_000_000

    static let canonicalCases: [(Int64, String)] = [
        (0, "0s"), (1, "1ns"), (999, "999ns"), (1000, "1µs"), (1500, "1.5µs"), (1_000_000, "1ms"),
        (250_000_000, "250ms"), (1_500_000_000, "1.5s"), (10 * second, "10s"), (90 * second, "1m30s"),
        (3600 * second, "1h0m0s"), (7200 * second, "2h0m0s"), (-7200 * second, "-2h0m0s"), (-second, "-1s"),
        (3_723_004_005_006, "1h2m3.004005006s"), (86_400 * second, "24h0m0s"), (-1, "-1ns"),
        (Int64.max, "2562047h47m16.854775807s"), (Int64.min, "-2562047h47m16.854775808s"),
    ]

    static let validCases: [(String, Int64)] = [
        ("0", 0), ("-0", 0), ("+0", 0), ("0s", 0), ("1ns", 1), ("1us", 1000), ("1µs", 1000), ("1μs", 1000),
        ("250ms", 250_000_000), ("10s", 10 * second), ("1m30s", 90 * second), ("2h", 7200 * second),
        ("1.5h", 5400 * second), ("-1s", -second), (".5s", second / 2), ("5.s", 5 * second),
        ("1.5s", 1_500_000_000), ("1h2m3s4ms5us6ns", 3_723_004_005_006), ("2d", 172_800 * second),
        ("1.000000001s", 1_000_000_001), ("0.9999999999s", 999_999_999), ("+5m", 300 * second),
        ("1s1s", 2 * second), ("2562047h47m16.854775807s", Int64.max),
        ("-2562047h47m16.854775808s", Int64.min), ("0.1234567890123456789012h", 444_444_440_444),
    ]

    @Test("valid duration text parses to the right number of nanoseconds", arguments: Self.validCases)
    func validTextParses(text: String, nanoseconds: Int64) throws {
        #expect(try DurationFormat.parseNanoseconds(text) == nanoseconds)
        #expect(try DurationFormat.parse(text) == .nanoseconds(nanoseconds))
    }

    @Test(
        "invalid duration text is an invalid_argument naming the input",
        arguments: [
            "", "-", "+", "s", "5", "1.5", "5x", "1e3s", "1e3", ".s", "1..5s", "1s ", " 1s", "1 s", "1S", "1H",
            "2562047h47m16.854775808s", "3000000h", "9999999999999999999999ns", "-2562047h47m16.854775809s",
            "1s-1s", "ms", "1msx", "--1s", "∞s",
        ])
    func invalidTextIsRejected(text: String) {
        do {
            let value = try DurationFormat.parse(text)
            Issue.record("\(text.debugDescription) parsed as \(value)")
        } catch {
            #expect(error.code == .invalidArgument)
            #expect(error.message.contains("\"\(text)\""), "\(error.message)")
        }
    }

    @Test("the unknown unit is named")
    func unknownUnitIsNamed() {
        #expect(
            throws: ProtocolError(
                .invalidArgument, #"unknown unit "x" in duration "5x": use ns, us, ms, s, m, h or d, as in "1m30s""#)
        ) {
            try DurationFormat.parse("5x")
        }
        #expect(
            throws: ProtocolError(.invalidArgument, #"duration "3000000h" is out of range (at most about 292 years)"#)
        ) {
            try DurationFormat.parse("3000000h")
        }
    }

    @Test("canonical text is Go's Duration.String", arguments: Self.canonicalCases)
    func canonicalFormatIsGoStyle(nanoseconds: Int64, text: String) throws {
        #expect(DurationFormat.format(nanoseconds: nanoseconds) == text)
        #expect(DurationFormat.format(.nanoseconds(nanoseconds)) == text)
        #expect(try DurationFormat.parseNanoseconds(text) == nanoseconds)
    }

    @Test("formatting then parsing gives back the same value for random durations")
    func formatParseRoundTrip() throws {
        var random = SplitMix64(seed: 7)
        for _ in 0..<5000 {
            let bits = random.next()
            let nanoseconds = Int64(bitPattern: bits) >> Int64(bits % 64)
            #expect(try DurationFormat.parseNanoseconds(DurationFormat.format(nanoseconds: nanoseconds)) == nanoseconds)
        }
    }

    @Test("JSON numbers are seconds; other JSON types are bad requests")
    func jsonNumbersAreSeconds() throws {
        #expect(try DurationFormat.decode(.int(90), field: "every") == .seconds(90))
        #expect(try DurationFormat.decode(.double(1.5), field: "every") == .milliseconds(1500))
        #expect(try DurationFormat.decode(.double(1e-9), field: "every") == .nanoseconds(1))
        #expect(try DurationFormat.decode(.string("1m"), field: "every") == .seconds(60))
        #expect(throws: ProtocolError(.badRequest, #"field "every": expected a duration string or number, got null"#)) {
            try DurationFormat.decode(.null, field: "every")
        }
        #expect((try? DurationFormat.decode(.double(1e300), field: "x")) == nil)
        #expect((try? DurationFormat.decode(.int(.max), field: "x")) == nil)
        #expect(DurationFormat.encode(.seconds(90)) == .string("1m30s"))
    }

    @Test("durations beyond Int64 nanoseconds are clamped when formatted")
    func hugeDurationsClampWhenFormatted() {
        #expect(DurationFormat.nanoseconds(of: .seconds(Int64.max)) == nil)
        #expect(DurationFormat.format(.seconds(Int64.max)) == "2562047h47m16.854775807s")
        #expect(DurationFormat.format(.seconds(Int64.min)) == "-2562047h47m16.854775808s")
        #expect(DurationFormat.nanoseconds(of: .microseconds(-3)) == -3000)
    }
}
