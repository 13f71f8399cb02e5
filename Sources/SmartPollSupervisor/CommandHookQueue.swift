import SmartPollProtocol

/// Command hooks run one at a time, and no task hook runs while one does (SPEC section 2): the
/// hook running now, task runs that ended meanwhile (their task hooks wait), and the `emit`s
/// waiting their turn, in arrival order.
struct CommandHookQueue {
    /// An `emit` of a command hook: what to run, and whom to answer.
    struct Emit {
        var name: String
        var hook: HookConfiguration.CommandHook
        var data: [UInt8]?
        var reply: (Reply.Body) -> Void
    }

    /// The hook running now and whom to answer when it ends. (Structs, not tuples: an optional
    /// tuple is copied through its metadata, a thousand instructions each time.)
    struct InFlight {
        var run: TaskRun
        var reply: (Reply.Body) -> Void
    }

    var inFlight: InFlight?
    var endedDuringHook: [Supervisor.RunEnd] = []
    var pending: [Emit] = []
}
