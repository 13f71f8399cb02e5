import SmartPollProtocol

/// One client of the control socket as a value, in the style of swift-nio's `...StateMachine`
/// types and of `SchedulerStateMachine`: the driver (``ControlServer``) reports what happened
/// (the socket ready, bytes read, end of input, a reply ready, bytes sent, the socket full, the
/// stall timer) and carries out the ``Action`` each report returns (read, dispatch, flush, set
/// the interest, arm the stall timer, close). It performs no I/O and reads no clock: times come in
/// with the events, so tests drive it with plain numbers.
///
/// States (``State``):
/// - `serving(input)`: requests are framed and answered, each reply in its request's slot, so
///   replies leave in request order even when one is answered later (`run --wait`);
/// - `watching(input)`: after `watch`, a stream of events; what the peer sends is read and
///   dropped;
/// - `closing`: a line was too large: nothing more is read; the replies owed up to its own
///   leave, then the connection closes;
/// - `closed`: final; every later report returns `.none`.
///
/// The input of `serving` and `watching` is `reading`; `paused` while more than
/// `pauseInputAbove` bytes wait to be sent, or requests already framed wait for them to drain
/// (a client that pipelines without reading stalls only itself); or `closed` once the peer shut
/// down its writing side (as `nc -N` does): what it is owed is still sent, then a serving
/// connection closes, while a watcher keeps its stream until it hangs up.
///
/// Output waits while a batch is open (``beginBatch()`` and ``endBatch()``, nested; the events
/// of one wake-up of the loop are a batch too), so that the replies to a burst of pipelined
/// requests, or the events of a wake-up, leave in one send. A watcher holding more than
/// `maximumWatcherOutput` bytes is closed; so is a client whose waiting output has not moved
/// for the send timeout.
///
/// Bounded turns: at most ``requestsPerTurn`` requests are taken per turn of the loop; the rest
/// wait in the framer (input is not read meanwhile) and `.continueNextTurn` asks the driver to
/// report ``nextTurnStarted()`` on the loop's next turn, after timers, signals and the other
/// descriptors. A big reply (`results`) comes as slices (``replyReady(slot:slices:)``): a
/// slice of ``sliceBytes`` is written only when fewer than ``lowWater`` bytes are unsent, at most
/// ``slicesPerFlush`` per flush, and the connection stays interested in writable until its last
/// slice; requests behind it wait until then.
///
/// - Important: The driver carries out each action as soon as it is returned, before anything
///   else is reported about the connection, except the reports the action itself asks for
///   (`.read`, `.dispatch` and `.flush` are made of further reports; `.flushWhenIdle` and
///   `.armStallTimer` ask for one later). `.close` is returned exactly once.
/// - Complexity: every report is O(1) apart from the bytes it moves (framing, encoding, sending);
///   nothing is allocated per request beyond the request's own line and a held reply.
/// - Note: A refused peer's linger is not a state of this machine: the peer never gets one
///   (``ControlServer`` reads and drops its input for a bounded time).
struct ClientConnectionStateMachine {
    /// What becomes of what the peer sends.
    enum Input: Hashable, Sendable {
        case reading
        /// Not read for now: output above the line, or framed requests waiting for it to drain.
        case paused
        /// The peer shut down its writing side; nothing more will come.
        case closed
    }

    enum State: Hashable, Sendable {
        case serving(Input)
        case watching(Input)
        case closing
        case closed
    }

    /// What the loop should watch the descriptor for (registered as readable).
    struct Interest: OptionSet, Hashable, Sendable {
        let rawValue: UInt8
        static let readable = Interest(rawValue: 1 << 0)
        static let writable = Interest(rawValue: 1 << 1)
    }

    enum CloseReason: Hashable, Sendable {
        /// The peer ended its input and everything it was owed has left.
        case finished
        /// The peer hung up or reset the connection, or a read or a send failed.
        case peerGone
        /// A line was too large; its reply, and those owed before it, have left.
        case lineTooLarge
        /// A watcher holds more than `maximumWatcherOutput` bytes it has not read.
        case watcherTooFarBehind(heldBytes: Int)
        /// Output waited `waited` nanoseconds without the client taking a byte of it.
        case stalled(unsentBytes: Int, waited: Int64)
        /// The server closes every connection (shutdown).
        case serverClosing
    }

