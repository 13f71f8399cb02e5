import SmartPollProtocol

/// A ``MetricsSnapshot`` in the Prometheus text exposition format, version 0.0.4: each family's
/// `# HELP` and `# TYPE` lines, then its samples, one a line; label values escaped (backslash,
/// double quote, line feed); a histogram as cumulative `_bucket{le="..."}` samples ending with
/// `le="+Inf"`, then `_sum` and `_count`.
///
/// Written a step at a time (a family's header, or one task's lines of a family), so that the
/// text of thousands of tasks can be produced in slices as a socket drains.
///
/// - Complexity: O(tasks) for the whole text, about 2.5 KB a task; a step is O(1).
struct MetricsText: Sendable {
    /// The `Content-Type` of the text over HTTP.
    static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    private let snapshot: MetricsSnapshot
    private var family = 0
    /// -1: the family's header comes next; otherwise the index of the task whose lines come next.
    private var task = -1

    init(_ snapshot: MetricsSnapshot) {
        self.snapshot = snapshot
    }

    /// Whether the whole text has been written.
    var isFinished: Bool { family == Family.allCases.count }

    /// The whole text at once.
    static func render(_ snapshot: MetricsSnapshot) -> [UInt8] {
        var text = MetricsText(snapshot)
        var output: [UInt8] = []
        output.reserveCapacity(1_024 + snapshot.tasks.count * 2_600)
        text.write(into: &output, budget: .max)
        return output
    }

    /// Appends steps until about `budget` bytes are written, at least one. Does nothing once
    /// finished.
    mutating func write(into output: inout [UInt8], budget: Int) {
        let start = output.count
        repeat {
            guard let current = Family(rawValue: family) else { return }
            if task < 0 {
                writeHeader(current, into: &output)
                if current.isPerTask {
                    task = 0
                } else {
                    writeValues(current, into: &output)
                    family += 1
                }
            } else if task < snapshot.tasks.count {
                writeTask(current, task, into: &output)
                task += 1
            }
            if task >= snapshot.tasks.count {
                family += 1
                task = -1
            }
        } while output.count - start < budget && !isFinished
    }

    private enum Family: Int, CaseIterable {
        case runs, duration, lateness, tasksRunning, loopState, clients, logLinesDropped, buildInfo

        var name: StaticString {
            switch self {
            case .runs: "smartpoll_task_runs_total"
            case .duration: "smartpoll_task_run_duration_seconds"
            case .lateness: "smartpoll_task_start_lateness_seconds"
            case .tasksRunning: "smartpoll_tasks_running"
            case .loopState: "smartpoll_loop_state"
            case .clients: "smartpoll_clients"
            case .logLinesDropped: "smartpoll_log_lines_dropped_total"
            case .buildInfo: "smartpoll_build_info"
            }
        }

        var help: StaticString {
            switch self {
            case .runs: "Finished runs of each task, by outcome (succeeded, failed, timed_out, cancelled)."
            case .duration: "How long each task's runs took, from start to end, in seconds."
            case .lateness: "How long after falling due each task's runs started, in seconds."
            case .tasksRunning: "Task runs in flight."
            case .loopState: "The loop's state: 1 for the current one, 0 for the others."
            case .clients: "Connections to the control socket."
            case .logLinesDropped: "Log lines dropped because the log's destination was not reading."
            case .buildInfo: "The supervisor's version, as a label; the value is always 1."
            }
        }

        var type: StaticString {
            switch self {
            case .runs, .logLinesDropped: "counter"
            case .duration, .lateness: "histogram"
            case .tasksRunning, .loopState, .clients, .buildInfo: "gauge"
            }
        }

        var isPerTask: Bool { self == .runs || self == .duration || self == .lateness }
    }

    private func writeHeader(_ family: Family, into output: inout [UInt8]) {
        output.append(static: "# HELP ")
        output.append(static: family.name)
        output.append(32)
        output.append(static: family.help)
        output.append(static: "\n# TYPE ")
        output.append(static: family.name)
        output.append(32)
        output.append(static: family.type)
        output.append(10)
    }

    private func writeValues(_ family: Family, into output: inout [UInt8]) {
        switch family {
        case .runs, .duration, .lateness:
            break
        case .tasksRunning:
            output.sample(family.name, value: UInt64(max(0, snapshot.tasksRunning)))
        case .loopState:
            for state in LoopStateLabel.all {
                output.append(static: family.name)
                output.append(static: "{state=\"")
                output.appendLabelValue(state.label)
                output.append(static: "\"} ")
                output.append(static: state.state == snapshot.loopState ? "1\n" : "0\n")
            }
        case .clients:
            output.sample(family.name, value: UInt64(max(0, snapshot.clients)))
        case .logLinesDropped:
            output.sample(family.name, value: UInt64(max(0, snapshot.logLinesDropped)))
        case .buildInfo:
            output.append(static: family.name)
            output.append(static: "{version=\"")
            output.appendLabelValue(snapshot.version)
            output.append(static: "\"} 1\n")
        }
    }

