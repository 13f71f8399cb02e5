import SmartPoll

/// The loop's restart policy (SPEC 4, top-level `"restart": {"after": "10s", "max": "5m"}`): a
/// run of the loop that failed (a `fatal` task failure) is started again after `after`, the
/// delay doubling with each failure up to `max`, and going back to `after` once a run has gone
/// `max` without failing. Without it a failed loop waits for `smartpollctl start`, as the
/// library's `Run` returns.
///
/// A value driven with the time passed in, like ``SupervisorPolicy``: the supervisor arms a
/// timer for ``restartAt`` and calls ``restartDue(now:)`` when it fires.
struct LoopRestartPolicy: Sendable, Hashable {
    typealias Configuration = SupervisorConfiguration.Restart

    var configuration: Configuration?
    /// The delay the next failure waits.
    private(set) var delay: Duration = .zero
    /// When the current run of the loop started.
    private var startedAt: Instant?
    /// When the failed loop starts again; nil when no restart is pending.
    private(set) var restartAt: Instant?

    init(_ configuration: Configuration?) {
        self.configuration = configuration
        delay = configuration?.after ?? .zero
    }

    /// A run of the loop started (by the policy or by an operator): a pending restart is moot.
    mutating func loopStarted(now: Instant) {
        startedAt = now
        restartAt = nil
    }

    /// The run of the loop failed at `now`: when it starts again, or nil without the policy.
    mutating func loopFailed(now: Instant) -> Instant? {
        guard let configuration else { return nil }
        // A run that went `max` without failing proves the trouble gone: start from `after`.
        if let startedAt, now.nanoseconds - startedAt.nanoseconds >= configuration.maximum.nanosecondsClamped {
            delay = configuration.after
        }
        startedAt = nil
        let wait = delay
        delay = min(delay * 2, configuration.maximum)
        restartAt = now.advanced(by: wait)
        return restartAt
    }

    /// An operator stopped the loop (or shut down): no restart is pending any more.
    mutating func loopStopped() {
        startedAt = nil
        restartAt = nil
    }

    /// The restart timer fired: whether the loop is to start now.
    mutating func restartDue(now: Instant) -> Bool {
        guard let restartAt, now.nanoseconds >= restartAt.nanoseconds else { return false }
        self.restartAt = nil
        return true
    }

    /// A reload changed the policy: the delay starts over from the new `after`; a pending
    /// restart keeps its time, or is dropped when the policy went away.
    mutating func reconfigure(_ new: Configuration?) {
        guard new != configuration else { return }
        configuration = new
        delay = new?.after ?? .zero
        if new == nil { restartAt = nil }
    }
}
