import SmartPollProtocol

/// Command hooks run one at a time, and no task hook runs while one does (SPEC section 2): the
/// hook running now, task runs that ended meanwhile (their task hooks wait), and the `emit`s
/// waiting their turn, in arrival order.
struct CommandHookQueue {
    /// An `emit` of a command hook: what to run, and whom to answer.
    struct Emit {
        var name: String
        var hook: HookConfiguration.CommandHook
        var data: String?
        var reply: (Reply.Body) -> Void
    }

    var inFlight: (run: TaskRun, reply: (Reply.Body) -> Void)?
    var endedDuringHook: [TaskRun] = []
    var pending: [Emit] = []
}
