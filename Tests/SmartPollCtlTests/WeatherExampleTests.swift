import Foundation
import SmartPollProtocol
import Testing

/// The weather example (contrib/examples/weather, what `make demo` runs) stays valid and does
/// what the README says: its APIs reschedule themselves, and publish aggregates them only when
/// an input changed. The intervals are shortened in the configuration so that a test takes a
/// few seconds.
@Suite(.endToEnd)
struct WeatherExampleTests {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("contrib/examples/weather").path
    static let apis = ["api1", "api2", "api3"]

    /// The example's configuration with its commands made absolute (state files then go to the
    /// harness's folder, the supervisor's working directory) and `adjust` applied to every task.
    static func configuration(_ adjust: (String, inout JSONObject) -> Void) throws -> String {
        let text = try String(contentsOfFile: folder + "/smartpoll.json", encoding: .utf8)
        guard case .object(var root) = try JSONParser.parse(text, mode: .lenient),
            case .object(var tasks)? = root["tasks"], case .object(var hooks)? = root["hooks"]
        else {
            throw HarnessError("the example's configuration lost its tasks or hooks")
        }
        func absolute(_ object: inout JSONObject) {
            guard case .array(var command)? = object["command"], case .string(let program)? = command.first,
                program.hasPrefix("./")
            else { return }
            command[0] = .string(folder + "/" + program.dropFirst(2))
            object["command"] = .array(command)
        }
        for name in tasks.keys {
            guard case .object(var task)? = tasks[name] else { continue }
            absolute(&task)
            adjust(name, &task)
            tasks[name] = .object(task)
        }
        for name in hooks.keys {
            guard case .object(var hook)? = hooks[name] else { continue }
            absolute(&hook)
            hooks[name] = .object(hook)
        }
        root["tasks"] = .object(tasks)
        root["hooks"] = .object(hooks)
        return JSONValue.object(root).serialized()
    }

    static func setEnvironment(_ task: inout JSONObject, _ values: [String: String]) {
        var environment = task["env"]?.objectValue ?? JSONObject()
        for (name, value) in values { environment[name] = .string(value) }
        task["env"] = .object(environment)
    }

    @Test func weatherConfigurationIsValid() throws {
        let result = try runCommand(Binaries.supervisor, ["--check", "--config", Self.folder + "/smartpoll.json"])
        #expect(result.status == 0, "\(result.error)")
        #expect(result.output.contains("valid: 5 tasks, 2 hooks"))
    }

    @Test func publishesTheAggregateOnlyWhenAnInputChanged() throws {
        // The sky runs once at start and then holds still until the test changes it; the APIs
        // poll every 200 ms, within 1-second rate-limit windows, and still fail now and then.
        let text = try Self.configuration { name, task in
            if name == "sky" { task["every"] = nil; return }
            guard name.hasPrefix("api") else { return }
            task["every"] = .string("200ms")
            task["jitter"] = .string("50ms")
            task["backoff"] = .object(["initial": .string("50ms"), "max": .string("200ms")])
            Self.setEnvironment(&task, ["WINDOW_MS": "1000"])
        }
        let supervisor = try SupervisorHarness(text)
        var events = WeatherEvents(stream: try supervisor.watch())

        // The first aggregate, once every API has read the sky.
        var published = try events.publishes(in: supervisor) { Self.sources(of: $0).count == 3 }
        let first = Self.sources(of: published)
        #expect(Set(first.values.map(\.condition)).count == 1, "the APIs read one sky: \(published)")

        // Quiet: once each API has reported the same reading again, publish runs no more and
        // published.json stays as it is while the APIs keep polling.
        try events.until { $0.unchangedSuccesses.isSuperset(of: Self.apis) }
        while try Self.publishIsBusy(supervisor) {
            let finished = events.publishFinishes
            try events.until { $0.publishFinishes > finished }
        }
        published = try #require(supervisor.read("published.json"))
        let publishRuns = events.publishStarts
        events.finishesPerTask = [:]
        events.changedFinishes = []
        try events.until { state in Self.apis.allSatisfy { state.finishesPerTask[$0, default: 0] >= 3 } }
        #expect(events.publishStarts == publishRuns, "publish ran while no input changed")
        #expect(events.changedFinishes.isEmpty, "an API reported a change of a sky that held still")
        #expect(supervisor.read("published.json") == published)

        // A storm: set-sky schedules every API now, the changes reach publish, which aggregates.
        #expect(try supervisor.ctl("emit", "set-sky", "storm 31.5 90").status == 0)
        published = try events.publishes(in: supervisor) { text in
            let sources = Self.sources(of: text)
            return sources.count == 3 && sources.values.allSatisfy { $0.condition == "storm" }
        }
        let storm = try json(published)
        #expect(storm["condition"] == .string("storm"))
        #expect(storm["wind_kmh"] == .int(90))
        // Each API rounds to its own precision: 31.5, 32 (whole degrees) and 31.5.
        #expect(storm["temp_c"] == .double(31.7))
        #expect(Self.sources(of: published).mapValues(\.temperature) == ["api1": 31.5, "api2": 32, "api3": 31.5])
        #expect(try supervisor.ctl("result", "publish").output == published)
        #expect(events.violations.isEmpty, "publish started without a changed input: \(events.violations)")
    }

