import Foundation
import Glibc
import SmartPollProtocol
import Testing

/// `metrics`: run counts by outcome after real runs, `smartpollctl metrics`, and the
/// `metrics_listen` endpoint scraped over real HTTP by Python's urllib and parsed by
/// prometheus_client's parser (contrib/metrics/scrape), on a thread of its own.
@Suite(.endToEnd)
struct MetricsTests {
    /// One task for each outcome: `good` succeeds, `bad` exits 3, `slow` outlives its timeout,
    /// `held` is cancelled.
    static let configuration = """
        {"metrics_listen": "127.0.0.1:0", "tasks": {
          "good": {"command": ["true"]},
          "bad": {"command": ["sh", "-c", "exit 3"], "on_failure": "continue"},
          "slow": {"command": ["sleep", "30"], "timeout": "300ms", "on_failure": "continue"},
          "held": {"command": ["sleep", "30"], "on_failure": "continue"},
          "fds": {"command": ["sh", "-c", "for f in /proc/$$/fd/*; do readlink $f; done; true"]}
        }}
        """

    /// The endpoint's URL, from the line the supervisor logs when it serves.
    static func url(_ supervisor: SupervisorHarness) throws -> String {
        let log = supervisor.logText
        guard let range = log.range(of: #"metrics: serving (http://[^ ]+/metrics)"#, options: .regularExpression)
        else { throw HarnessError("no metrics line in the log:\n\(log)") }
        return String(log[range].dropFirst("metrics: serving ".count))
    }

    /// The port of `url`.
    static func port(_ url: String) throws -> UInt16 {
        guard let text = url.split(separator: ":").last?.split(separator: "/").first, let port = UInt16(text) else {
            throw HarnessError("no port in \(url)")
        }
        return port
    }

    /// What contrib/metrics/scrape found at `url`: the JSON it prints, or its error.
    static func scrape(_ url: String) throws -> (result: JSONObject?, run: CommandResult) {
        let run = try runCommand(Repository.root + "/contrib/metrics/scrape", [url], timeout: 30)
        guard run.status == 0 else { return (nil, run) }
        return (try json(run.output), run)
    }

    /// The samples of one family, as `[labels: value]`.
    static func samples(_ scraped: JSONObject, _ family: String, name: String? = nil) -> [[String: String]: Double] {
        var found: [[String: String]: Double] = [:]
        for sample in scraped["families"]?.objectValue?[family]?.objectValue?["samples"]?.arrayValue ?? [] {
            guard let sample = sample.objectValue, name == nil || sample["name"] == .string(name!) else { continue }
            var labels: [String: String] = [:]
            for (key, value) in sample["labels"]?.objectValue?.pairs ?? [] { labels[key] = value.stringValue }
            switch sample["value"] {
            case .int(let value)?: found[labels] = Double(value)
            case .double(let value)?: found[labels] = value
            default: break
            }
        }
        return found
    }

    /// `NAME{LABELS} VALUE` lines of a text, by `NAME{LABELS}`.
    static func values(_ text: String) -> [String: String] {
        var values: [String: String] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " ") else { continue }
            values[String(line[..<space])] = String(line[line.index(after: space)...])
        }
        return values
    }

    /// Runs each task to its outcome: `good` twice, then `bad`, `slow` and `held` (cancelled).
    static func runEveryOutcome(_ supervisor: SupervisorHarness) throws {
        #expect(try supervisor.ctl("run", "good", "--wait").status == 0)
        #expect(try supervisor.ctl("run", "good", "--wait").status == 0)
        #expect(try supervisor.ctl("run", "bad", "--wait").status == 3)
        #expect(try supervisor.ctl("run", "slow", "--wait").status == 124)
        let events = try supervisor.watch(["held"])
        #expect(try supervisor.ctl("run", "held").status == 0)
        try events.until { if case .taskStarted = $0.kind { return true } else { return false } }
        #expect(try supervisor.ctl("cancel", "held").status == 0)
        try events.finishes(of: "held")
    }

    static let expectedRuns: [String: [String: String]] = [
        "good": ["succeeded": "2", "failed": "0", "timed_out": "0", "cancelled": "0"],
        "bad": ["succeeded": "0", "failed": "1", "timed_out": "0", "cancelled": "0"],
        "slow": ["succeeded": "0", "failed": "0", "timed_out": "1", "cancelled": "0"],
        "held": ["succeeded": "0", "failed": "0", "timed_out": "0", "cancelled": "1"],
    ]

    @Test func runsAreCountedByOutcomeAndSmartpollctlPrintsTheText() throws {
        let supervisor = try SupervisorHarness(Self.configuration)
        try Self.runEveryOutcome(supervisor)

        let printed = try supervisor.ctl("metrics")
        #expect(printed.status == 0 && printed.error.isEmpty, "\(printed)")
        #expect(printed.output.hasPrefix("# HELP smartpoll_task_runs_total "), "\(printed.output.prefix(200))")
        #expect(printed.output.hasSuffix("\n") && !printed.output.hasSuffix("\n\n"), "printed as is")
        let values = Self.values(printed.output)
        for (task, outcomes) in Self.expectedRuns {
            for (outcome, count) in outcomes {
                let key = #"smartpoll_task_runs_total{task="\#(task)",outcome="\#(outcome)"}"#
                #expect(values[key] == count, "\(key) = \(values[key] ?? "missing")")
            }
        }
        #expect(values[#"smartpoll_task_run_duration_seconds_count{task="good"}"#] == "2")
        #expect(values[#"smartpoll_task_run_duration_seconds_bucket{task="good",le="+Inf"}"#] == "2")
        #expect(values[#"smartpoll_task_start_lateness_seconds_count{task="good"}"#] == "2")
        #expect(values[#"smartpoll_task_run_duration_seconds_count{task="fds"}"#] == "0", "a task never run")
        let slowSeconds = Double(values[#"smartpoll_task_run_duration_seconds_sum{task="slow"}"#] ?? "") ?? 0
        #expect(slowSeconds >= 0.3 && slowSeconds < 10, "slow ran past its 300 ms timeout: \(slowSeconds)")
        #expect(values[#"smartpoll_task_run_duration_seconds_bucket{task="slow",le="0.25"}"#] == "0")
        #expect(values[#"smartpoll_task_run_duration_seconds_bucket{task="slow",le="1"}"#] == "1")
        #expect(values["smartpoll_tasks_running"] == "0")
        #expect(values[#"smartpoll_loop_state{state="running"}"#] == "1")
        #expect(values[#"smartpoll_loop_state{state="stopped"}"#] == "0")
        // smartpollctl's own connection at least.
        #expect(Int(values["smartpoll_clients"] ?? "") ?? 0 >= 1)
        #expect(values["smartpoll_log_lines_dropped_total"] == "0")
        #expect(values[#"smartpoll_build_info{version="0.1.0"}"#] == "1")

        // The counts match status's: failures are failed and timed out, cancelled are cancelled.
        let bad = try supervisor.statusRow("bad")
        #expect(bad["runs"] == .int(1) && bad["failures"] == .int(1))
        #expect(try supervisor.statusRow("held")["cancelled"] == .int(1))

        let reply = try json(try supervisor.ctl("--json", "metrics").output)
        #expect(reply["ok"] == .bool(true))
        let text = try #require(reply["text"]?.stringValue)
        #expect(Self.values(text)[#"smartpoll_task_runs_total{task="good",outcome="succeeded"}"#] == "2")
        #expect(try supervisor.ctl("metrics", "extra").status == 2)
        #expect(try supervisor.ctl("metric").error.contains("did you mean \"metrics\"?"))
    }

    @Test func prometheusClientParsesWhatTheEndpointServes() throws {
        let supervisor = try SupervisorHarness(Self.configuration)
        let url = try Self.url(supervisor)
        try Self.runEveryOutcome(supervisor)
        // The endpoint gets a snapshot at most once a second after a change: scrape until it
        // has the last run (the cancelled one), for at most 10 s.
        var scraped: JSONObject?
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            let (result, run) = try Self.scrape(url)
            #expect(run.status == 0, "scrape: \(run.error)")
            if let result, Self.samples(result, "smartpoll_task_runs")[["task": "held", "outcome": "cancelled"]] == 1 {
                scraped = result
                break
            }
            usleep(50_000)
        }
        let result = try #require(scraped, "the scrape never showed the cancelled run")
        #expect(result["status"] == .int(200))
        #expect(result["content_type"] == .string("text/plain; version=0.0.4; charset=utf-8"))
        let families = try #require(result["families"]?.objectValue)
        let types: [String: String] = [
            "smartpoll_task_runs": "counter", "smartpoll_task_run_duration_seconds": "histogram",
            "smartpoll_task_start_lateness_seconds": "histogram", "smartpoll_tasks_running": "gauge",
            "smartpoll_loop_state": "gauge", "smartpoll_clients": "gauge", "smartpoll_log_lines_dropped": "counter",
            "smartpoll_build_info": "gauge",
        ]
        #expect(Set(families.keys) == Set(types.keys))
        for (family, type) in types {
            #expect(families[family]?.objectValue?["type"] == .string(type), "\(family)")
            #expect(families[family]?.objectValue?["help"]?.stringValue?.isEmpty == false, "\(family) has help")
        }
        let runs = Self.samples(result, "smartpoll_task_runs")
        for (task, outcomes) in Self.expectedRuns {
            for (outcome, count) in outcomes {
                #expect(runs[["task": task, "outcome": outcome]] == Double(count), "\(task) \(outcome)")
            }
        }
        let buckets = Self.samples(
            result, "smartpoll_task_run_duration_seconds", name: "smartpoll_task_run_duration_seconds_bucket")
        let slow = buckets.filter { $0.key["task"] == "slow" }
        #expect(slow.count == 16, "15 bounds and +Inf")
        #expect(slow[["task": "slow", "le": "+Inf"]] == 1 && slow[["task": "slow", "le": "0.1"]] == 0)
        let counts = Self.samples(
            result, "smartpoll_task_run_duration_seconds", name: "smartpoll_task_run_duration_seconds_count")
        #expect(counts[["task": "good"]] == 2)
        #expect(Self.samples(result, "smartpoll_loop_state")[["state": "running"]] == 1)
        #expect(Self.samples(result, "smartpoll_loop_state").values.reduce(0, +) == 1)
        #expect(Self.samples(result, "smartpoll_build_info")[["version": "0.1.0"]] == 1)
        #expect(Self.samples(result, "smartpoll_tasks_running")[[:]] == 0)
    }

    /// A reload by SIGHUP (no control client connects, which would publish by itself) with a
    /// `restart` policy (a reload without one touches the loop's status, which publishes too):
    /// the endpoint drops the removed task's series and shows the added one within a second or so.
    @Test func aReloadBySIGHUPReachesTheEndpoint() throws {
        let before =
            #"{"metrics_listen": "127.0.0.1:0", "restart": {"after": "1s"}, "tasks": {"old": {"command": ["true"]}}}"#
        let supervisor = try SupervisorHarness(before)
        let url = try Self.url(supervisor)
        // Until the endpoint shows the loop running and no control client (the snapshot of
        // start-up has the loop stopped): the publication the loop's start and the harness's
        // connections asked for is done, and none is pending when the signal comes.
        var first: JSONObject?
        let quiet = Date().addingTimeInterval(10)
        while Date() < quiet {
            first = try #require(Self.scrape(url).result, "a scrape")
            if Self.samples(first!, "smartpoll_loop_state")[["state": "running"]] == 1,
                Self.samples(first!, "smartpoll_clients")[[:]] == 0
            {
                break
            }
            usleep(100_000)
        }
        #expect(Self.samples(try #require(first), "smartpoll_clients")[[:]] == 0)
        #expect(Self.samples(try #require(first), "smartpoll_task_runs")[["task": "old", "outcome": "succeeded"]] == 0)
        try before.replacingOccurrences(of: "\"old\"", with: "\"new\"")
            .write(toFile: supervisor.configurationPath, atomically: true, encoding: .utf8)
        supervisor.signal(SIGHUP)
        var runs: [[String: String]: Double] = [:]
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            runs = Self.samples(try #require(Self.scrape(url).result), "smartpoll_task_runs")
            if runs[["task": "new", "outcome": "succeeded"]] != nil { break }
            usleep(100_000)
        }
        #expect(supervisor.logText.contains("configuration reloaded"), "\(supervisor.logText)")
        #expect(runs[["task": "new", "outcome": "succeeded"]] == 0, "the added task: \(runs)")
        #expect(runs[["task": "old", "outcome": "succeeded"]] == nil, "the removed task: \(runs)")
    }

    /// libmicrohttpd (and GnuTLS, which it links) is loaded when an endpoint starts, libcurl only
    /// for a cluster: a supervisor without either maps neither (about 6 MiB of resident memory).
    @Test func theHTTPLibrariesAreLoadedOnlyWhenNeeded() throws {
        let plain = try SupervisorHarness(#"{"tasks": {"t": {"command": ["true"]}}}"#)
        #expect(try plain.ctl("ping").status == 0)
        for library in ["libmicrohttpd.so", "libcurl.so", "libgnutls.so", "libcrypto.so"] {
            #expect(try !plain.hasMapped(library), "\(library) is mapped without metrics or a cluster")
        }
        let serving = try SupervisorHarness(Self.configuration)
        #expect(try Self.scrape(Self.url(serving)).result != nil)
        #expect(try serving.hasMapped("libmicrohttpd.so"))
        #expect(try !serving.hasMapped("libcurl.so"))
    }

    @Test func otherPathsAre404AndOtherMethods405() throws {
        let supervisor = try SupervisorHarness(Self.configuration)
        let url = try Self.url(supervisor)
        let base = String(url.dropLast("/metrics".count))
        for path in ["/", "/metrics/", "/metricsx", "/other"] {
            let (result, run) = try Self.scrape(base + path)
            #expect(result == nil && run.status == 1 && run.error.contains("HTTP 404"), "\(path): \(run)")
        }
        // Python's urllib with other methods: the status and the Allow header.
        let probe = """
            import sys, urllib.request, urllib.error
            for method in ["POST", "PUT", "DELETE", "OPTIONS", "HEAD", "GET"]:
                request = urllib.request.Request(sys.argv[1], method=method, data=b"x=1" if method in ("POST", "PUT") else None)
                try:
                    with urllib.request.urlopen(request, timeout=20) as response:
                        print(method, response.status, len(response.read()), response.headers.get("Allow"))
                except urllib.error.HTTPError as error:
                    print(method, error.code, 0, error.headers.get("Allow"))
            """
        let methods = try runCommand("/usr/bin/env", ["python3", "-c", probe, url])
        #expect(methods.status == 0, "\(methods)")
        let lines = methods.output.split(separator: "\n").map(String.init)
        #expect(lines.count == 6, "\(methods)")
        for line in lines.prefix(4) { #expect(line.hasSuffix(" 405 0 GET, HEAD"), "\(line)") }
        #expect(lines.count == 6 && lines[4] == "HEAD 200 0 None", "HEAD: the headers alone")
        #expect(lines.count == 6 && lines[5].hasPrefix("GET 200 ") && !lines[5].hasPrefix("GET 200 0 "))
    }

    @Test func idleHTTPClientsStallNeitherTheControlSocketNorAScrapeAndTasksInheritNoneOfThem() throws {
        let supervisor = try SupervisorHarness(Self.configuration)
        let url = try Self.url(supervisor)
        let port = try Self.port(url)
        // 24 connections that say nothing, or half a request line, and wait.
        var idle: [Int32] = []
        defer { for descriptor in idle { close(descriptor) } }
        for index in 0..<24 {
            let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            #expect(descriptor >= 0)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = port.bigEndian
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            #expect(connected == 0, "connection \(index): errno \(errno)")
            if index % 2 == 1 { _ = send(descriptor, "GET /metr", 9, 0) }
            idle.append(descriptor)
        }
        let client = try supervisor.connect()
        for _ in 0..<20 {
            let started = Date()
            let (reply, _) = try client.call(Request(id: .int(1), command: .ping))
            #expect(reply.isSuccess)
            let elapsed = Date().timeIntervalSince(started)
            #expect(elapsed < 0.5 * Double(Sanitizer.slowdown), "ping took \(elapsed) s beside 24 idle HTTP clients")
        }
        let started = Date()
        let (result, run) = try Self.scrape(url)
        #expect(result?["status"] == .int(200), "a scrape beside 24 idle clients: \(run)")
        #expect(Date().timeIntervalSince(started) < 5, "the scrape waited for the idle clients")
        #expect(try supervisor.ctl("metrics").status == 0)

        // No task inherits the endpoint's sockets, listening or accepted (close-on-exec), nor
        // its epoll descriptor.
        let descriptors = try supervisor.ctl("run", "fds", "--wait", "--output")
        #expect(descriptors.status == 0 && !descriptors.output.isEmpty, "\(descriptors)")
        #expect(!descriptors.output.contains("socket:"), "a task's descriptors:\n\(descriptors.output)")
        #expect(!descriptors.output.contains("anon_inode"), "a task's descriptors:\n\(descriptors.output)")
    }

    @Test func metricsListenIsCheckedAtLoadRestartOnlyOnReloadAndABusyPortStopsTheStart() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent(
            "smartpoll-metrics-\(UUID().uuidString.prefix(8))"
        ).path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let bad = folder + "/bad.json"
        try #"{"metrics_listen": "localhost:9464", "tasks": {"t": {"command": ["true"]}}}"#
            .write(toFile: bad, atomically: true, encoding: .utf8)
        let check = try runCommand(Binaries.supervisor, ["--check", "--config", bad])
        #expect(check.status == 78)
        #expect(
            check.error.contains(
                "metrics_listen: \"localhost\" is not an IPv4 address (host names are not looked up"),
            "\(check)")
        let good = folder + "/good.json"
        try #"{"metrics_listen": "[::1]:9464", "tasks": {"t": {"command": ["true"]}}}"#
            .write(toFile: good, atomically: true, encoding: .utf8)
        let valid = try runCommand(Binaries.supervisor, ["--check", "--config", good])
        #expect(valid.status == 0 && valid.output.contains("; metrics http://[::1]:9464/metrics"), "\(valid)")

        let supervisor = try SupervisorHarness(Self.configuration)
        let url = try Self.url(supervisor)
        let port = try Self.port(url)
        try Self.configuration.replacingOccurrences(of: "127.0.0.1:0", with: "127.0.0.1:1")
            .write(toFile: supervisor.configurationPath, atomically: true, encoding: .utf8)
        let reload = try json(try supervisor.ctl("--json", "reload").output)
        #expect(reload["restart_needed"] == .array([.string("metrics_listen")]), "\(reload)")
        #expect(supervisor.logEventuallyContains("metrics_listen changed in"), "\(supervisor.logText)")
        #expect(try Self.scrape(url).result?["status"] == .int(200), "the endpoint stays where it was")

        // A second supervisor on the port in use refuses to start, and says why.
        let second = try SupervisorHarness(
            Self.configuration.replacingOccurrences(of: "127.0.0.1:0", with: "127.0.0.1:\(port)"),
            waitsUntilListening: false)
        #expect(try second.waitForExit() == 1)
        #expect(
            second.logText.contains("cannot serve metrics on 127.0.0.1:\(port) (metrics_listen): bind: "),
            "\(second.logText)")
    }
}
