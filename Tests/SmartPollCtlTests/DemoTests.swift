import Foundation
import Testing

/// The bundled demo stays valid and does what the README says.
@Suite(.timeLimit(.minutes(2)))
struct DemoTests {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("contrib/examples/demo").path

    @Test func demoConfigurationIsValid() throws {
        let result = try runCommand(Binaries.supervisor, ["--check", "--config", Self.folder + "/smartpoll.json"])
        #expect(result.status == 0, "\(result.error)")
        #expect(result.output.contains("valid: 3 tasks, 1 hook"))
    }

    @Test func demoPublishesAnAggregateOfBothApis() throws {
        let text = try String(contentsOfFile: Self.folder + "/smartpoll.json", encoding: .utf8)
            .replacingOccurrences(of: "\"./poll\"", with: "\"\(Self.folder)/poll\"")
            .replacingOccurrences(of: "\"./publish\"", with: "\"\(Self.folder)/publish\"")
            .replacingOccurrences(of: "\"socket\": \"/tmp/smartpoll-demo/supervisor.sock\",", with: "")
        let supervisor = try SupervisorHarness(text)
        let events = try supervisor.watch(["publish"])
        // Each API fails one call in six and retries, so wait until publish has seen both.
        var published = ""
        for _ in 0..<20 where !(published.contains("\"api1\"") && published.contains("\"api2\"")) {
            try events.finishes(of: "publish")
            published = supervisor.read("published.json") ?? ""
        }
        let aggregate = try json(published)
        guard case .object(let results)? = aggregate["results"] else { throw HarnessError("no results in \(published)") }
        #expect(results["api1"] != nil && results["api2"] != nil)
    }
}