    @Test func workersRescheduleThemselvesSoonerWhenVolatileAndLaterAfterA429() throws {
        // Nothing runs by itself: set-sky schedules the APIs. api1 may call twice a minute;
        // api2 always fails.
        let text = try Self.configuration { name, task in
            task["start"] = nil
            task["every"] = nil
            switch name {
            case "api1":
                Self.setEnvironment(&task, ["CALLS_PER_WINDOW": "2", "WINDOW_MS": "60000", "FAIL_ONE_IN": "0"])
            case "api2":
                Self.setEnvironment(&task, ["FAIL_ONE_IN": "1"])
                task["backoff"] = .object(["initial": .string("1h"), "max": .string("2h")])
            case "api3": Self.setEnvironment(&task, ["FAIL_ONE_IN": "0"])
            default: break
            }
        }
        let supervisor = try SupervisorHarness(text)
        let events = try supervisor.watch(["api1", "api2"])
        var seen: [Event] = []
        /// Reads until the `count`-th finish of `task` (counting from the first event), and returns it.
        func finish(_ task: String, _ count: Int) throws -> Event {
            func finishes() -> [Event] {
                seen.filter { if case .taskFinished(task, _, _, _, _, _, _, _, _) = $0.kind { true } else { false } }
            }
            while finishes().count < count { seen.append(try events.next()) }
            return finishes()[count - 1]
        }

        #expect(try supervisor.ctl("emit", "set-sky", "clear 10 5").status == 0)
        let calm = try finish("api1", 1)
        guard case .taskFinished(_, _, _, _, _, true, _, _, true) = calm.kind else {
            throw HarnessError("first reading: \(calm)")
        }
        #expect(try supervisor.ctl("result", "api1").output.contains("\"temp_c\":10.0"))
        // api2's first poll has failed, and its retry waits an hour, before the storm asks for
        // a poll now (a retry scheduled after that request would replace it: SPEC 2's schedule).
        _ = try finish("api2", 1)

        // A big change: the reading is volatile, so api1 asks for a poll within a second, and
        // that third call of the minute gets a 429: the same reading, and the next poll after
        // the Retry-After (about a minute) instead of within its every.
        #expect(try supervisor.ctl("emit", "set-sky", "storm 31.5 90").status == 0)
        let stormy = try finish("api1", 2)
        guard case .taskFinished(_, _, _, _, _, true, _, _, true) = stormy.kind else {
            throw HarnessError("storm reading: \(stormy)")
        }
        let limited = try finish("api1", 3)
        guard case .taskFinished(_, _, _, _, _, true, _, _, false) = limited.kind else {
            throw HarnessError("429: \(limited)")
        }
        let starts = seen.compactMap { event -> Timestamp? in
            if case .taskStarted("api1", _, _, _, _) = event.kind { event.time } else { nil }
        }
        #expect(starts.count == 3)
        let sooner = stormy.time.duration(to: starts[2])
        #expect(sooner > .milliseconds(900) && sooner < .seconds(5), "polled again after \(sooner)")
        #expect(try supervisor.ctl("result", "api1").output.contains("\"temp_c\":31.5"))
        let api1 = try #require(
            try json(try supervisor.ctl("--json", "status", "api1").output)["tasks"]?.arrayValue?.first?.objectValue)
        let next = try Timestamp.parse(try #require(api1["next"]?.stringValue))
        let wait = Timestamp.now().duration(to: next)
        #expect(wait > .seconds(50) && wait <= .seconds(61), "next poll in \(wait)")
        #expect(
            api1["last"]?.objectValue?["stderr_tail"]?.stringValue?.contains("429 Too Many Requests (Retry-After: ")
                == true)

