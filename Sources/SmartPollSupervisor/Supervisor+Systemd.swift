import SmartPollProtocol

/// systemd's notify protocol: readiness, reloads, shutdown and a one-line status.
extension Supervisor {
    /// Sends assignments to systemd, when it listens; a failure is logged, never fatal.
    func notifySystemd(_ assignments: [String]) {
        guard notifier.isActive else { return }
        if let problem = notifier.send(assignments) { log.write(.warning, problem) }
    }

    /// `STATUS=` with ``statusSummary``. `throttled` (after each run): at most one a second,
    /// the last change always sent.
    func notifyStatus(throttled: Bool = false) {
        guard notifier.isActive else { return }
        let second: Int64 = 1_000_000_000
        if throttled && loop.now < lastStatusNotification + second {
            guard statusNotificationTimer == nil else { return }
            statusNotificationTimer = loop.schedule(at: lastStatusNotification + second) { [unowned self] in
                self.statusNotificationTimer = nil
                self.notifyStatus()
            }
            return
        }
        lastStatusNotification = loop.now
        notifySystemd(["STATUS=" + statusSummary])
    }

    /// `loop running; 4 tasks, 1 running; 120 runs, 2 failed; state saved`.
    var statusSummary: String {
        var text = "loop \(loopStatus.state.rawValue)"
        if let cluster = clusterStatus {
            text =
                cluster.role == .leader
                ? "cluster leader; " + text : "cluster standby, leader \(cluster.leader ?? "unknown"); " + text
        }
        if loopStatus.state == .failed, let error = loopStatus.error { text += " (\(error))" }
        let running = tasks.reduce(0) { $0 + ($1.current == nil ? 0 : 1) }
        let runs = tasks.reduce(0) { $0 + $1.runs }
        let failures = tasks.reduce(0) { $0 + $1.failures }
        text +=
            "; \(names.count) task\(names.count == 1 ? "" : "s"), \(running) running; \(runs) run\(runs == 1 ? "" : "s"), \(failures) failed"
        if let persistence {
            text += persistence.error.map { "; state NOT SAVED: \($0)" } ?? "; state saved"
        }
        return text
    }
}