    private func writeTask(_ family: Family, _ index: Int, into output: inout [UInt8]) {
        let name = snapshot.taskNames[index]
        let metrics = snapshot.tasks[index]
        switch family {
        case .runs:
            for outcome in TaskMetrics.Outcome.allCases {
                output.append(static: family.name)
                output.append(static: "{task=\"")
                output.appendLabelValue(name)
                output.append(static: "\",outcome=\"")
                output.append(static: outcome.label)
                output.append(static: "\"} ")
                output.appendDecimal(metrics.runs[outcome.rawValue])
                output.append(10)
            }
        case .duration:
            writeHistogram(family.name, task: name, metrics.duration, .duration, into: &output)
        case .lateness:
            writeHistogram(family.name, task: name, metrics.lateness, .lateness, into: &output)
        case .tasksRunning, .loopState, .clients, .logLinesDropped, .buildInfo:
            break
        }
    }

    private func writeHistogram(
        _ name: StaticString, task: String, _ histogram: MetricsHistogram, _ buckets: MetricsBuckets,
        into output: inout [UInt8]
    ) {
        var cumulative: UInt64 = 0
        for index in 0...buckets.bounds.count {
            cumulative &+= histogram.counts[index]
            output.append(static: name)
            output.append(static: "_bucket{task=\"")
            output.appendLabelValue(task)
            output.append(static: "\",le=\"")
            if index < buckets.labels.count {
                output.append(static: buckets.labels[index])
            } else {
                output.append(static: "+Inf")
            }
            output.append(static: "\"} ")
            output.appendDecimal(cumulative)
            output.append(10)
        }
        output.append(static: name)
        output.append(static: "_sum{task=\"")
        output.appendLabelValue(task)
        output.append(static: "\"} ")
        output.appendFloat(histogram.sum)
        output.append(10)
        output.append(static: name)
        output.append(static: "_count{task=\"")
        output.appendLabelValue(task)
        output.append(static: "\"} ")
        output.appendDecimal(histogram.count)
        output.append(10)
    }

    /// The loop's states in a fixed order, each with its label.
    private struct LoopStateLabel {
        let state: LoopStatus.State
        let label: String

        static let all = LoopStatus.State.allCases.map { LoopStateLabel(state: $0, label: $0.rawValue) }
    }
}

extension [UInt8] {
    fileprivate mutating func append(static text: StaticString) {
        text.withUTF8Buffer { append(contentsOf: $0) }
    }

    /// `NAME VALUE\n`.
    fileprivate mutating func sample(_ name: StaticString, value: UInt64) {
        append(static: name)
        append(32)
        appendDecimal(value)
        append(10)
    }

    fileprivate mutating func appendDecimal(_ value: UInt64) {
        if value < 10 {
            append(48 + UInt8(value))
            return
        }
        var digits: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)  // 32 bytes: 20 digits at most
        Swift.withUnsafeMutableBytes(of: &digits) { buffer in
            var remaining = value
            var position = buffer.count
            while remaining > 0 {
                position -= 1
                buffer[position] = 48 + UInt8(remaining % 10)
                remaining /= 10
            }
            append(contentsOf: buffer[position...])
        }
    }

    /// A sample value as the format has it: Go's float syntax, `+Inf`, `-Inf`, `NaN`.
    fileprivate mutating func appendFloat(_ value: Double) {
        if value.isNaN {
            append(static: "NaN")
        } else if value.isInfinite {
            append(static: value > 0 ? "+Inf" : "-Inf")
        } else {
            // The shortest text that reads back as the same value: 0.25, 1e-05, 12.0.
            append(contentsOf: value.description.utf8)
        }
    }

    /// A label value between its quotes: backslash, double quote and line feed escaped.
    mutating func appendLabelValue(_ value: String) {
        let utf8 = value.utf8
        guard utf8.contains(where: { $0 == 0x5C || $0 == 0x22 || $0 == 0x0A }) else {
            append(contentsOf: utf8)
            return
        }
        for byte in utf8 {
            switch byte {
            case 0x5C: append(contentsOf: [0x5C, 0x5C])
            case 0x22: append(contentsOf: [0x5C, 0x22])
            case 0x0A: append(contentsOf: [0x5C, 0x6E])
            default: append(byte)
            }
        }
    }
}
