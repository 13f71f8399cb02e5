import Glibc

/// How a run is ended before its process exits by itself (SPEC section 3): `signal` to every
/// process of the run, then SIGKILL after `grace`; the run is over once its process has been
/// reaped and nothing of it is left.
struct Teardown: Hashable, Sendable {
    var signal: Int32
    var grace: Duration

    /// A task's `kill_signal` and `kill_grace`, or a command hook's `kill_grace` (and SIGTERM).
    init(signal: Int32 = SIGTERM, grace: Duration) {
        self.signal = signal
        self.grace = grace
    }
}

/// The life of one run, a task's or a command hook's, as a value: events in, actions out. It
/// performs no I/O and reads no clock; ``TaskRun`` carries its actions out.
///
/// ```
/// running --timeout / terminate--> terminating --grace elapsed--> killed
///    |                                  |                            |
///    +------------- exited -------------+------------ exited --------+--> ended
/// ```
///
/// - Important: Every path ends in `ended` through ``exited()``: a run is over only when its
///   process has been reaped, and what is left of it at that moment is killed.
struct RunLifecycle: Sendable {
    /// Why a run is being ended before its process exits.
    enum Cause: Hashable, Sendable {
        /// An operator's `cancel`: the run fails as `cancelled`, and no failure policy applies.
        case cancelled
        /// The loop's run ended (`stop`, `restart`, `shutdown`, a fatal failure).
        case stopped
        /// A reload removed the task: the run is ended as if cancelled.
        case removed
    }

    enum State: Hashable, Sendable {
        case running
        /// The teardown's signal was sent; SIGKILL follows when the grace elapses.
        case terminating
        /// SIGKILL was sent; the process's exit is awaited.
        case killed
        case ended
    }

    enum Action: Hashable, Sendable {
        /// Fire ``timeoutElapsed()`` after this long.
        case armTimeout(Duration)
        /// Send this signal to every process of the run.
        case signal(Int32)
        /// Fire ``graceElapsed()`` after this long.
        case armKill(Duration)
        /// The run is over: cancel its timers, read what its pipes still hold, report its end.
        case finish
    }

    private(set) var state: State = .running
    private(set) var timedOut = false
    private(set) var cancelled = false
    let timeout: Duration?
    let teardown: Teardown

    init(timeout: Duration?, teardown: Teardown) {
        self.timeout = timeout
        self.teardown = teardown
    }

    /// The process was spawned.
    func started() -> [Action] {
        timeout.map { [.armTimeout($0)] } ?? []
    }

    /// The run's `timeout` elapsed: the run fails as timed out, and is ended.
    mutating func timeoutElapsed() -> [Action] {
        guard state == .running else { return [] }
        timedOut = true
        return beginTeardown()
    }

    /// Ends the run early for `cause`; a run already being ended keeps its course (the cause
    /// is still recorded: a `cancel` during a timeout's grace makes the run cancelled too).
    mutating func terminate(_ cause: Cause) -> [Action] {
        guard state != .ended else { return [] }
        if cause != .stopped { cancelled = true }
        guard state == .running else { return [] }
        return beginTeardown()
    }

    /// The teardown's grace elapsed and the process is still there.
    mutating func graceElapsed() -> [Action] {
        guard state == .terminating else { return [] }
        state = .killed
        return [.signal(SIGKILL)]
    }

    /// The run's main process exited (it is not reaped yet, so its process group cannot have
    /// been reused): whatever else of the run is left is killed at once, and the run is over.
    mutating func exited() -> [Action] {
        guard state != .ended else { return [] }
        state = .ended
        return [.signal(SIGKILL), .finish]
    }

    private mutating func beginTeardown() -> [Action] {
        state = .terminating
        return [.signal(teardown.signal), .armKill(teardown.grace)]
    }

    /// Whether the run succeeded, given how its process ended and what its directives did:
    /// exit 0, no timeout, no cancel, valid directives.
    func succeeded(status: TerminationStatus?, directiveError: String?) -> Bool {
        status == .exited(0) && !timedOut && !cancelled && directiveError == nil
    }

    /// Why the run failed, in one phrase, or nil when it succeeded.
    func failureReason(status: TerminationStatus?, directiveError: String?) -> String? {
        if succeeded(status: status, directiveError: directiveError) { return nil }
        if timedOut { return "timed out" }
        if cancelled { return "cancelled" }
        if let directiveError { return directiveError }
        switch status {
        case .exited(let code)?: return "exited with status \(code)"
        case .signaled(let signal)?: return "killed by \(SignalName.name(signal))"
        case nil: return "ended without an exit status"
        }
    }
}
