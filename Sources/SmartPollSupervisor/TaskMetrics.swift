/// What the metrics say of one task (smartpoll-supervisor(8), METRICS): its finished runs by
/// outcome, and histograms of their durations and of how late they started.
///
/// - Important: Plain counters in fixed-size storage, updated in place: a run's start and end
///   cost a few additions, never an allocation. A value: a copy is a snapshot.
struct TaskMetrics: Sendable {
    /// How a run ended, as `smartpoll_task_runs_total`'s `outcome` label says it. `failed` and
    /// `timed_out` add up to `status`'s `failures`, `cancelled` is its `cancelled`.
    enum Outcome: Int, CaseIterable, Sendable {
        case succeeded, failed, timedOut, cancelled

        var label: StaticString {
            switch self {
            case .succeeded: "succeeded"
            case .failed: "failed"
            case .timedOut: "timed_out"
            case .cancelled: "cancelled"
            }
        }

        /// As `status` counts a run: interrupted (`cancel`, the loop's end, a reload) and not
        /// successful is cancelled, whatever ended it; otherwise a timeout, or a failure.
        init(succeeded: Bool, timedOut: Bool, interrupted: Bool) {
            if succeeded {
                self = .succeeded
            } else if interrupted {
                self = .cancelled
            } else if timedOut {
                self = .timedOut
            } else {
                self = .failed
            }
        }
    }

    /// Finished runs, by ``Outcome`` raw value.
    var runs = InlineArray<4, UInt64>(repeating: 0)
    /// Seconds from a run's start to its end (its process reaped and its pipes drained).
    var duration = MetricsHistogram()
    /// Seconds from the time a run fell due to its start.
    var lateness = MetricsHistogram()

    /// A run started `seconds` after it fell due; nil when it had no due time.
    mutating func runStarted(lateBy seconds: Double?) {
        guard let seconds else { return }
        lateness.observe(max(0, seconds), in: .lateness)
    }

    mutating func runEnded(_ outcome: Outcome, seconds: Double) {
        runs[outcome.rawValue] &+= 1
        duration.observe(max(0, seconds), in: .duration)
    }
}

/// The upper bounds of a histogram's buckets (each bucket counts the values at most its bound;
/// the last, `+Inf`, counts all), with their `le` labels as written.
struct MetricsBuckets: Sendable {
    let bounds: [Double]
    let labels: [StaticString]

    /// Run durations: a poll of an API takes milliseconds to seconds, a batch job minutes.
    static let duration = MetricsBuckets(
        bounds: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1_800],
        labels: ["0.01", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "30", "60", "120", "300", "600", "1800"])

    /// Start lateness: under a millisecond when the loop keeps up; more when a run of the task was
    /// still in flight, `max_running` held it back, or the supervisor was down when it fell due.
    static let lateness = MetricsBuckets(
        bounds: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30, 60, 300, 3_600],
        labels: [
            "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "5", "30", "60", "300",
            "3600",
        ])

    // Literal arrays, not a map of pairs: a key path such as \.0 costs thousands of instructions
    // of metadata lookups the first time (callgrind), and the first run pays for it.
    private init(bounds: [Double], labels: [StaticString]) {
        precondition(bounds.count == labels.count && bounds.count < MetricsHistogram.bucketCapacity)
        self.bounds = bounds
        self.labels = labels
    }
}

/// A Prometheus histogram of fixed buckets: a count a bucket (not cumulative: the text adds
/// them up), the count and the sum of the values observed.
struct MetricsHistogram: Sendable {
    /// Buckets at most, `+Inf` included.
    static let bucketCapacity = 16

    /// Values in each bucket alone, by the index of its bound in ``MetricsBuckets``; the values
    /// above the last bound are at that bound's count of indices.
    var counts = InlineArray<16, UInt64>(repeating: 0)
    var count: UInt64 = 0
    var sum: Double = 0

    /// - Complexity: O(buckets), at most 15 comparisons.
    mutating func observe(_ value: Double, in buckets: MetricsBuckets) {
        let bounds = buckets.bounds
        var index = 0
        while index < bounds.count && value > bounds[index] { index += 1 }
        counts[index] &+= 1
        count &+= 1
        sum += value
    }
}