        // api2 failed with a 503 both times set-sky polled it; on_failure retry then waits for
        // its backoff (an hour and more here).
        let failed = try finish("api2", 2)
        guard case .taskFinished(_, _, 1, _, _, false, _, _, false) = failed.kind else {
            throw HarnessError("api2: \(failed)")
        }
        let api2 = try #require(
            try json(try supervisor.ctl("--json", "status", "api2").output)["tasks"]?.arrayValue?.first?.objectValue)
        #expect(api2["failures"] == .int(2))
        #expect(api2["last"]?.objectValue?["stderr_tail"]?.stringValue?.contains("503 Service Unavailable") == true)
        let retry = try Timestamp.parse(try #require(api2["next"]?.stringValue))
        #expect(Timestamp.now().duration(to: retry) > .seconds(3000))
    }

    @Test func setSkyIgnoresWhatIsNotWeatherAndKeepsTheLoopRunning() throws {
        let text = try Self.configuration { _, task in
            task["start"] = nil
            task["every"] = nil
        }
        let supervisor = try SupervisorHarness(text)
        #expect(try supervisor.ctl("emit", "set-sky", "tornado 12").status == 0)
        #expect(supervisor.read("state/sky") == nil)
        #expect(
            try json(try supervisor.ctl("--json", "status").output)["loop"]?.objectValue?["state"] == .string("running")
        )
        #expect(try supervisor.ctl("emit", "set-sky", "rain -2.5").status == 0)
        #expect(supervisor.read("state/sky") == "-25 12 rain\n")
    }

    // MARK: Reading the results

    struct Reading: Equatable {
        var temperature: Double
        var condition: String
    }

    /// The sources of a published.json, by name.
    static func sources(of published: String) -> [String: Reading] {
        guard let object = try? json(published), case .object(let sources)? = object["sources"] else { return [:] }
        var readings: [String: Reading] = [:]
        for (name, value) in sources.pairs {
            guard let source = value.objectValue, let temperature = source["temp_c"]?.doubleValue,
                let condition = source["condition"]?.stringValue
            else { continue }
            readings[name] = Reading(temperature: temperature, condition: condition)
        }
        return readings
    }

    static func publishIsBusy(_ supervisor: SupervisorHarness) throws -> Bool {
        let status = try json(try supervisor.ctl("--json", "status", "publish").output)
        let task = try #require(status["tasks"]?.arrayValue?.first?.objectValue)
        return task["running"] == .bool(true) || task["ready"] == .bool(true)
    }
}

/// The events of one `watch`, checked as they are read: each start of publish must follow a
/// changed result of an API since the previous start of publish.
struct WeatherEvents {
    let stream: EventStream
    /// Whether an API's result changed since publish last started; true at first, for what
    /// happened before the watch began.
    var changedSincePublish = true
    var publishStarts = 0
    var publishFinishes = 0
    var finishesPerTask: [String: Int] = [:]
    var unchangedSuccesses: Set<String> = []
    var changedFinishes: [Event] = []
    var violations: [Event] = []

    init(stream: EventStream) {
        self.stream = stream
    }

    mutating func next() throws -> Event {
        let event = try stream.next()
        switch event.kind {
        case .taskStarted("publish", _, _, _, _):
            if !changedSincePublish { violations.append(event) }
            changedSincePublish = false
            publishStarts += 1
        case .taskFinished("publish", _, _, _, _, _, _, _, _):
            publishFinishes += 1
        case .taskFinished(let task, _, _, _, _, let succeeded, _, _, let changed):
            finishesPerTask[task, default: 0] += 1
            guard WeatherExampleTests.apis.contains(task), succeeded else { break }
            if changed {
                changedSincePublish = true
                changedFinishes.append(event)
            } else {
                unchangedSuccesses.insert(task)
            }
        default:
            break
        }
        return event
    }

    /// Reads events until `done` holds (checked first, and after each event).
    mutating func until(_ done: (WeatherEvents) -> Bool) throws {
        while !done(self) { _ = try next() }
    }

    /// Reads until a run of publish has left a published.json that satisfies `accept`, and
    /// returns it.
    mutating func publishes(in supervisor: SupervisorHarness, _ accept: (String) -> Bool) throws -> String {
        while true {
            if let text = supervisor.read("published.json"), accept(text) { return text }
            let finished = publishFinishes
            try until { $0.publishFinishes > finished }
        }
    }
}
