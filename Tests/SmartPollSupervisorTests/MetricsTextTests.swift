import SmartPollProtocol
import Testing

@testable import SmartPollSupervisor

/// The metrics' counters and their Prometheus text (smartpoll-supervisor(8), METRICS): buckets,
/// outcomes, the exposition format's escaping and cumulative buckets, and the `metrics` reply
/// written in slices.
@Suite struct MetricsTextTests {
    static func text(_ snapshot: MetricsSnapshot) -> String {
        String(decoding: MetricsText.render(snapshot), as: UTF8.self)
    }

    static func lines(_ snapshot: MetricsSnapshot) -> [String] {
        text(snapshot).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    }

    /// Two tasks with runs of every outcome, a name that needs every escape, and a loop running.
    static var sample: MetricsSnapshot {
        var plain = TaskMetrics()
        plain.runEnded(.succeeded, seconds: 0.004)
        plain.runEnded(.succeeded, seconds: 0.01)
        plain.runEnded(.failed, seconds: 0.2)
        plain.runEnded(.timedOut, seconds: 31)
        plain.runEnded(.cancelled, seconds: 5_000)
        plain.runStarted(lateBy: 0.0002)
        plain.runStarted(lateBy: 7)
        plain.runStarted(lateBy: nil)
        return MetricsSnapshot(
            taskNames: ["plain", "odd\\na\"me\nx"], tasks: [plain, TaskMetrics()], tasksRunning: 1,
            loopState: .running, clients: 3, logLinesDropped: 12, version: "0.1.0\"x")
    }

    @Test func aValueGoesInTheFirstBucketWhoseBoundIsAtLeastIt() {
        var histogram = MetricsHistogram()
        let buckets = MetricsBuckets.duration
        for value in [0, 0.01, 0.010_000_1, 1, 1_800, 1_800.5, .greatestFiniteMagnitude] {
            histogram.observe(value, in: buckets)
        }
        #expect(histogram.counts[0] == 2, "0 and the first bound itself")
        #expect(histogram.counts[1] == 1)
        #expect(histogram.counts[buckets.bounds.firstIndex(of: 1)!] == 1)
        #expect(histogram.counts[buckets.bounds.count - 1] == 1, "the last bound itself")
        #expect(histogram.counts[buckets.bounds.count] == 2, "above every bound: +Inf")
        #expect(histogram.count == 7)
        #expect(buckets.bounds == buckets.bounds.sorted() && Set(buckets.bounds).count == buckets.bounds.count)
        #expect(MetricsBuckets.lateness.bounds == MetricsBuckets.lateness.bounds.sorted())
        #expect(buckets.bounds.count < MetricsHistogram.bucketCapacity)
        #expect(MetricsBuckets.lateness.bounds.count < MetricsHistogram.bucketCapacity)
    }

    @Test func outcomesAreCountedAsStatusCountsRuns() {
        typealias Outcome = TaskMetrics.Outcome
        #expect(Outcome(succeeded: true, timedOut: false, interrupted: false) == .succeeded)
        #expect(Outcome(succeeded: true, timedOut: false, interrupted: true) == .succeeded)
        #expect(Outcome(succeeded: false, timedOut: false, interrupted: false) == .failed)
        #expect(Outcome(succeeded: false, timedOut: true, interrupted: false) == .timedOut)
        #expect(Outcome(succeeded: false, timedOut: false, interrupted: true) == .cancelled)
        #expect(Outcome(succeeded: false, timedOut: true, interrupted: true) == .cancelled)
        #expect(Outcome.allCases.map { "\($0.label)" } == ["succeeded", "failed", "timed_out", "cancelled"])
    }

    @Test func runsAreCountedByOutcomeAndLatenessOnlyWithADueTime() {
        let metrics = Self.sample.tasks[0]
        #expect((0..<4).map { metrics.runs[$0] } == [2, 1, 1, 1])
        #expect(metrics.duration.count == 5 && metrics.lateness.count == 2)
        #expect(abs(metrics.duration.sum - 5_031.214) < 1e-9)
        #expect(abs(metrics.lateness.sum - 7.0002) < 1e-12)
        var negative = TaskMetrics()
        negative.runStarted(lateBy: -0.5)
        negative.runEnded(.failed, seconds: -1)
        #expect(negative.lateness.sum == 0 && negative.lateness.counts[0] == 1, "never negative")
        #expect(negative.duration.sum == 0 && negative.duration.counts[0] == 1)
    }