    /// A request line taken from the input, with the reply slot it was given.
    enum Frame: Hashable, Sendable {
        case request([UInt8], slot: Int)
        /// A line over the limit: its slot takes the `too_large` reply; the connection is
        /// `closing`.
        case tooLarge(length: Int, slot: Int)
    }

    enum Action: Hashable, Sendable {
        case none
        /// Read the socket once and report ``bytesRead(_:)``, ``endOfInput()`` or
        /// ``readFailed()`` (or nothing, when it would block).
        case read
        /// Answer the framed requests: ``beginBatch()``, then ``nextFrame()`` until it returns nil
        /// (answering each frame's slot, now or later, with ``replyReady(slot:_:)``), then
        /// ``endBatch()``.
        case dispatch
        /// Send with ``sendOutput(using:)`` while output is unsent; report
        /// ``sendWouldBlock(now:sendTimeout:)`` if the socket is full, or ``sendFailed()`` (and
        /// stop) if a send failed; then report ``flushEnded()``.
        case flush
        /// Report ``eventBatchEnded()`` once the loop has handled every event of this wake-up.
        case flushWhenIdle
        /// Requests wait for the next turn: report ``nextTurnRequested()`` now, and
        /// ``nextTurnStarted()`` on the loop's next turn.
        case continueNextTurn
        /// Watch the descriptor for this (differs from what was asked before).
        case setInterest(Interest)
        /// Report ``stallTimerFired(now:sendTimeout:)`` at this CLOCK_MONOTONIC time (ns). At
        /// most one such timer is armed at a time.
        case armStallTimer(deadline: Int64)
        /// Close the descriptor and forget the connection (and its stall timer). Returned once.
        case close(CloseReason)
    }

    private(set) var state: State = .serving(.reading)
    /// What the driver was last told to watch for.
    private(set) var interest: Interest = .readable
    /// Output held back above this many unsent bytes: requests wait, input is not read.
    let pauseInputAbove: Int
    /// The most a watcher may hold; more closes it (its events do not wait for requests).
    let maximumWatcherOutput: Int
    /// The most requests taken in one turn of the loop: a 64 KiB read holds thousands of pings,
    /// and answering them all would hold every timer and client for that long.
    static let requestsPerTurn = 64
    /// A sliced reply's next slice is written when fewer unsent bytes than this are queued.
    static let lowWater = 64 << 10
    /// About how many bytes of a sliced reply one slice writes.
    static let sliceBytes = 64 << 10
    /// The most slices written in one flush; more wait for the socket's next writable report.
    static let slicesPerFlush = 4

    private var framer: LineFramer
    private var output = ClientOutputQueue()
    /// Open batches (dispatches and the wake-up's events); output leaves when the last one ends.
    private var batchDepth = 0
    /// Whether output was queued while a batch was open.
    private var flushOwed = false
    /// Whether the events of this wake-up form an open batch (ended by `eventBatchEnded()`).
    private var eventBatchOpen = false
    /// Whether the driver holds an armed stall timer for this connection.
    private var stallTimerArmed = false
    /// Requests taken since the turn began (``inputReady(hangUp:)`` or ``nextTurnStarted()``).
    private var requestsThisTurn = 0
    /// Whether `.continueNextTurn` was returned and ``nextTurnStarted()`` not yet reported.
    private var nextTurnOwed = false
    /// Slices written since the last ``flushEnded()``.
    private var slicesThisFlush = 0
    /// While output waits on a full socket: when the client last took some, or when it began
    /// to wait. Nil when no output waits (sent, or not yet tried): the send timeout measures
    /// from here.
    private var waitingSince: Int64?

