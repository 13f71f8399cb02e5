import Testing

@testable import SmartPollProtocol

@Suite("Request decoding")
struct RequestDecodingTests {
    func failure(_ line: String) -> RequestDecodeFailure? {
        if case .failure(let failure) = Request.decode(line) { return failure }
        return nil
    }

    @Test("a request with every command round-trips through encode and decode")
    func everyCommandRoundTrips() throws {
        let time = Timestamp(nanosecondsSinceEpoch: -1_500_000_000)
        let commands: [Command] = [
            .ping, .status(tasks: nil), .status(tasks: []), .status(tasks: ["a", "b"]),
            .schedule(task: "a", when: .after(.milliseconds(1500)), sooner: true),
            .schedule(task: "a", when: .after(.zero), sooner: false),
            .schedule(task: "a", when: .after(.nanoseconds(-1)), sooner: false),
            .schedule(task: "a", when: .at(time), sooner: true),
            .schedule(task: "a", when: .at(nil), sooner: false),
            .unschedule(task: "a"), .stopTimer(task: "a"), .run(task: "a", wait: false),
            .run(task: "a", wait: true), .cancel(task: "a"), .pause(task: "a"), .resume(task: "a"), .result(task: "a"),
            .results, .logs(task: "a", lines: nil, follow: false), .logs(task: "a", lines: 5, follow: true),
            .history(task: "a", limit: nil), .history(task: "a", limit: 0), .history(task: "a", limit: 7),
            .emit(hook: "h", data: nil), .emit(hook: "h", data: Array("\u{1}\t\"\\é😀".utf8)),
            .emit(hook: "h", data: [0xFF, 0xFE, 0, 0x61]),
            .stop(wait: true), .start(wait: false), .restart(wait: true), .reload,
            .watch(tasks: nil), .watch(tasks: ["x"]), .shutdown, .metrics,
        ]
        #expect(Set(commands.map(\.name)) == Set(Command.Name.allCases))
        let ids: [JSONValue?] = [nil, .null, .int(-7), .double(0.25), .string("x\ny"), .bool(false)]
        for (index, command) in commands.enumerated() {
            let request = Request(id: ids[index % ids.count], command: command)
            let line = request.encoded()
            #expect(!line.contains("\n"))
            #expect(try Request.decode(line).get() == request, "\(line)")
        }
    }

