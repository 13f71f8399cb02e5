import SmartPollProtocol
import Testing

@testable import SmartPollSupervisor

/// The task keys `nice` and `rlimits` (issue 15, item 5): values checked at load, each problem
/// with its key path.
@Suite struct TaskLimitsConfigurationTests {
    private func parse(_ text: String) throws(SupervisorError) -> SupervisorConfiguration {
        try SupervisorConfiguration.parse(Array(text.utf8), file: "test.json")
    }

    /// The problems reported for `text`; fails the test if it parsed.
    private func problems(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) -> [String] {
        do {
            _ = try parse(text)
            Issue.record("expected the configuration to be rejected", sourceLocation: sourceLocation)
            return []
        } catch {
            #expect(error.code == .invalidConfiguration, sourceLocation: sourceLocation)
            return error.message.split(separator: "\n").map(String.init)
        }
    }

    @Test func validValuesAreKeptAndAbsentOnesInheritTheSupervisors() throws {
        let configuration = try parse(
            """
            {"tasks": {
              "limited": {"command": ["true"], "nice": 5,
                          "rlimits": {"nofile": 64, "as": 1073741824, "cpu": "infinity", "core": 0}},
              "lowest": {"command": ["true"], "nice": -20, "rlimits": {}},
              "highest": {"command": ["true"], "nice": 19},
              "plain": {"command": ["true"]}}}
            """)
        let limited = try #require(configuration.tasks["limited"])
        #expect(limited.nice == 5)
        #expect(
            limited.resourceLimits
                == SpawnRequest.ResourceLimits(
                    openFiles: 64, addressSpace: 1 << 30, cpuSeconds: SpawnRequest.ResourceLimits.infinity,
                    coreBytes: 0))
        #expect(configuration.tasks["lowest"]?.nice == -20)
        #expect(configuration.tasks["lowest"]?.resourceLimits.isEmpty == true)
        #expect(configuration.tasks["highest"]?.nice == 19)
        let plain = try #require(configuration.tasks["plain"])
        #expect(plain.nice == nil)
        #expect(plain.resourceLimits.isEmpty)
        // A change of either is a change of the task, which reload acts on.
        var changed = plain
        changed.resourceLimits.coreBytes = 0
        #expect(changed != plain)
    }

    @Test func valuesOutOfRangeAreRejectedWithTheirPath() {
        let found = problems(
            """
            {"tasks": {"t": {"command": ["true"], "nice": 20, "rlimits": {"nofile": -1, "cpu": 1}},
                       "u": {"command": ["true"], "nice": -21}}}
            """)
        #expect(found.contains("test.json: tasks.t.nice: must be at least -20 and at most 19, got 20"))
        #expect(found.contains("test.json: tasks.u.nice: must be at least -20 and at most 19, got -21"))
        #expect(found.contains("test.json: tasks.t.rlimits.nofile: must be at least 0, got -1"))
        #expect(found.count == 3, "\(found)")
    }

    @Test func wrongTypesAreRejectedWithTheirPath() {
        let found = problems(
            """
            {"tasks": {"t": {"command": ["true"], "nice": "5",
                             "rlimits": {"nofile": "64", "as": 1.5, "core": "unlimited", "cpu": null}},
                       "u": {"command": ["true"], "rlimits": [64]}}}
            """)
        #expect(found.contains(#"test.json: tasks.t.nice: expected a whole number, got "5""#))
        #expect(found.contains(#"test.json: tasks.t.rlimits.nofile: expected a whole number or "infinity", got "64""#))
        #expect(
            found.contains { $0.hasPrefix(#"test.json: tasks.t.rlimits.as: expected a whole number or "infinity""#) })
        #expect(
            found.contains(
                #"test.json: tasks.t.rlimits.core: expected a whole number or "infinity", got "unlimited""#))
        #expect(
            found.contains { $0.hasPrefix(#"test.json: tasks.t.rlimits.cpu: expected a whole number or "infinity""#) })
        #expect(found.contains { $0.hasPrefix("test.json: tasks.u.rlimits: expected an object") })
        #expect(found.count == 6, "\(found)")
    }

    @Test func anUnknownLimitIsRejectedWithASuggestion() {
        let found = problems(#"{"tasks": {"t": {"command": ["true"], "rlimits": {"nofiles": 64, "stack": 1}}}}"#)
        #expect(
            found.contains(
                #"test.json: tasks.t.rlimits.nofiles: unknown key (did you mean "nofile"?); expected one of nofile, as, cpu, core"#
            ))
        #expect(found.contains { $0.hasPrefix("test.json: tasks.t.rlimits.stack: unknown key") })
        #expect(found.count == 2, "\(found)")
    }

    @Test func hooksTakeNeitherKey() {
        let found = problems(
            """
            {"tasks": {"t": {"command": ["true"]}},
             "hooks": {"c": {"command": ["true"], "nice": 5, "rlimits": {"core": 0}},
                       "s": {"schedule": {"t": "0s"}, "nice": 1}}}
            """)
        #expect(found.contains("test.json: hooks.c.nice: only a task takes nice"))
        #expect(found.contains("test.json: hooks.c.rlimits: only a task takes rlimits"))
        #expect(found.contains("test.json: hooks.s.nice: only a task takes nice"))
        #expect(found.count == 3, "\(found)")
    }
}