    /// - Parameters:
    ///   - maximumLineLength: The longest request line accepted (SPEC 8).
    ///   - pauseInputAbove: Unsent bytes above which requests and input wait.
    ///   - maximumWatcherOutput: The most a watcher may hold.
    init(maximumLineLength: Int, pauseInputAbove: Int, maximumWatcherOutput: Int) {
        framer = LineFramer(maximumLineLength: maximumLineLength)
        self.pauseInputAbove = pauseInputAbove
        self.maximumWatcherOutput = maximumWatcherOutput
    }

    // MARK: Queries

    /// The line limit this connection's requests are framed with.
    var maximumLineLength: Int { framer.maximumLineLength }

    var isWatching: Bool {
        if case .watching = state { return true }
        return false
    }

    var isClosed: Bool { state == .closed }

    /// Bytes ready to be sent.
    var unsentCount: Int { output.unsentCount }

    /// Whether a sliced reply is being written.
    var isProducing: Bool { output.isProducing }

    /// Whether a request was taken whose reply has not been given yet.
    var owesReplies: Bool { output.owesReplies }

    // MARK: Input

    /// The socket reported input, or a hang-up or an error (`hangUp`), which are reported
    /// whatever the interest.
    mutating func inputReady(hangUp: Bool) -> Action {
        // Each descriptor is reported once per turn: a new turn for this connection.
        requestsThisTurn = 0
        switch state {
        case .serving(.reading), .serving(.paused), .watching(.reading), .watching(.paused):
            // Requests already framed are answered before more input is taken.
            return framer.hasFrames ? .none : .read
        case .serving(.closed), .watching(.closed), .closing:
            // Readable is no longer asked for, so this is a hang-up or an error: the peer is gone.
            return hangUp ? close(.peerGone) : .none
        case .closed:
            return .none
        }
    }

    /// Bytes read from the socket: framed while serving, dropped while watching.
    mutating func bytesRead(_ bytes: UnsafeRawBufferPointer) -> Action {
        switch state {
        case .serving(.reading), .serving(.paused):
            framer.append(bytes)
            return framer.hasFrames ? .dispatch : .none
        case .serving(.closed), .watching, .closing, .closed:
            return .none
        }
    }

    /// The peer shut down its writing side (a read returned 0).
    mutating func endOfInput() -> Action {
        switch state {
        case .serving(.reading), .serving(.paused):
            state = .serving(.closed)
        case .watching(.reading), .watching(.paused):
            state = .watching(.closed)
        case .serving(.closed), .watching(.closed), .closing, .closed:
            return .none
        }
        // A partial last line is never answered; its bytes need not stay.
        framer = LineFramer(maximumLineLength: framer.maximumLineLength)
        return settle()
    }

    /// A read failed (not EAGAIN or EINTR): the connection is broken.
    mutating func readFailed() -> Action {
        isClosed ? .none : close(.peerGone)
    }

    // MARK: Requests

    /// Holds output back until the matching ``endBatch()``.
    mutating func beginBatch() {
        batchDepth += 1
    }

    /// The next framed request to answer, with its reply slot; nil when none is framed, when the
    /// output is above the line (the rest wait until it drains), or when no request is taken
    /// (watching, closing, closed).
    mutating func nextFrame() -> Frame? {
        guard case .serving = state, output.unsentCount <= pauseInputAbove, !output.isProducing,
            requestsThisTurn < Self.requestsPerTurn, let frame = framer.next()
        else {
            return nil
        }
        requestsThisTurn += 1
        let slot = output.reserveSlot()
        switch frame {
        case .line(let line):
            return .request(line, slot: slot)
        case .tooLarge(let length):
            state = .closing
            framer = LineFramer(maximumLineLength: framer.maximumLineLength)
            return .tooLarge(length: length, slot: slot)
        }
    }

    /// Ends a batch; once the last one ends, what was queued in them is sent.
    mutating func endBatch() -> Action {
        precondition(batchDepth > 0, "endBatch without beginBatch")
        batchDepth -= 1
        guard batchDepth == 0, !isClosed else { return .none }
        if flushOwed {
            flushOwed = false
            return .flush
        }
        // Framed requests may have been taken: the input may resume.
        return pendingDispatch() ?? settle()
    }

