/// Stage two of a task: runs serialized with the loop (no other hook runs at the same time),
/// typically to store the result of stage one and reschedule.
public typealias TaskHook = @Sendable (SchedulerControl) async throws -> Void

/// A task: stage one runs in the background, concurrently with the loop and other tasks, and
/// returns a ``TaskHook`` (stage two), or nil when there is nothing to serialize, or throws a
/// fatal error that ends the loop's run. Task cancellation tells it to stop.
public struct SchedulerTask: Sendable {
    let body: @Sendable () async throws -> TaskHook?

    public init(_ body: @escaping @Sendable () async throws -> TaskHook?) {
        self.body = body
    }
}

/// Called, in order, at the start of every run of the loop, before any task starts.
public struct RunHook: Sendable {
    let body: @Sendable (SchedulerControl) async throws -> Void

    public init(_ body: @escaping @Sendable (SchedulerControl) async throws -> Void) {
        self.body = body
    }
}

/// A source of values, each handled inside the loop (serialized with it) by `handler`, and
/// optionally its end, by `onFinish`.
///
/// The source is iterated by one background task for the scheduler's lifetime, one value at a
/// time: the next value is not requested until the previous one was handled, and a value that
/// arrives between runs waits for the next run (after its run hooks). A source that throws ends
/// the current (or next) run with its error, and `onFinish` is not called.
///
/// A source that finishes without error produces nothing more; with `onFinish`, its end is
/// then one more event of the hook: `onFinish` is called once, inside the loop and serialized
/// like the values, after the last value was handled (in the next run, if it ends between
/// runs). It may schedule, and an error it throws ends the run, as the handler's would. (The Go
/// library's hook hears the end as `ok == false`, on every turn of its loop once the channel is
/// closed; here the end is reported once.) A scheduler that goes away while its sources are
/// still being iterated reports no end.
public struct EventHook: Sendable {
    let handle: @Sendable (any Sendable, SchedulerControl) async throws -> Void
    let finish: (@Sendable (SchedulerControl) async throws -> Void)?
    let pump: @Sendable (Mailbox, Int) -> Task<Void, Never>

    public init<Values: AsyncSequence & Sendable>(
        _ values: Values,
        handler: @escaping @Sendable (Values.Element, SchedulerControl) async throws -> Void,
        onFinish: (@Sendable (SchedulerControl) async throws -> Void)? = nil
    ) where Values.Element: Sendable {
        handle = { value, control in
            // The pump below only ever posts values of this type for this hook.
            try await handler(value as! Values.Element, control)
        }
        finish = onFinish
        let reportsFinish = onFinish != nil
        pump = { mailbox, index in
            Task {
                do {
                    for try await value in values {
                        await withCheckedContinuation { delivered in
                            mailbox.postEvent(hook: index, value: value, delivered: delivered)
                        }
                    }
                    // A cancelled iteration (the scheduler went away) may end like a finished one.
                    if reportsFinish && !Task.isCancelled {
                        mailbox.post(.eventSourceFinished(hook: index))
                    }
                } catch {
                    if !Task.isCancelled {
                        mailbox.post(.eventSourceFailed(hook: index, error))
                    }
                }
            }
        }
    }
}
