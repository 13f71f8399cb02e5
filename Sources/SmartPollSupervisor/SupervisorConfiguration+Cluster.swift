import Glibc
import SmartPollProtocol

extension SupervisorConfiguration {
    /// Top-level `cluster` (SPEC section 9): the members of one cluster share `name` and `etcd`,
    /// and each runs under its own `node` name; exactly one of them, the leader, runs the loop.
    public struct Cluster: Sendable, Hashable {
        /// etcd's client URLs (`http://host:port` or `https://host:port`), tried in turn.
        public var endpoints: [String]
        /// The cluster's name: its keys live under `/smartpoll/NAME/`.
        public var name: String
        /// This member's name in `status` and `leader_changed` (default: the host name).
        public var node: String
        /// The lease's time to live, whole seconds (2 s to 1 min; default 5 s).
        public var lease: Duration

        /// The etcd key prefix of the cluster's election and state.
        public var keyPrefix: String { "/smartpoll/\(name)/" }

        /// How long before its lease could run out a leader counts itself deposed: a fifth of
        /// the lease, at least half a second (clock rates and a scheduling delay of the host
        /// must fit in it, SPEC section 9's safety margin).
        public var fenceMargin: Duration { Swift.max(.milliseconds(500), lease / 5) }
    }

    static let clusterKeys = ["etcd", "name", "node", "lease"]
    static let clusterLeaseRange: ClosedRange<Duration> = .seconds(2)...(.seconds(60))
    static let maximumEtcdEndpoints = 16

    static func parseCluster(
        _ value: JSONValue, at path: ConfigurationPath, reader: inout ConfigurationReader
    ) -> Cluster? {
        guard let object = reader.object(value, at: path) else { return nil }
        reader.rejectUnknownKeys(object, at: path, known: clusterKeys)
        var usable = true
        var endpoints: [String] = []
        if let value = object["etcd"] {
            if let urls = reader.stringArray(value, at: path.key("etcd"), nonEmpty: true) {
                if urls.count > maximumEtcdEndpoints {
                    reader.problem(path.key("etcd"), "at most \(maximumEtcdEndpoints) endpoints")
                    usable = false
                }
                for (position, url) in urls.enumerated() {
                    if let problem = endpointProblem(url) {
                        reader.problem(path.key("etcd").index(position), problem)
                        usable = false
                    }
                }
                endpoints = urls
            } else {
                usable = false
            }
        } else {
            reader.problem(path.key("etcd"), "missing; etcd's client URLs, such as [\"http://127.0.0.1:2379\"]")
            usable = false
        }
        var name = ""
        if let value = object["name"] {
            if let text = reader.string(value, at: path.key("name")), reader.name(text, at: path.key("name")) {
                name = text
            } else {
                usable = false
            }
        } else {
            reader.problem(path.key("name"), "missing; the cluster's name, the same on every member")
            usable = false
        }
        var node = hostName() ?? ""
        if let value = object["node"] {
            if let text = reader.string(value, at: path.key("node")), reader.name(text, at: path.key("node")) {
                node = text
            } else {
                usable = false
            }
        } else if node.isEmpty {
            reader.problem(path.key("node"), "missing, and the host name cannot serve as the node's name")
            usable = false
        }
        var lease: Duration = .seconds(5)
        if let value = object["lease"] {
            if let given = reader.duration(value, at: path.key("lease"), .positive) {
                // etcd's lease TTL counts whole seconds.
                let seconds = given.components.seconds + (given.components.attoseconds > 0 ? 1 : 0)
                lease = .seconds(seconds)
                if !clusterLeaseRange.contains(lease) {
                    reader.problem(
                        path.key("lease"), "must be from 2s to 1m, got \(DurationFormat.format(given))")
                    usable = false
                }
            } else {
                usable = false
            }
        }
        guard usable else { return nil }
        return Cluster(endpoints: endpoints, name: name, node: node, lease: lease)
    }

    /// Why `url` is not an etcd client URL (`http` or `https`, a host, a port, no path), or nil.
    static func endpointProblem(_ url: String) -> String? {
        let rest: Substring
        if url.hasPrefix("http://") {
            rest = url.dropFirst(7)
        } else if url.hasPrefix("https://") {
            rest = url.dropFirst(8)
        } else {
            return "must start with http:// or https://, got \(JSONValue.string(url).serialized())"
        }
        let authority = rest.hasSuffix("/") ? rest.dropLast() : rest
        guard !authority.isEmpty, !authority.contains("/"), !authority.contains("?"), !authority.contains("#"),
            !authority.contains("@"),
            !authority.contains(where: { $0 == " " || $0.asciiValue.map { $0 < 0x20 } ?? true })
        else {
            return "must be a URL with a host and no path, such as \"http://10.0.0.1:2379\""
        }
        // The port, when given, is a number: "host:2379" or "[::1]:2379".
        if let colon = authority.lastIndex(of: ":"), !authority[colon...].contains("]") {
            let port = authority[authority.index(after: colon)...]
            guard let number = Int(port), (1...65_535).contains(number) else {
                return "has an invalid port: \(JSONValue.string(String(port)).serialized())"
            }
        }
        return nil
    }

    /// The host's name, for a node without `node`.
    static func hostName() -> String? {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return nil }
        let name = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return name.isEmpty ? nil : name
    }
}