    /// The driver asked the loop for ``nextTurnStarted()`` (after `.continueNextTurn`).
    mutating func nextTurnRequested() -> Action {
        isClosed ? .none : settle()
    }

    /// The loop's next turn began (after `.continueNextTurn`): requests wait no more.
    mutating func nextTurnStarted() -> Action {
        nextTurnOwed = false
        requestsThisTurn = 0
        guard !isClosed else { return .none }
        return pendingDispatch() ?? settle()
    }

    /// The reply to the request given `slot` is ready. Replies leave in slot order; the one that
    /// is due is encoded straight into the output. Ignored once closed.
    mutating func replyReady(slot: Int, _ reply: some ClientOutputQueue.Line) -> Action {
        guard !isClosed else { return .none }
        output.fill(slot: slot, with: reply)
        return outputQueued()
    }

    /// Like ``replyReady(slot:_:)`` for a reply written in slices as the socket drains.
    mutating func replyReady(slot: Int, slices: some ClientOutputQueue.Slices) -> Action {
        guard !isClosed else { return .none }
        output.fill(slot: slot, with: slices)
        return outputQueued()
    }

    /// The connection's `watch` request was answered: from now on it is a stream of events.
    /// Requests framed behind it are dropped, as is whatever the peer sends next.
    mutating func watchStarted() -> Action {
        guard case .serving(let input) = state else { return .none }
        state = .watching(input)
        framer = LineFramer(maximumLineLength: framer.maximumLineLength)
        return batchDepth > 0 ? .none : settle()
    }

    // MARK: Events

    /// Queues an event line for a watcher (ignored otherwise), after any reply still owed. The
    /// events of one wake-up of the loop leave together, in one send.
    mutating func eventReady(_ line: [UInt8]) -> Action {
        guard case .watching = state else { return .none }
        output.appendEvent(line)
        flushOwed = true
        guard !eventBatchOpen else { return .none }
        eventBatchOpen = true
        batchDepth += 1
        return .flushWhenIdle
    }

    /// The loop handled every event of the wake-up that queued events (after `.flushWhenIdle`).
    mutating func eventBatchEnded() -> Action {
        guard eventBatchOpen else { return .none }
        eventBatchOpen = false
        return endBatch()
    }

    // MARK: Output

    /// Calls `body` with the bytes ready to be sent (possibly none).
    func withUnsentOutput<Result>(_ body: (UnsafeRawBufferPointer) throws -> Result) rethrows -> Result {
        try output.withUnsentBytes(body)
    }

    /// Writes the next slices of a sliced reply when little is unsent (at most
    /// ``slicesPerFlush`` per flush), and tells whether bytes are ready to be sent. The driver's
    /// `.flush` sends while this is true.
    mutating func prepareOutput() -> Bool {
        if output.isProducing && slicesThisFlush < Self.slicesPerFlush {
            slicesThisFlush += output.refill(
                below: Self.lowWater, budget: Self.sliceBytes, maximumSlices: Self.slicesPerFlush - slicesThisFlush)
        }
        return output.unsentCount > 0
    }

    /// Offers the unsent bytes to `send`, which returns how many of them it sent, or a negative
    /// number when it failed (with errno as the send left it), and records what it sent. Call
    /// only with output unsent.
    ///
    /// For the driver's sends: mutating, so that the machine is not copied for the call.
    mutating func sendOutput(using send: (UnsafeRawBufferPointer) -> Int) -> Int {
        let sent = output.withUnsentBytes(send)
        if sent > 0 {
            output.consume(sent)
            // The client took something: the send timeout starts again when output next waits.
            waitingSince = nil
        }
        return sent
    }

    /// A send would block: output waits for the client to read (`now`: CLOCK_MONOTONIC, ns;
    /// `sendTimeout`: how long it may wait without moving, ns).
    mutating func sendWouldBlock(now: Int64, sendTimeout: Int64) -> Action {
        guard !isClosed else { return .none }
        output.compact()
        if waitingSince == nil { waitingSince = now }
        guard !stallTimerArmed else { return .none }
        stallTimerArmed = true
        return .armStallTimer(deadline: Self.deadline(waitingSince ?? now, sendTimeout))
    }

