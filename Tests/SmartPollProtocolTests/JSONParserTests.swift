import SmartPollTestSupport
import Testing

@testable import SmartPollProtocol

@Suite("JSON parser and writer")
struct JSONParserTests {
    func strictError(_ text: String) -> ProtocolError? {
        do {
            _ = try JSONParser.parse(text, mode: .strict)
            return nil
        } catch {
            return error
        }
    }

    @Test("a lone surrogate escape is refused in any string, and a pair is kept")
    func loneSurrogatesAreRefused() throws {
        for text in [
            #"{"id":"\ud800","cmd":"ping"}"#, #"{"id":"\uDC00"}"#, #"["a\ud83dx"]"#, #"{"k\udfff":1}"#,
            #""\ud83d\u0041""#, #""\ude00\ud83d""#, #""\ud800\ud800""#, #""x\ud800""#,
        ] {
            let error = strictError(text)
            #expect(error?.code == .badRequest, "\(text)")
            #expect(error?.message.contains("lone surrogate \\u") == true, "\(text): \(error?.message ?? "-")")
            #expect(throws: ProtocolError.self) { try JSONParser.parse(text, mode: .lenient) }
        }
        #expect(
            strictError(#"{"id":"\ud800","cmd":"ping"}"#)?.message.hasPrefix(
                "invalid JSON at byte 7: lone surrogate \\ud800") == true)
        #expect(try JSONParser.parse(#""\ud83d\ude00\\ud800\uffff""#, mode: .strict) == .string("😀\\ud800\u{FFFF}"))
    }

    @Test("values of every type parse, keeping key order")
    func valuesParseWithKeyOrder() throws {
        let value = try JSONParser.parse(#" {"z":null,"a":[true,false,-3,2.5,"s"],"m":{"k":"v"}} "#, mode: .strict)
        #expect(
            value
                == .object(
                    JSONObject([
                        "z": .null, "a": [true, false, -3, 2.5, "s"], "m": ["k": "v"],
                    ])))
        #expect(value.objectValue?.keys == ["z", "a", "m"])
        #expect(try JSONParser.parse("42", mode: .strict) == .int(42))
        #expect(try JSONParser.parse("-0.5", mode: .strict) == .double(-0.5))
        #expect(try JSONParser.parse("null", mode: .strict) == .null)
        #expect(try JSONParser.parse(#""é\u00e9\ud83d\ude00""#, mode: .strict) == .string("éé😀"))
    }

    @Test("strict mode rejects comments, trailing garbage and json-c's extensions")
    func strictRejectsNonStandardInput() {
        for text in [
            "// c\n{}", "{/* c */}", "{} x", "{}{}", "[1,]", "{'a':1}", "", "  ", "tru", "{\"a\":1", "+1", ".5", "01",
        ] {
            #expect(strictError(text)?.code == .badRequest, "\(text.debugDescription) was accepted")
        }
        #expect(strictError("{} x")?.message == "invalid JSON at byte 3: unexpected character")
    }

    @Test("lenient mode accepts comments and still rejects trailing garbage")
    func lenientAcceptsComments() throws {
        let text = """
            // configuration
            {
              "a": 1, /* inline */ "b": [1, 2] // trailing
            }
            /* after */
            """
        #expect(try JSONParser.parse(text, mode: .lenient) == ["a": 1, "b": [1, 2]])
        #expect(throws: ProtocolError.self) { try JSONParser.parse("{} x", mode: .lenient) }
        #expect(throws: ProtocolError.self) { try JSONParser.parse("{\"a\": 99999999999999999999 }", mode: .lenient) }
        // Comments may contain what would be errors outside them.
        #expect(try JSONParser.parse("{\"a\": 1 /* 99999999999999999999 \"\\u0000\": */}", mode: .lenient) == ["a": 1])
    }

    @Test("lenient errors give line and column")
    func lenientErrorsGiveLineAndColumn() {
        do {
            _ = try JSONParser.parse("{\n  \"a\": 1,\n  x\n}", mode: .lenient)
            Issue.record("accepted")
        } catch {
            #expect(error.message.hasPrefix("invalid JSON at line 3, column 3"), "\(error.message)")
        }
    }

    @Test("integer literals outside Int64 are rejected instead of clamped")
    func outOfRangeIntegersAreRejected() throws {
        for text in [
            "99999999999999999999", "[9223372036854775808]", "-9223372036854775809", "18446744073709551615",
            "{\"a\":[1,{\"b\":-99999999999999999999999}]}",
        ] {
            let error = strictError(text)
            #expect(error?.code == .badRequest, "\(text) was accepted")
            #expect(error?.message.contains("out of range") == true)
        }
        #expect(throws: Never.self) {
            try JSONParser.parse("[9223372036854775807,-9223372036854775808,-0,0]", mode: .strict)
        }
        // Digits inside strings are not numbers.
        #expect(try JSONParser.parse(#"["99999999999999999999"]"#, mode: .strict) == ["99999999999999999999"])
        // Large values written as fractions are doubles, not clamped integers.
        #expect(try JSONParser.parse("99999999999999999999.0", mode: .strict) == .double(1e20))
    }

    @Test("non-finite numbers are rejected")
    func nonFiniteNumbersAreRejected() {
        for text in ["1e400", "-1e400", "NaN", "[Infinity]", "-Infinity"] {
            #expect(strictError(text)?.code == .badRequest, "\(text) was accepted")
        }
    }

    @Test("invalid UTF-8 is rejected")
    func invalidUTF8IsRejected() {
        for bytes: [UInt8] in [
            [0x22, 0xFF, 0x22], [0x22, 0xC0, 0xAF, 0x22], [0x22, 0xED, 0xA0, 0x80, 0x22], [0x22, 0xE2, 0x82, 0x22],
        ] {
            #expect(throws: ProtocolError.self) { try JSONParser.parse(bytes, mode: .strict) }
        }
    }

    @Test("nesting deeper than the limit is rejected, up to the limit is accepted")
    func deepNestingIsBounded() throws {
        let depth = JSONParser.maximumDepth
        let ok = String(repeating: "[", count: depth) + String(repeating: "]", count: depth)
        let tooDeep = String(repeating: "[", count: depth + 1) + String(repeating: "]", count: depth + 1)
        #expect(throws: Never.self) { try JSONParser.parse(ok, mode: .strict) }
        #expect(strictError(tooDeep)?.code == .badRequest)
        let huge = String(repeating: "[", count: 100_000)
        #expect(strictError(huge)?.code == .badRequest)
    }

    @Test("NUL: escaped in values it is kept, in keys and raw it is rejected")
    func nulHandling() throws {
        #expect(try JSONParser.parse(#"["a\u0000b"]"#, mode: .strict) == ["a\u{0}b"])
        #expect(strictError(#"{"a\u0000b":1}"#)?.code == .badRequest)
        #expect(strictError(#"{"a\u0000b" :1}"#)?.code == .badRequest)
        // An escaped backslash followed by u0000 is not a NUL escape.
        #expect(try JSONParser.parse(#"{"a\\u0000":1}"#, mode: .strict) == ["a\\u0000": 1])
        #expect(throws: ProtocolError.self) { try JSONParser.parse([0x22, 0x61, 0x00, 0x22], mode: .strict) }
        #expect(throws: ProtocolError.self) { try JSONParser.parse([0x31, 0x00], mode: .strict) }
    }

    @Test("serialization escapes and round-trips through the parser")
    func serializationRoundTrips() throws {
        let value: JSONValue = [
            "text": "quote \" backslash \\ newline \n tab \t nul \u{0} bell \u{7} del \u{7F} é 😀",
            "numbers": [
                0, -1, .int(.max), .int(.min), 0.1, -0.0, 1e-7, 1e16, 1.7976931348623157e308,
                .double(.leastNonzeroMagnitude), 100.0,
            ],
            "nested": ["a": [], "b": [:], "c": .null],
            "b": true,
        ]
        let text = value.serialized()
        #expect(!text.contains("\n"))
        #expect(
            text.hasPrefix(#"{"text":"quote \" backslash \\ newline \n tab \t nul \u0000 bell \u0007 del \u007f é 😀","#)
        )
        #expect(try JSONParser.parse(text, mode: .strict) == value)
        #expect(JSONValue.double(.nan).serialized() == "null")
        #expect(JSONValue.double(-.infinity).serialized() == "null")
        #expect(JSONValue.double(1.5).serialized() == "1.5")
        #expect(JSONValue.double(3).serialized() == "3.0")
        #expect(JSONValue.int(3).serialized() == "3")
    }

    @Test("random doubles round-trip exactly through writer and parser")
    func doublesRoundTripExactly() throws {
        var random = SplitMix64(seed: 42)
        for _ in 0..<2000 {
            let number = Double(bitPattern: random.next())
            guard number.isFinite else { continue }
            let parsed = try JSONParser.parse(JSONValue.double(number).serialized(), mode: .strict)
            #expect(parsed.doubleValue?.bitPattern == number.bitPattern, "\(number)")
        }
    }

    @Test("accessors return values of their type only; doubleValue accepts integers")
    func accessorsMatchTypes() {
        #expect(JSONValue.int(2).doubleValue == 2)
        #expect(JSONValue.double(2).int64Value == nil)
        #expect(JSONValue.string("a").stringValue == "a")
        #expect(JSONValue.bool(true).stringValue == nil)
        #expect(JSONValue.null.isNull)
        #expect(JSONValue.array([1]).arrayValue == [1])
        #expect(JSONValue.bool(false).boolValue == false)
        var object: JSONObject = ["a": 1, "b": 2]
        object["a"] = 3
        object["c"] = 4
        object["b"] = nil
        #expect(object.keys == ["a", "c"])
        #expect(object["a"] == 3)
        #expect(JSONObject(["x": 1, "y": 2]) != JSONObject(["y": 2, "x": 1]))
    }

    @Test("the json-c wrapper retains borrowed children so they outlive their parent")
    func wrapperRetainsBorrowedChildren() throws {
        var child: JSONCObject?
        var element: JSONCObject?
        try #"{"list":["a\u0000b",2],"n":null}"#.utf8.withContiguousStorageIfAvailable { buffer in
            let root = try #require(try JSONParser.parseToJSONC(UnsafeRawBufferPointer(buffer), mode: .strict))
            child = root.member("list")
            #expect(root.member("n") == nil)
            #expect(root.member("missing") == nil)
        }
        // The root wrapper is gone; the child and its own children are still valid.
        #expect(child?.elementCount == 2)
        element = child?.element(at: 0)
        child = nil
        #expect(element?.stringBytes == [0x61, 0x00, 0x62])
        #expect(try element?.value() == .string("a\u{0}b"))
    }
}
