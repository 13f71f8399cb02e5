import Synchronization

/// The scheduler loop's inbox: many producers (task runs, the timer, event sources), one
/// consumer (the task executing `Scheduler.run()`).
///
/// - Important: Only one task may call ``receive(into:)`` at a time; `Scheduler.run()`
///   guarantees that with its exclusive flag.
final class Mailbox: Sendable {
    enum Message: Sendable {
        /// A task's stage one ended, with its task hook, nothing, or an error. (Not a `Result`:
        /// a closure in a generic payload is stored reabstracted, and each call then goes
        /// through two async thunks.)
        case taskFinished(SchedulerStateMachine.TaskID, generation: UInt64, hook: TaskHook?, error: (any Error)?)
        /// The armed timer with this token went off.
        case timer(token: UInt64)
        /// An event hook's source produced a value; `delivered` is resumed once it was handled.
        case event(hook: Int, value: any Sendable, delivered: CheckedContinuation<Void, Never>)
        /// An event hook's source finished without error (posted only for a hook with `onFinish`).
        case eventSourceFinished(hook: Int)
        /// An event hook's source threw.
        case eventSourceFailed(hook: Int, any Error)
        /// An idle executor thread saw this scheduler's runs queued with every worker busy:
        /// the loop starts one more worker (``RunPool``).
        case needWorker
        /// The clock's `sleep` threw something other than cancellation: timers cannot work.
        case timerFailed(any Error)
    }

    private struct State {
        var buffer: [Message] = []
        var waiter: UnsafeContinuation<Void, Never>?
        /// The receiving task was cancelled (``cancelReceiver()``), until ``resetCancellation()``.
        var cancelled = false
        var closed = false
    }

    private let state = Mutex(State())

    /// Posts `message`, moved into the buffer: a copy of a message goes through its enum's value
    /// witnesses (some 160 instructions), and this is on every run's path. An event goes through
    /// ``postEvent(hook:value:delivered:)``.
    func post(_ message: consuming Message) {
        var message = Optional(message)
        let waiter = state.withLock { state -> UnsafeContinuation<Void, Never>? in
            state.buffer.append(message.take()!)
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    /// Posts an event hook's value; once the mailbox is closed, releases its producer instead.
    func postEvent(hook: Int, value: any Sendable, delivered: CheckedContinuation<Void, Never>) {
        if state.withLock({ $0.closed }) { return delivered.resume() }
        post(.event(hook: hook, value: value, delivered: delivered))
    }

    /// Moves every posted message, in order, into `messages` (which must be empty), waiting for
    /// at least one. Returns false, with nothing moved, when the calling task is cancelled.
    ///
    /// - Important: The caller watches its cancellation once for all its receives: it calls
    ///   ``cancelReceiver()`` from a cancellation handler around them, and
    ///   ``resetCancellation()`` before (one handler a run of the loop rather than one a receive:
    ///   each costs the task's status-record lock twice).
    nonisolated(nonsending) func receive(into messages: inout [Message]) async -> Bool {
        precondition(messages.isEmpty)
        if take(into: &messages) { return true }
        if Task.isCancelled { return false }
        await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
            let wakeNow = state.withLock { state -> Bool in
                if !state.buffer.isEmpty || state.cancelled { return true }
                state.waiter = continuation
                return false
            }
            if wakeNow { continuation.resume() }
        }
        return take(into: &messages) || !Task.isCancelled
    }

    /// The receiving task is cancelled: a receive in progress returns, and so does every later
    /// one that finds nothing, until ``resetCancellation()``.
    func cancelReceiver() {
        let waiter = state.withLock { state -> UnsafeContinuation<Void, Never>? in
            state.cancelled = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    func resetCancellation() {
        state.withLock { $0.cancelled = false }
    }

    /// The scheduler is gone: every event producer waiting for delivery is released, now and
    /// from now on, so that no event source stays suspended forever.
    func close() {
        let pending = state.withLock { state -> [Message] in
            state.closed = true
            defer { state.buffer = [] }
            return state.buffer
        }
        for message in pending {
            if case .event(_, _, let delivered) = message { delivered.resume() }
        }
    }

    private func take(into messages: inout [Message]) -> Bool {
        state.withLock { state in
            if state.buffer.isEmpty { return false }
            swap(&state.buffer, &messages)
            return true
        }
    }
}