    /// A send failed (not EAGAIN): the peer is gone.
    mutating func sendFailed() -> Action {
        isClosed ? .none : close(.peerGone)
    }

    /// The driver sent what the socket took (after `.flush`, or when the socket was writable).
    mutating func flushEnded() -> Action {
        slicesThisFlush = 0
        guard !isClosed else { return .none }
        // Requests held while the output was above the line go first.
        return pendingDispatch() ?? settle()
    }

    /// The stall timer fired (`now`: CLOCK_MONOTONIC, ns; `sendTimeout` in ns, as it is now).
    mutating func stallTimerFired(now: Int64, sendTimeout: Int64) -> Action {
        stallTimerArmed = false
        // Not waiting: what was owed left since. The next wait arms a timer again.
        guard !isClosed, let since = waitingSince else { return .none }
        let waited = now &- since
        if waited >= sendTimeout {
            return close(.stalled(unsentBytes: output.unsentCount, waited: waited))
        }
        stallTimerArmed = true
        return .armStallTimer(deadline: Self.deadline(since, sendTimeout))
    }

    /// The server closes the connection (shutdown), after a last flush of its own.
    mutating func closeRequested() -> Action {
        isClosed ? .none : close(.serverClosing)
    }

    // MARK: Transitions

    /// `.dispatch` when framed requests wait and may be taken now; `.continueNextTurn` (once)
    /// when only this turn's budget holds them; nil otherwise.
    private mutating func pendingDispatch() -> Action? {
        guard case .serving(let input) = state, input != .closed, framer.hasFrames, batchDepth == 0,
            output.unsentCount <= pauseInputAbove, !output.isProducing
        else { return nil }
        if requestsThisTurn < Self.requestsPerTurn { return .dispatch }
        if nextTurnOwed { return nil }
        nextTurnOwed = true
        return .continueNextTurn
    }

    private mutating func outputQueued() -> Action {
        guard batchDepth == 0 else {
            flushOwed = true
            return .none
        }
        return .flush
    }

    /// Decides the interest (and pausing, half-close's end and the watcher's cap) from the
    /// output as it now is.
    private mutating func settle() -> Action {
        let unsent = output.unsentCount
        // A sliced reply's next slices are written when the socket reports writable.
        let writable: Interest = unsent > 0 || output.isProducing ? .writable : []
        switch state {
        case .closed:
            return .none
        case .watching(let input):
            if output.heldCount > maximumWatcherOutput {
                return close(.watcherTooFarBehind(heldBytes: output.heldCount))
            }
            if input == .closed { return setInterest(writable) }
            let paused = unsent > pauseInputAbove
            state = .watching(paused ? .paused : .reading)
            return setInterest(paused ? writable : writable.union(.readable))
        case .serving(.closed), .closing:
            if unsent == 0 && !output.owesReplies {
                return close(state == .closing ? .lineTooLarge : .finished)
            }
            return setInterest(writable)
        case .serving(.reading), .serving(.paused):
            let paused = unsent > pauseInputAbove || framer.hasFrames
            state = .serving(paused ? .paused : .reading)
            return setInterest(paused ? writable : writable.union(.readable))
        }
    }

    private mutating func setInterest(_ wanted: Interest) -> Action {
        guard wanted != interest else { return .none }
        interest = wanted
        return .setInterest(wanted)
    }

    private mutating func close(_ reason: CloseReason) -> Action {
        state = .closed
        output.discardAll()
        framer = LineFramer(maximumLineLength: framer.maximumLineLength)
        waitingSince = nil
        return .close(reason)
    }

    private static func deadline(_ since: Int64, _ timeout: Int64) -> Int64 {
        let (sum, overflow) = since.addingReportingOverflow(timeout)
        return overflow ? .max : sum
    }
}