    @Test("logs takes a positive number of lines")
    func logsLinesMustBePositive() {
        for bad in ["0", "-1"] {
            guard case .failure(let failure) = Request.decode(#"{"cmd":"logs","task":"a","lines":\#(bad)}"#) else {
                Issue.record("lines \(bad) was accepted")
                continue
            }
            #expect(failure.error.code == .invalidArgument, "\(failure.error)")
        }
        #expect(
            (try? Request.decode(#"{"cmd":"logs","task":"a"}"#).get())?.command
                == .logs(task: "a", lines: nil, follow: false))
    }

    @Test("history takes a limit of 0 or more; a bad or negative one is bad_request")
    func historyLimitMustNotBeNegative() {
        for bad in ["-1", "\"2\"", "1.5", "true"] {
            guard case .failure(let failure) = Request.decode(#"{"cmd":"history","task":"a","limit":\#(bad)}"#) else {
                Issue.record("limit \(bad) was accepted")
                continue
            }
            #expect(failure.error.code == .badRequest, "\(bad): \(failure.error)")
        }
        #expect(
            (try? Request.decode(#"{"cmd":"history","task":"a"}"#).get())?.command == .history(task: "a", limit: nil))
    }

    @Test("a request with a lone surrogate anywhere is refused with bad_request, naming it")
    func loneSurrogateRequestsAreRefused() throws {
        for line in [
            #"{"id":"\ud800","cmd":"ping"}"#, #"{"cmd":"result","task":"w\udc00"}"#,
            #"{"cmd":"emit","hook":"h","data":"x\udbff"}"#,
        ] {
            let refusal = try #require(failure(line), "\(line)")
            #expect(refusal.reply.encoded().contains(#""code":"bad_request""#))
            #expect(refusal.reply.encoded().contains("lone surrogate"), "\(refusal.reply.encoded())")
        }
    }

    @Test("the failure carries the id when it could be read")
    func failureEchoesReadableId() {
        #expect(failure(#"{"id":"abc","cmd":"nope"}"#)?.id == .string("abc"))
        #expect(failure(#"{"id":5,"cmd":"cancel"}"#)?.id == .int(5))
        #expect(failure(#"{"id":5,"cmd":"ping""#)?.id == nil)
        #expect(failure(#"{"id":[5],"cmd":"ping"}"#)?.id == nil)
        #expect(failure(#"{"id":5,"cmd":"ping"}{"#)?.id == nil)
        let reply = failure(#"{"id":"abc","cmd":"nope"}"#)?.reply.encoded()
        #expect(
            reply == #"{"id":"abc","ok":false,"error":{"code":"unknown_command","message":"unknown command \"nope\""}}"#
        )
    }

    @Test("messages name the field and the offending value")
    func messagesNameFieldAndValue() {
        #expect(
            failure(#"{"cmd":"schedule","task":"w","after":true}"#)?.error
                == ProtocolError(.badRequest, #"field "after": expected a duration string or number, got true"#))
        #expect(
            failure(#"{"cmd":"schedule","task":"w","after":"5x"}"#)?.error
                == ProtocolError(
                    .invalidArgument,
                    #"field "after": unknown unit "x" in duration "5x": use ns, us, ms, s, m, h or d, as in "1m30s""#))
        #expect(failure(#"{"cmd":"cancel"}"#)?.error == ProtocolError(.badRequest, #"missing field "task""#))
        #expect(
            failure(#"{"cmd":"cancel","task":7}"#)?.error
                == ProtocolError(.badRequest, #"field "task": expected a string, got 7"#))
        #expect(
            failure(#"{"cmd":7}"#)?.error
                == ProtocolError(.badRequest, #"field "cmd": expected a command name string, got 7"#))
        #expect(
            failure(#"{"cmd":"ping","extra":1}"#)?.error
                == ProtocolError(.badRequest, #"unknown field "extra" for command "ping""#))
        #expect(
            failure(#"{"cmd":"status","tasks":["a",{}]}"#)?.error
                == ProtocolError(.badRequest, #"field "tasks[1]": expected a string, got an object"#))
        #expect(failure("[1]")?.error == ProtocolError(.badRequest, "a request must be a JSON object, got an array"))
        #expect(
            failure(#"{"cmd":"schedule","task":"w","at":"2026-02-29T00:00:00Z"}"#)?.error
                == ProtocolError(
                    .invalidArgument,
                    #"field "at": invalid time "2026-02-29T00:00:00Z": day 29 out of range for 2026-02"#))
        let syntax = failure(#"{"cmd":"ping"} x"#)?.error
        #expect(syntax == ProtocolError(.badRequest, "invalid JSON at byte 15: unexpected character"))
    }

    @Test("optional arguments may be null, meaning absent")
    func nullOptionalArgumentsMeanAbsent() throws {
        #expect(try Request.decode(#"{"cmd":"status","tasks":null}"#).get().command == .status(tasks: nil))
        #expect(
            try Request.decode(#"{"cmd":"emit","hook":"h","data":null}"#).get().command == .emit(hook: "h", data: nil))
        #expect(
            try Request.decode(#"{"cmd":"run","task":"t","wait":null}"#).get().command == .run(task: "t", wait: false))
        #expect(
            try Request.decode(#"{"cmd":"schedule","task":"t","after":null,"at":null}"#).get().command
                == .schedule(task: "t", when: .at(nil), sooner: false))
    }

    @Test("durations may be JSON numbers of seconds, integer or fractional")
    func durationsMayBeNumbersOfSeconds() throws {
        #expect(
            try Request.decode(#"{"cmd":"schedule","task":"t","after":10}"#).get().command
                == .schedule(task: "t", when: .after(.seconds(10)), sooner: false))
        #expect(
            try Request.decode(#"{"cmd":"schedule","task":"t","after":0.25}"#).get().command
                == .schedule(task: "t", when: .after(.milliseconds(250)), sooner: false))
        #expect(
            try Request.decode(#"{"cmd":"schedule","task":"t","after":-1}"#).get().command
                == .schedule(task: "t", when: .after(.seconds(-1)), sooner: false))
    }

    @Test("a directive without task uses the default task, and an explicit task wins")
    func defaultTaskFillsMissingTask() throws {
        #expect(
            try Request.decode(#"{"cmd":"stop_timer"}"#, defaultTask: "self").get().command == .stopTimer(task: "self"))
        #expect(
            try Request.decode(#"{"cmd":"unschedule","task":"other"}"#, defaultTask: "self").get().command
                == .unschedule(task: "other"))
        #expect(failure(#"{"cmd":"unschedule","task":null}"#)?.error.code == .badRequest)
    }

    @Test("an embedded NUL in a string value survives decoding and encoding")
    func embeddedNulInStringValueRoundTrips() throws {
        let request = try Request.decode(#"{"id":"a\u0000b","cmd":"cancel","task":"x\u0000"}"#).get()
        #expect(request.id == .string("a\u{0}b"))
        #expect(request.command == .cancel(task: "x\u{0}"))
        #expect(request.encoded() == #"{"id":"a\u0000b","cmd":"cancel","task":"x\u0000"}"#)
    }

    @Test("duplicate keys keep the last value")
    func duplicateKeysKeepLastValue() throws {
        #expect(try Request.decode(#"{"cmd":"shutdown","cmd":"ping"}"#).get().command == .ping)
    }

    @Test("boundary integers are accepted as ids")
    func boundaryIntegersAreAccepted() throws {
        #expect(try Request.decode(#"{"id":9223372036854775807,"cmd":"ping"}"#).get().id == .int(.max))
        #expect(try Request.decode(#"{"id":-9223372036854775808,"cmd":"ping"}"#).get().id == .int(.min))
        #expect(failure(#"{"id":9223372036854775808,"cmd":"ping"}"#)?.error.code == .badRequest)
    }

    @Test("every error code has its SPEC wire name")
    func errorCodesHaveWireNames() {
        #expect(
            ErrorCode.allCases.map(\.rawValue) == [
                "bad_request", "unknown_command", "unknown_task", "unknown_hook", "invalid_argument",
                "not_running", "paused", "not_leader", "too_large", "permission_denied", "busy", "shutting_down",
                "internal",
            ])
    }

    @Test func emitDataThatIsNotUTF8TravelsAsBase64AndComesBackExact() throws {
        let bytes: [UInt8] = [0xFF, 0xFE, 0x00, 0x61, 0x62, 0x63, 0x0A]
        let line = Request(id: .int(1), command: .emit(hook: "h", data: bytes)).encoded()
        #expect(line == #"{"id":1,"cmd":"emit","hook":"h","data_base64":"//4AYWJjCg=="}"#)
        #expect(try Request.decode(line).get().command == .emit(hook: "h", data: bytes))
        let both = Request.decode(#"{"cmd":"emit","hook":"h","data":"x","data_base64":"eA=="}"#)
        guard case .failure(let failure) = both else {
            Issue.record("data and data_base64 together were accepted")
            return
        }
        #expect(failure.error.code == .invalidArgument)
        let bad = Request.decode(#"{"cmd":"emit","hook":"h","data_base64":"not base64!"}"#)
        guard case .failure(let badFailure) = bad else {
            Issue.record("invalid Base64 was accepted")
            return
        }
        #expect(badFailure.error.code == .invalidArgument)
    }
}

@Suite("Request decoding: the fast path of common shapes")
struct RequestCommonShapeTests {
    static let taken = [
        #"{"cmd":"ping"}"#, #"{"cmd":"status"}"#, #"{"cmd":"results"}"#, #"{"cmd":"metrics"}"#,
        #"{"id":0,"cmd":"ping"}"#, #"{"id":7,"cmd":"status"}"#, #"{"id":-12,"cmd":"results"}"#,
        #"{"id":123456789012345678,"cmd":"metrics"}"#, #"{"id":-999999999999999999,"cmd":"status"}"#,
    ]

    func fast(_ line: [UInt8]) -> Request? {
        line.withUnsafeBytes { Request.decodeCommonShape($0) }
    }

    @Test("the common shapes take the fast path and decode as json-c decodes them")
    func commonShapesAgree() throws {
        for line in Self.taken {
            let bytes = Array(line.utf8)
            let request = try #require(fast(bytes), "\(line) missed the fast path")
            #expect(try Request.decodeParsed(bytes).get() == request, "\(line)")
        }
        #expect(fast(Array(#"{"id":5,"cmd":"status"}"#.utf8)) == Request(id: .int(5), command: .status(tasks: nil)))
    }

    @Test("near misses go through json-c: the same request or the same error reply")
    func nearMissesAgree() {
        let others = [
            #"{"id":00,"cmd":"ping"}"#, #"{"id":-0,"cmd":"ping"}"#, #"{"id":01,"cmd":"ping"}"#,
            #"{"id":1234567890123456789,"cmd":"ping"}"#, #"{"id":99999999999999999999,"cmd":"ping"}"#,
            #"{"id":1.5,"cmd":"ping"}"#, #"{"id":1e3,"cmd":"ping"}"#, #"{"id":"1","cmd":"ping"}"#,
            #"{"cmd":"status","tasks":null}"#, #"{"cmd":"ping","id":1}"#, #"{ "cmd":"ping"}"#,
            #"{"cmd":"pings"}"#, #"{"cmd":"statu"}"#, #"{"cmd":"ping"}}"#, #"{"cmd":"ping"} "#,
            #"{"cmd":"ping\u0000"}"#, #"{"id":,"cmd":"ping"}"#, #"{"id":-,"cmd":"ping"}"#, "",
        ]
        var lines = Self.taken + others
        // Every one-byte deletion and substitution of the common shapes.
        let replacements = Array(#"{}":,-0159aisz \"#.utf8) + [0, 0x80, 0xFF]
        for line in Self.taken {
            let bytes = Array(line.utf8)
            for index in bytes.indices {
                var deleted = bytes
                deleted.remove(at: index)
                lines.append(String(decoding: deleted, as: UTF8.self))
                for byte in replacements where byte != bytes[index] {
                    var changed = bytes
                    changed[index] = byte
                    // Kept as bytes (a String would replace invalid UTF-8).
                    #expect(Request.decode(changed) == Request.decodeParsed(changed), "\(changed)")
                }
            }
        }
        var fastCount = 0
        for line in lines {
            let bytes = Array(line.utf8)
            if fast(bytes) != nil { fastCount += 1 }
            #expect(Request.decode(bytes) == Request.decodeParsed(bytes), "\(line)")
        }
        #expect(fastCount >= Self.taken.count)
        for line in others { #expect(fast(Array(line.utf8)) == nil, "\(line)") }
    }
}
