/// One client of the control socket: who it is, the state machine that decides what becomes of
/// it, and what ``ControlServer`` holds for it on the loop. It calls nobody: the server reports
/// to ``machine`` and carries out the actions.
final class ClientConnection {
    let id: Int
    let descriptor: Int32
    let peerUserID: UInt32
    let peerProcessID: Int32
    var machine: ClientConnectionStateMachine
    /// The tasks whose events a watcher gets (nil: every event); set with
    /// ``ControlServer/startWatching(_:filter:)``.
    var watchFilter: Set<String>?
    /// The task whose `task_log` events this watcher gets, and nothing else (`logs` with
    /// `follow`); nil: an ordinary watcher, which gets no `task_log` event.
    var logFollowTask: String?
    /// The armed timer of `.armStallTimer`, cancelled when the connection closes.
    var stallTimer: EventLoop.TimerID?

    init(id: Int, descriptor: Int32, peerUserID: UInt32, peerProcessID: Int32, machine: ClientConnectionStateMachine) {
        self.id = id
        self.descriptor = descriptor
        self.peerUserID = peerUserID
        self.peerProcessID = peerProcessID
        self.machine = machine
    }
}
