import SmartPollProtocol

/// The metrics (smartpoll-supervisor(8), METRICS): counters kept in place by the loop, a
/// snapshot of them for the `metrics` reply, and the snapshot the HTTP endpoint serves,
/// published at most once a second, and only after something changed.
extension Supervisor {
    /// How often at most the endpoint gets a new snapshot.
    static let metricsPublishInterval: Int64 = 1_000_000_000

    /// Every value of the metrics now.
    ///
    /// - Complexity: O(tasks): a copy of each task's counters (about 300 bytes a task).
    func metricsSnapshot() -> MetricsSnapshot {
        MetricsSnapshot(
            taskNames: names, tasks: tasks.map { $0.metrics }, tasksRunning: policy.machine.runningCount,
            loopState: loopStatus.state, clients: server?.clients.count ?? 0,
            logLinesDropped: log.writer.droppedLineCount, version: Supervisor.version)
    }

    /// Something the metrics show changed: the endpoint gets a snapshot on the loop's next turn,
    /// or a second after the last one. Without an endpoint, nothing (the `metrics` reply takes
    /// its own snapshot).
    ///
    /// - Complexity: O(1); at most one timer armed.
    func metricsChanged() {
        guard metricsEndpoint != nil, metricsPublishTimer == nil else { return }
        let at = max(loop.now, lastMetricsPublish &+ Self.metricsPublishInterval)
        metricsPublishTimer = loop.schedule(at: at) { [unowned self] in
            self.metricsPublishTimer = nil
            self.lastMetricsPublish = self.loop.now
            self.metricsEndpoint?.publish(self.metricsSnapshot())
        }
    }

    /// Binds `metrics_listen` and starts the endpoint's thread, if the configuration has one.
    func startMetricsEndpoint() throws(SupervisorError) {
        guard let address = configuration.metricsListen else { return }
        let endpoint = try MetricsEndpoint(listening: address, snapshot: metricsSnapshot())
        metricsEndpoint = endpoint
        lastMetricsPublish = loop.now
        log.write(.info, "metrics: serving http://\(endpoint.address)/metrics", [("address", "\(endpoint.address)")])
    }

    /// Stops the endpoint's thread and closes its connections.
    func stopMetricsEndpoint() {
        metricsEndpoint?.stop()
        metricsEndpoint = nil
        if let timer = metricsPublishTimer { loop.cancel(timer) }
        metricsPublishTimer = nil
    }
}
