import SmartPollProtocol
import Testing

@testable import SmartPollSupervisor

/// Top-level `cluster` (SPEC section 9): etcd's URLs, the cluster's name, the node's name (the
/// host name by default) and the lease, each checked at load; never with `state_dir`.
@Suite struct ClusterConfigurationTests {
    private func parse(_ cluster: String, extra: String = "") throws(SupervisorError) -> SupervisorConfiguration {
        let text = #"{"tasks": {"t": {"command": ["true"]}}, "cluster": "# + cluster + extra + "}"
        return try SupervisorConfiguration.parse(Array(text.utf8), file: "test.json")
    }

    /// The problems reported; fails the test if it parsed.
    private func problems(
        _ cluster: String, extra: String = "", sourceLocation: SourceLocation = #_sourceLocation
    ) -> [String] {
        do {
            _ = try parse(cluster, extra: extra)
            Issue.record("expected the configuration to be rejected", sourceLocation: sourceLocation)
            return []
        } catch {
            #expect(error.code == .invalidConfiguration, sourceLocation: sourceLocation)
            return error.message.split(separator: "\n").map(String.init)
        }
    }

    @Test func aClusterIsReadWithItsDefaults() throws {
        let configuration = try parse(
            #"{"etcd": ["http://127.0.0.1:2379", "https://[::1]:2379/", "http://etcd-b"], "name": "weather"}"#)
        let cluster = try #require(configuration.cluster)
        #expect(cluster.endpoints == ["http://127.0.0.1:2379", "https://[::1]:2379/", "http://etcd-b"])
        #expect(cluster.name == "weather")
        #expect(cluster.keyPrefix == "/smartpoll/weather/")
        #expect(cluster.node == SupervisorConfiguration.hostName(), "the node is the host's name by default")
        #expect(!cluster.node.isEmpty)
        #expect(cluster.lease == .seconds(5))
        #expect(cluster.fenceMargin == .seconds(1), "a fifth of the lease")
        #expect(
            try parse(#"{"etcd": ["http://a:1"], "name": "w"}"#).cluster
                == cluster.with(endpoints: ["http://a:1"], name: "w"))
    }

    @Test func theLeaseIsWholeSecondsFromTwoToSixty() throws {
        let configuration = try parse(#"{"etcd": ["http://a:2379"], "name": "w", "node": "n-1", "lease": "2.2s"}"#)
        #expect(configuration.cluster?.lease == .seconds(3), "rounded up: etcd's TTL counts seconds")
        #expect(configuration.cluster?.node == "n-1")
        #expect(configuration.cluster?.fenceMargin == .milliseconds(600))
        #expect(
            try parse(#"{"etcd": ["http://a:2379"], "name": "w", "lease": 2}"#).cluster?.fenceMargin
                == .milliseconds(500))
        #expect(try parse(#"{"etcd": ["http://a:2379"], "name": "w", "lease": "1m"}"#).cluster?.lease == .seconds(60))
        #expect(
            problems(#"{"etcd": ["http://a:2379"], "name": "w", "lease": "1s"}"#)
                == [#"test.json: cluster.lease: must be from 2s to 1m, got 1s"#])
        #expect(problems(#"{"etcd": ["http://a:2379"], "name": "w", "lease": "61s"}"#).count == 1)
        #expect(problems(#"{"etcd": ["http://a:2379"], "name": "w", "lease": "soon"}"#).count == 1)
    }

    @Test func everyProblemIsNamedWithItsPath() {
        let found = problems(
            #"{"etcd": ["ftp://a:2379", "http://a:2379/v3", "http://a:99999", "http://a:x"], "name": "no spaces", "node": "", "colour": 1}"#
        )
        #expect(found.contains { $0.hasPrefix("test.json: cluster.etcd[0]: must start with http:// or https://") })
        #expect(found.contains { $0.hasPrefix("test.json: cluster.etcd[1]: must be a URL with a host and no path") })
        #expect(found.contains { $0.hasPrefix("test.json: cluster.etcd[2]: has an invalid port") })
        #expect(found.contains { $0.hasPrefix("test.json: cluster.etcd[3]: has an invalid port") })
        #expect(found.contains { $0.hasPrefix("test.json: cluster.name: invalid name") })
        #expect(found.contains { $0.hasPrefix("test.json: cluster.node: invalid name") })
        #expect(found.contains { $0.hasPrefix("test.json: cluster.colour:") })
        #expect(problems(#"{"name": "w"}"#).contains { $0.hasPrefix("test.json: cluster.etcd: missing") })
        #expect(problems(#"{"etcd": [], "name": "w"}"#).count == 1)
        #expect(problems(#"{"etcd": ["http://a:1"]}"#).contains { $0.hasPrefix("test.json: cluster.name: missing") })
        let many = (0..<17).map { "\"http://a:\($0 + 1)\"" }.joined(separator: ",")
        #expect(
            problems(#"{"etcd": ["# + many + #"], "name": "w"}"#) == ["test.json: cluster.etcd: at most 16 endpoints"])
        #expect(problems(#""etcd""#).count == 1)
    }

    @Test func aClusterWithAStateDirectoryIsRefused() {
        #expect(
            problems(#"{"etcd": ["http://a:2379"], "name": "w"}"#, extra: #", "state_dir": "/var/lib/x""#)
                == [
                    "test.json: cluster: cannot go with state_dir: a cluster keeps its state in etcd (one source of truth)"
                ])
    }
}

extension SupervisorConfiguration.Cluster {
    fileprivate func with(endpoints: [String], name: String) -> Self {
        var copy = self
        copy.endpoints = endpoints
        copy.name = name
        return copy
    }
}
