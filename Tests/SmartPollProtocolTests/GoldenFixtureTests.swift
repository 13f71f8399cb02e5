import Foundation
import Testing

@testable import SmartPollProtocol

@Suite("Golden fixtures")
struct GoldenFixtureTests {
    @Test("there are fixtures for every request, reply and event shape")
    func fixturesCoverEveryShape() {
        let requests = Fixtures.names(in: "requests", suffix: "json")
        for name in Command.Name.allCases {
            #expect(
                requests.contains { $0 == name.rawValue + ".json" || $0.hasPrefix(name.rawValue + "-") },
                "no request fixture for \(name.rawValue)")
        }
        let events = Fixtures.names(in: "events", suffix: "json")
        for name in Event.Name.allCases {
            #expect(events.contains(name.rawValue + ".json"), "no event fixture for \(name.rawValue)")
        }
        let replies = Fixtures.names(in: "replies", suffix: "json")
        for name in [
            "ok", "error", "ping", "status", "schedule", "stop_timer", "result", "result-base64", "result-none",
            "results", "run-wait", "reload", "pause", "resume", "error-paused", "logs",
            "history", "metrics", "error-not_leader", "status-cluster",
        ] {
            #expect(replies.contains(name + ".json"), "no reply fixture for \(name)")
        }
        #expect(Fixtures.invalidCases().count >= 40)
    }

    @Test(
        "request fixtures decode and encode back to the same bytes",
        arguments: Fixtures.names(in: "requests", suffix: "json"))
    func requestFixtureRoundTrips(file: String) throws {
        let line = try Fixtures.line("requests", file)
        let request = try Request.decode(line).get()
        #expect(Array(request.encoded().utf8) == line)
        #expect(try Request.decode(request.encoded()).get() == request)
        #expect(
            request.command.name.rawValue == file.split(separator: "-")[0].replacingOccurrences(of: ".json", with: ""))
    }

    static func command(forReplyFixture file: String) -> Command {
        let stem = file.replacingOccurrences(of: ".json", with: "")
        switch stem {
        case "ping", "error", "error-without-id": return .ping
        case "status", "status-failed", "status-state-error", "status-cluster": return .status(tasks: nil)
        case "error-not_leader": return .run(task: "weather1", wait: false)
        case "schedule", "schedule-cleared":
            return .schedule(task: "weather1", when: .after(.seconds(10)), sooner: false)
        case "stop_timer": return .stopTimer(task: "weather1")
        case "pause": return .pause(task: "weather1")
        case "resume", "error-paused": return .resume(task: "weather1")
        case "logs": return .logs(task: "weather1", lines: 2, follow: true)
        case "history": return .history(task: "weather1", limit: 2)
        case "result", "result-base64", "result-none": return .result(task: "weather1")
        case "results": return .results
        case "run-wait", "run-wait-signal": return .run(task: "weather1", wait: true)
        case "run-wait-output": return .run(task: "weather1", wait: true, output: true)
        case "reload": return .reload
        case "metrics": return .metrics
        default: return .shutdown
        }
    }

    @Test(
        "reply fixtures decode and encode back to the same bytes",
        arguments: Fixtures.names(in: "replies", suffix: "json"))
    func replyFixtureRoundTrips(file: String) throws {
        let line = try Fixtures.line("replies", file)
        let reply = try Reply.decode(line, for: Self.command(forReplyFixture: file))
        #expect(Array(reply.encoded().utf8) == line)
    }

    @Test(
        "event fixtures decode and encode back to the same bytes",
        arguments: Fixtures.names(in: "events", suffix: "json"))
    func eventFixtureRoundTrips(file: String) throws {
        let line = try Fixtures.line("events", file)
        let event = try Event.decode(line)
        #expect(event.name.rawValue + ".json" == file)
        #expect(Array(event.encoded().utf8) == line)
    }

    @Test(
        "invalid request lines give the error code of the manifest, and the id when readable",
        arguments: Fixtures.invalidCases().map(\.file))
    func invalidFixtureFailsWithExpectedCode(file: String) throws {
        let expected = try #require(Fixtures.invalidCases().first { $0.file == file }?.code)
        let bytes = try Fixtures.bytes("invalid", file)
        switch Request.decode(bytes) {
        case .success(let request):
            Issue.record("\(file) decoded as \(request)")
        case .failure(let failure):
            #expect(failure.error.code.rawValue == expected, "\(file): \(failure.error.message)")
            #expect(!failure.error.message.isEmpty)
            // The error reply is itself one valid line.
            let reply = failure.reply.encoded()
            #expect(!reply.contains("\n"))
            #expect(try Reply.decode(reply, for: .ping).body == .failure(failure.error))
        }
    }

    @Test("decoded fixture values are what the files say")
    func fixtureValuesAreDecodedFaithfully() throws {
        let after = try Request.decode(Fixtures.line("requests", "schedule-after.json")).get()
        #expect(
            after == Request(id: 4, command: .schedule(task: "weather1", when: .after(.seconds(90)), sooner: false)))
        let at = try Request.decode(Fixtures.line("requests", "schedule-at.json")).get()
        #expect(
            at.command
                == .schedule(
                    task: "weather1", when: .at(Timestamp(nanosecondsSinceEpoch: 1_796_003_072_123_000_000)),
                    sooner: false))
        let clear = try Request.decode(Fixtures.line("requests", "schedule-at-null.json")).get()
        #expect(clear.command == .schedule(task: "weather1", when: .at(nil), sooner: false))
        let emit = try Request.decode(Fixtures.line("requests", "emit.json")).get()
        #expect(emit.command == .emit(hook: "refresh", data: Array("line one\nline \"two\"\u{0}end".utf8)))
        let noId = try Request.decode(Fixtures.line("requests", "ping-without-id.json")).get()
        #expect(noId.id == nil)
        let nullId = try Request.decode(Fixtures.line("requests", "ping-null-id.json")).get()
        #expect(nullId.id == .null)

        let status = try Reply.decode(Fixtures.line("replies", "status.json"), for: .status(tasks: nil))
        guard case .status(let body) = status.body else {
            Issue.record("not a status reply: \(status)")
            return
        }
        #expect(body.loop.state == .running)
        #expect(body.tasks.map(\.name) == ["weather1", "publish"])
        #expect(body.tasks[0].last?.durationMilliseconds == 1123.5)
        #expect(body.tasks[1].last == nil)
        #expect(body.tasks[1].pid == 5001)
        #expect(body.tasks[0].last?.cpuMilliseconds == 87.25)
        #expect(body.containment?.mode == .cgroup)
        #expect(body.containment?.root?.hasSuffix("/smartpoll-5e2beaeb0ae809be") == true)

        let binary = try Reply.decode(Fixtures.line("replies", "result-base64.json"), for: .result(task: "weather1"))
        guard case .result(let result) = binary.body else {
            Issue.record("not a result reply: \(binary)")
            return
        }
        #expect(result.output == [0xFF, 0x00, 0x01, 0x02, 0xFE])
        #expect(result.truncated)
    }
}
