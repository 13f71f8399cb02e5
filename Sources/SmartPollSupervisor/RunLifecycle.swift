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
///                                                                    (or draining --emptied--> ended,
///                                                                     when the run is a cgroup)
/// ```
///
/// - Important: Every path ends in `ended` through ``exited()``: a run is over only when its
///   process has been reaped, and what is left of it at that moment is killed; a run contained
///   in a cgroup is over only once that cgroup is empty too (``emptied()``).
struct RunLifecycle: Sendable {
    /// Why a run is being ended before its process exits.
    enum Cause: Hashable, Sendable {
        /// An operator's `cancel`: the run fails as `cancelled`, and no failure policy applies.
        case cancelled
        /// The loop's run ended (`stop`, `restart`, `shutdown`, a fatal failure).
        case stopped
        /// A reload removed the task: the run is ended as if cancelled.
        case removed
        /// The supervisor lost its cluster's leadership (SPEC section 9): the run is killed at
        /// once (SIGKILL to every process of the run, no grace), as the loop's end stops it.
        case fenced
    }

    enum State: Hashable, Sendable {
        case running
        /// The teardown's signal was sent; SIGKILL follows when the grace elapses.
        case terminating
        /// SIGKILL was sent; the process's exit is awaited.
        case killed
        /// The main process exited and what was left of the run was killed; the run's cgroup
        /// is not empty yet.
        case draining
        case ended
    }

    enum Action: Hashable, Sendable {
        /// Fire ``timeoutElapsed()`` after this long.
        case armTimeout(Duration)
        /// Send this signal to every process of the run.
        case signal(Int32)
        /// Fire ``graceElapsed()`` after this long.
        case armKill(Duration)
        /// Collect the main process's exit status, then fire ``emptied()`` once the run's cgroup
        /// has no process left (at once if it has none now).
        case awaitEmpty
        /// The run is over: cancel its timers, read what its pipes still hold, report its end.
        case finish
    }

    private(set) var state: State = .running
    private(set) var timedOut = false
    private(set) var cancelled = false
    /// Whether the loop's end (`stop`, `restart`, `shutdown`, a fatal failure) ended the run.
    private(set) var stopped = false
    let timeout: Duration?
    let teardown: Teardown
    /// Whether the run is a cgroup of its own: its end then waits until the cgroup is empty.
    let isContained: Bool

    init(timeout: Duration?, teardown: Teardown, isContained: Bool = false) {
        self.timeout = timeout
        self.teardown = teardown
        self.isContained = isContained
    }

    /// The main process has exited: nothing but the end of the run is left to do.
    var hasExited: Bool { state == .draining || state == .ended }

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
        guard !hasExited else { return [] }
        switch cause {
        case .stopped, .fenced: stopped = true
        case .cancelled, .removed: cancelled = true
        }
        if cause == .fenced {
            // The fence is hard: a run already in its grace is killed now too.
            guard state == .running || state == .terminating else { return [] }
            state = .killed
            return [.signal(SIGKILL)]
        }
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
    /// been reused): whatever else of the run is left is killed at once, and the run is over;
    /// a contained run once its cgroup is empty.
    mutating func exited() -> [Action] {
        guard !hasExited else { return [] }
        guard isContained else {
            state = .ended
            return [.signal(SIGKILL), .finish]
        }
        state = .draining
        return [.signal(SIGKILL), .awaitEmpty]
    }

    /// The run's cgroup has no process left, after ``exited()``: the run is over.
    mutating func emptied() -> [Action] {
        guard state == .draining else { return [] }
        state = .ended
        return [.finish]
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
