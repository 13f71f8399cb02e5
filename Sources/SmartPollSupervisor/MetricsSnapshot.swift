import SmartPollProtocol

/// Every value the metrics text shows, copied out of the loop's state at one moment: what the
/// `metrics` reply and the HTTP endpoint render, each on their own time (the reply a slice at a
/// time on the loop, the endpoint on its own thread), never reading the loop's state itself.
///
/// - Important: A value of plain values and copy-on-write arrays: immutable once taken, and safe
///   to hand to another thread.
struct MetricsSnapshot: Sendable {
    /// Task names in `status` order, and each task's metrics at the same index.
    var taskNames: [String] = []
    var tasks: [TaskMetrics] = []
    /// Task runs in flight.
    var tasksRunning = 0
    var loopState: LoopStatus.State = .stopped
    /// Connections to the control socket.
    var clients = 0
    /// Lines the log's destination did not take in time (``LogWriter``), since the start.
    var logLinesDropped = 0
    var version = ""
}