    @Test func everyFamilyHasHelpAndTypeThenItsSamplesInOneGroup() throws {
        let lines = Self.lines(Self.sample)
        #expect(lines.last == "", "the text ends with a newline")
        let families: [(String, String)] = [
            ("smartpoll_task_runs_total", "counter"), ("smartpoll_task_run_duration_seconds", "histogram"),
            ("smartpoll_task_start_lateness_seconds", "histogram"), ("smartpoll_tasks_running", "gauge"),
            ("smartpoll_loop_state", "gauge"), ("smartpoll_clients", "gauge"),
            ("smartpoll_log_lines_dropped_total", "counter"), ("smartpoll_build_info", "gauge"),
        ]
        var position = 0
        for (name, type) in families {
            #expect(lines[position].hasPrefix("# HELP \(name) "), "\(lines[position])")
            #expect(lines[position + 1] == "# TYPE \(name) \(type)")
            position += 2
            // Every sample up to the next family's HELP is this family's.
            while position < lines.count - 1 && !lines[position].hasPrefix("# ") {
                let base = type == "histogram" ? name + "_" : name
                #expect(lines[position].hasPrefix(base), "\(lines[position]) in \(name)")
                position += 1
            }
        }
        #expect(position == lines.count - 1)
        #expect(lines.contains("smartpoll_tasks_running 1"))
        #expect(lines.contains("smartpoll_clients 3"))
        #expect(lines.contains("smartpoll_log_lines_dropped_total 12"))
        let states = lines.filter { $0.hasPrefix("smartpoll_loop_state{") }
        #expect(
            states == [
                #"smartpoll_loop_state{state="running"} 1"#, #"smartpoll_loop_state{state="starting"} 0"#,
                #"smartpoll_loop_state{state="stopped"} 0"#, #"smartpoll_loop_state{state="failed"} 0"#,
                #"smartpoll_loop_state{state="standby"} 0"#,
            ])
    }

    @Test func labelValuesEscapeBackslashDoubleQuoteAndLineFeed() {
        let lines = Self.lines(Self.sample)
        let escaped = #"odd\\na\"me\nx"#
        #expect(lines.contains(#"smartpoll_task_runs_total{task="\#(escaped)",outcome="cancelled"} 0"#))
        #expect(lines.contains(#"smartpoll_task_run_duration_seconds_count{task="\#(escaped)"} 0"#))
        #expect(lines.contains(#"smartpoll_build_info{version="0.1.0\"x"} 1"#))
        // No raw line feed inside a sample: every line is a comment or NAME{...} VALUE.
        for line in lines where !line.isEmpty && !line.hasPrefix("# ") {
            #expect(line.hasPrefix("smartpoll_"), "\(line)")
            #expect(line.split(separator: " ").count == 2, "\(line)")
        }
    }

    @Test func histogramBucketsAreCumulativeAndEndWithInfThenSumAndCount() throws {
        let lines = Self.lines(Self.sample)
        let name = "smartpoll_task_run_duration_seconds"
        let buckets = lines.filter { $0.hasPrefix(#"\#(name)_bucket{task="plain","#) }
        let bounds = MetricsBuckets.duration.bounds
        #expect(buckets.count == bounds.count + 1)
        let labels = buckets.compactMap { line in
            line.split(separator: "le=\"").last?.split(separator: "\"").first.map(String.init)
        }
        #expect(labels.dropLast().compactMap(Double.init) == bounds)
        #expect(labels.last == "+Inf")
        let values = buckets.compactMap { $0.split(separator: " ").last.flatMap { UInt64($0) } }
        // 0.004 and 0.01 in le=0.01; 0.2 from le=0.25; 31 from le=60; 5000 only in +Inf.
        var expected: [UInt64] = []
        for bound in bounds {
            expected.append(UInt64([0.004, 0.01, 0.2, 31, 5_000].filter { $0 <= bound }.count))
        }
        expected.append(5)
        #expect(values == expected)
        #expect(values == values.sorted(), "cumulative")
        let sum = try #require(lines.first { $0.hasPrefix(#"\#(name)_sum{task="plain"}"#) })
        #expect(abs((Double(sum.split(separator: " ")[1]) ?? 0) - 5_031.214) < 1e-9)
        #expect(lines.contains(#"\#(name)_count{task="plain"} 5"#))
        let lateness = lines.filter { $0.hasPrefix(#"smartpoll_task_start_lateness_seconds_bucket{task="plain","#) }
        #expect(lateness.first == #"smartpoll_task_start_lateness_seconds_bucket{task="plain",le="0.001"} 1"#)
        #expect(lateness.last == #"smartpoll_task_start_lateness_seconds_bucket{task="plain",le="+Inf"} 2"#)
        #expect(lines.contains(#"smartpoll_task_start_lateness_seconds_bucket{task="plain",le="5"} 1"#))
        #expect(lines.contains(#"smartpoll_task_start_lateness_seconds_bucket{task="plain",le="30"} 2"#))
    }

    @Test func noTasksStillGiveEveryFamilyHeader() {
        let text = Self.text(MetricsSnapshot(version: "0.1.0"))
        #expect(text.components(separatedBy: "# TYPE ").count == 9)
        #expect(!text.contains("{task="))
        #expect(text.contains(#"smartpoll_loop_state{state="stopped"} 1"#))
    }

    @Test func slicesOfTheMetricsReplyAreTheReplyEncodedAtOnce() throws {
        var snapshot = Self.sample
        for index in 0..<300 {
            var metrics = TaskMetrics()
            for run in 0..<index % 7 { metrics.runEnded(.failed, seconds: Double(run) * 0.37) }
            snapshot.taskNames.append("task-\(index)")
            snapshot.tasks.append(metrics)
        }
        let text = MetricsText.render(snapshot)
        #expect(text.count > 300 * 2_000)
        for id: JSONValue in [.null, .int(9), .string("x\"y")] {
            var expected: [UInt8] = []
            Reply(id: id, body: .metrics(MetricsReply(text: String(decoding: text, as: UTF8.self))))
                .encodeLine(into: &expected)
            for budget in [1, 500, 64 << 10, .max] {
                var slices = SlicedMetricsReply(id: id, snapshot: snapshot)
                var output: [UInt8] = []
                var count = 0
                while !slices.isFinished {
                    let before = output.count
                    slices.encodeSlice(into: &output, budget: budget)
                    count += 1
                    // A slice is its budget and one step more (a task's lines, about 2.5 KB escaped).
                    #expect(output.count - before <= min(budget, 1 << 30) + 8_192)
                }
                #expect(output == expected, "budget \(budget)")
                if budget == 64 << 10 { #expect(count > 5) }
            }
        }
    }
}
