import Testing

@testable import SmartPollProtocol

@Suite struct JSONWriterTests {
    @Test func integersAtTheEdgesOfTheirRange() {
        for (value, text) in [
            (Int64.min, "-9223372036854775808"), (Int64.max, "9223372036854775807"),
            (0, "0"), (-1, "-1"), (9, "9"), (10, "10"), (99, "99"), (100, "100"),
            (999_999_999_999_999_999, "999999999999999999"),
            (1_000_000_000_000_000_000, "1000000000000000000"),
        ] {
            #expect(JSONValue.int(value).serialized() == text)
        }
    }

    @Test func everyControlCharacterIsEscapedAndTheRestCopied() throws {
        let all = String(decoding: (0..<128).map { UInt8($0) }, as: UTF8.self) + "é😀"
        let text = JSONValue.string(all).serialized()
        #expect(text.hasPrefix(#""\u0000\u0001"#))
        #expect(text.contains(#"\b\t\n\u000b\f\r"#))
        #expect(text.contains(##" !\"#"##))
        #expect(text.contains(#"[\\]"#))
        #expect(text.hasSuffix(#"~\u007fé😀""#))
        #expect(try JSONParser.parse(text, mode: .strict) == .string(all))
    }

    @Test func aLongDocumentGrowsTheBufferAndKeepsEveryByte() throws {
        let elements = (0..<5_000).map { JSONValue.string("element \($0) \u{1}") }
        let text = JSONValue.array(elements).serialized()
        #expect(text.utf8.count > 64 * 1024)
        #expect(try JSONParser.parse(text, mode: .strict) == .array(elements))
    }

    @Test func timestampsHaveFourDigitYearsAndMilliseconds() {
        #expect(Timestamp(nanosecondsSinceEpoch: 0).formatted() == "1970-01-01T00:00:00.000Z")
        #expect(Timestamp(nanosecondsSinceEpoch: -1).formatted() == "1969-12-31T23:59:59.999Z")
        #expect(Timestamp(nanosecondsSinceEpoch: .max).formatted() == "2262-04-11T23:47:16.854Z")
        #expect(Timestamp(nanosecondsSinceEpoch: .min).formatted() == "1677-09-21T00:12:43.145Z")
        #expect(Timestamp(nanosecondsSinceEpoch: 1_764_470_672_123_999_999).formatted() == "2025-11-30T02:44:32.123Z")
    }

    @Test func aLineEndsWithANewlineAndAppendsToWhatIsThere() {
        var output = Array("x".utf8)
        Reply(id: .int(7), body: .ok).encodeLine(into: &output)
        #expect(String(decoding: output, as: UTF8.self) == "x{\"id\":7,\"ok\":true}\n")
        #expect(Reply(id: .int(7), body: .ok).encodedLine() == Array("{\"id\":7,\"ok\":true}\n".utf8))
    }
}
