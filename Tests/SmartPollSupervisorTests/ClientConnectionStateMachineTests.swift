import Testing

@testable import SmartPollSupervisor

private typealias Machine = ClientConnectionStateMachine
private typealias Action = ClientConnectionStateMachine.Action

/// A machine with small limits, so that a few bytes cross them.
private func machine(
    maximumLineLength: Int = 64, pauseInputAbove: Int = 1 << 20, watcherCap: Int = 16 << 20
) -> Machine {
    Machine(maximumLineLength: maximumLineLength, pauseInputAbove: pauseInputAbove, maximumWatcherOutput: watcherCap)
}

private struct TextLine: ClientOutputQueue.Line {
    let text: String

    func encodeLine(into output: inout [UInt8]) {
        output.append(contentsOf: Array("\(text)\n".utf8))
    }
}

extension ClientConnectionStateMachine {
    fileprivate mutating func read(_ text: String) -> Action {
        Array(text.utf8).withUnsafeBytes { bytesRead($0) }
    }

    /// Takes every frame ``nextFrame()`` gives now, inside a batch left open.
    fileprivate mutating func takeFrames() -> [Frame] {
        beginBatch()
        var frames: [Frame] = []
        while let frame = nextFrame() { frames.append(frame) }
        return frames
    }

    fileprivate mutating func reply(_ slot: Int, _ text: String) -> Action {
        replyReady(slot: slot, TextLine(text: text))
    }

    /// What a driver does for `.dispatch`, answering each request at once with `reply-` and its
    /// text: the requests taken, and what ending the batch asks for.
    fileprivate mutating func answerFrames() -> ([String], Action) {
        beginBatch()
        var taken: [String] = []
        while let frame = nextFrame() {
            guard case .request(let line, let slot) = frame else { continue }
            let text = String(decoding: line, as: UTF8.self)
            taken.append(text)
            _ = reply(slot, "reply-\(text)")
        }
        return (taken, endBatch())
    }

    fileprivate var unsent: String {
        withUnsentOutput { String(decoding: $0, as: UTF8.self) }
    }

    /// What a driver does for `.flush` (or a writable socket): sends while the socket takes
    /// bytes (`socketTakes` at most), then reports the end. Returns what it sent and the
    /// actions given: the stall timer's, if any, then `flushEnded`'s.
    fileprivate mutating func flush(
        socketTakes: Int = .max, now: Int64 = 0, sendTimeout: Int64 = 1_000
    ) -> (String, [Action]) {
        var sent = ""
        var actions: [Action] = []
        if prepareOutput() {
            let count = min(unsentCount, socketTakes)
            // A socket that takes nothing fails the send with EAGAIN.
            _ = sendOutput { buffer in
                sent = String(decoding: buffer.prefix(count), as: UTF8.self)
                return count > 0 ? count : -1
            }
            if unsentCount > 0 { actions.append(sendWouldBlock(now: now, sendTimeout: sendTimeout)) }
        }
        actions.append(flushEnded())
        return (sent, actions)
    }
}

/// A reply in slices of `sliceSize` bytes of one letter each (A, B, ...), ending in a newline.
private struct LetterSlices: ClientOutputQueue.Slices {
    let sliceSize: Int
    let sliceCount: Int
    var written = 0

    var isFinished: Bool { written == sliceCount }

    mutating func encodeSlice(into output: inout [UInt8], budget: Int) {
        output.append(contentsOf: repeatElement(UInt8(ascii: "A") + UInt8(written % 26), count: sliceSize))
        written += 1
        if isFinished { output.append(10) }
    }

    var expected: String {
        (0..<sliceCount).map { String(repeating: Character(UnicodeScalar(65 + UInt8($0 % 26))), count: sliceSize) }
            .joined() + "\n"
    }
}

extension ClientConnectionStateMachine {
    /// What a driver does for `.flush` when the socket takes `perSend` bytes a send and `sends`
    /// sends: the bytes sent, and `flushEnded`'s action (after the stall timer's, if it blocked).
    fileprivate mutating func flushAll(perSend: Int = .max, sends: Int = .max) -> (String, [Action]) {
        var sent: [UInt8] = []
        var actions: [Action] = []
        var left = sends
        while prepareOutput() {
            guard left > 0 else {
                actions.append(sendWouldBlock(now: 0, sendTimeout: 1_000))
                break
            }
            left -= 1
            _ = sendOutput { buffer in
                let count = min(buffer.count, perSend)
                sent.append(contentsOf: buffer.prefix(count))
                return count
            }
        }
        actions.append(flushEnded())
        return (String(decoding: sent, as: UTF8.self), actions)
    }
}

private func request(_ text: String, _ slot: Int) -> Machine.Frame {
    .request(Array(text.utf8), slot: slot)
}

@Suite struct ClientConnectionStateMachineTests {
    @Test func aRequestAndItsReplyTakeOneReadOneSendAndNoInterestChange() {
        var m = machine()
        #expect(m.inputReady(hangUp: false) == .read)
        #expect(m.read(#"{"cmd":"ping"}"# + "\n") == .dispatch)
        #expect(m.takeFrames() == [request(#"{"cmd":"ping"}"#, 0)])
        #expect(m.reply(0, "pong") == .none, "held in the batch")
        #expect(m.endBatch() == .flush)
        let (sent, actions) = m.flush()
        #expect(sent == "pong\n")
        #expect(actions == [.none], "still readable, nothing to change")
        #expect(m.state == .serving(.reading) && m.interest == .readable && !m.owesReplies)
    }

    @Test func repliesLeaveInRequestOrderWhenAnsweredOutOfOrder() {
        var m = machine()
        #expect(m.read("a\nb\nc\nd\n") == .dispatch)
        #expect(m.takeFrames() == [request("a", 0), request("b", 1), request("c", 2), request("d", 3)])
        #expect(m.reply(2, "C") == .none)
        #expect(m.reply(0, "A") == .none)
        #expect(m.endBatch() == .flush)
        #expect(m.flush().0 == "A\n", "C waits for B")
        #expect(m.owesReplies)
        // Answered later (as run --wait is), outside any batch: sent at once, with what waited.
        #expect(m.reply(1, "B") == .flush)
        #expect(m.unsent == "B\nC\n")
        #expect(m.reply(3, "D") == .flush)
        #expect(m.flush().0 == "B\nC\nD\n")
        #expect(!m.owesReplies)
    }

    @Test func inputPausesAboveTheLineAndResumesWhenTheOutputDrains() {
        var m = machine(pauseInputAbove: 10)
        #expect(m.read("1\n2\n3\n4\n") == .dispatch)
        // Each reply is 8 bytes: the second takes the output over the line, so 3 and 4 wait.
        var (taken, action) = m.answerFrames()
        #expect(taken == ["1", "2"] && action == .flush)
        var (sent, actions) = m.flush(socketTakes: 0, now: 5)
        #expect(sent.isEmpty)
        #expect(actions == [.armStallTimer(deadline: 1_005), .setInterest(.writable)])
        #expect(m.state == .serving(.paused))
        #expect(m.inputReady(hangUp: false) == .none, "framed requests wait; nothing more is read")

        // The client reads 4 bytes: 12 still over the line.
        (sent, actions) = m.flush(socketTakes: 4)
        #expect(sent == "repl" && actions == [.none, .none])
        // It reads 4 more: 8, under the line, so the requests held go first.
        (sent, actions) = m.flush(socketTakes: 4)
        #expect(actions == [.none, .dispatch])
        (taken, action) = m.answerFrames()
        #expect(taken == ["3"] && action == .flush, "16 bytes queued again")
        (sent, actions) = m.flush()
        #expect(sent == "reply-2\nreply-3\n" && actions == [.dispatch])
        (taken, action) = m.answerFrames()
        #expect(taken == ["4"] && action == .flush)
        (sent, actions) = m.flush()
        #expect(sent == "reply-4\n")
        #expect(actions == [.setInterest(.readable)], "reading again")
        #expect(m.state == .serving(.reading))
    }

    @Test func aHalfClosedClientGetsTheRepliesItIsOwedThenTheConnectionCloses() {
        var m = machine()
        #expect(m.read("run --wait\nping\n") == .dispatch)
        #expect(m.takeFrames() == [request("run --wait", 0), request("ping", 1)])
        #expect(m.reply(1, "pong") == .none)
        #expect(m.endBatch() == .flush)
        #expect(m.flush() == ("", [.none]), "pong waits for the run")
        // The peer shuts down its writing side (nc -N): not read any more, and nothing to send.
        #expect(m.inputReady(hangUp: false) == .read)
        #expect(m.endOfInput() == .setInterest([]))
        #expect(m.state == .serving(.closed))
        #expect(m.inputReady(hangUp: false) == .none)
        // The run ends: both replies leave, in order, over two sends; then the connection closes.
        #expect(m.reply(0, "ran") == .flush)
        var (sent, actions) = m.flush(socketTakes: 4, now: 7)
        #expect(sent == "ran\n" && actions == [.armStallTimer(deadline: 1_007), .setInterest(.writable)])
        (sent, actions) = m.flush()
        #expect(sent == "pong\n" && actions == [.close(.finished)])
        #expect(m.isClosed)
        #expect(m.reply(1, "late") == .none && m.inputReady(hangUp: true) == .none && m.flushEnded() == .none)
    }

    @Test func endOfInputWithNothingOwedClosesAtOnceAndAHangUpWhileOwingToo() {
        var quiet = machine()
        #expect(quiet.read("partial line without its newline") == .none)
        #expect(quiet.endOfInput() == .close(.finished))

        var owed = machine()
        #expect(owed.read("run --wait\n") == .dispatch)
        _ = owed.takeFrames()
        #expect(owed.endBatch() == .none)
        #expect(owed.endOfInput() == .setInterest([]))
        #expect(owed.inputReady(hangUp: true) == .close(.peerGone), "the peer is gone: nobody to answer")
    }

    @Test func aWatcherThatHalfClosesKeepsItsStreamUntilItHangsUp() {
        var m = machine()
        #expect(m.read("watch\nping\n") == .dispatch)
        #expect(m.takeFrames() == [request("watch", 0), request("ping", 1)])
        #expect(m.reply(0, "ok") == .none)
        #expect(m.watchStarted() == .none, "settled when the batch ends")
        #expect(m.nextFrame() == nil)
        #expect(m.reply(1, "pong") == .none, "a request taken before watch is still answered")
        #expect(m.endBatch() == .flush)
        #expect(m.flush() == ("ok\npong\n", [.none]))
        #expect(m.state == .watching(.reading))
        // What a watcher sends is read and dropped.
        #expect(m.inputReady(hangUp: false) == .read)
        #expect(m.read("ping\n") == .none)
        #expect(m.endOfInput() == .setInterest([]))
        #expect(m.state == .watching(.closed))
        // Events still flow: those of one wake-up leave together.
        #expect(m.eventReady(Array("e1\n".utf8)) == .flushWhenIdle)
        #expect(m.eventReady(Array("e2\n".utf8)) == .none)
        #expect(m.unsent == "e1\ne2\n" && m.interest == [])
        #expect(m.eventBatchEnded() == .flush)
        #expect(m.flush() == ("e1\ne2\n", [.none]))
        #expect(m.eventReady(Array("e3\n".utf8)) == .flushWhenIdle, "a new wake-up, a new batch")
        #expect(m.eventBatchEnded() == .flush)
        #expect(m.flush(socketTakes: 0).1 == [.armStallTimer(deadline: 1_000), .setInterest(.writable)])
        // It hangs up.
        #expect(m.inputReady(hangUp: true) == .close(.peerGone))
    }

    @Test func eventsWaitForTheRepliesOwedBeforeWatch() {
        var m = machine()
        #expect(m.read("run --wait\nwatch\n") == .dispatch)
        #expect(m.takeFrames() == [request("run --wait", 0), request("watch", 1)])
        #expect(m.reply(1, "ok") == .none)
        #expect(m.watchStarted() == .none)
        #expect(m.endBatch() == .flush)
        #expect(m.eventReady(Array("event\n".utf8)) == .flushWhenIdle)
        #expect(m.eventBatchEnded() == .flush)
        #expect(m.flush().0 == "", "the event waits behind the replies")
        #expect(m.reply(0, "ran") == .flush)
        #expect(m.flush().0 == "ran\nok\nevent\n")
    }

    @Test func aWatcherHoldingMoreThanItsCapIsClosedAndAServedClientIsNot() {
        var watcher = machine(watcherCap: 20)
        #expect(watcher.read("watch\n") == .dispatch)
        _ = watcher.takeFrames()
        #expect(watcher.reply(0, "ok") == .none)
        #expect(watcher.watchStarted() == .none)
        #expect(watcher.endBatch() == .flush)
        #expect(watcher.flush().0 == "ok\n")
        for index in 0..<4 { _ = watcher.eventReady(Array("event-\(index)\n".utf8)) }
        #expect(watcher.eventBatchEnded() == .flush)
        // 16 bytes held: under the cap.
        #expect(
            watcher.flush(socketTakes: 16).1
                == [.armStallTimer(deadline: 1_000), .setInterest([.readable, .writable])])
        #expect(watcher.unsentCount == 16)
        _ = watcher.eventReady(Array("event-4\n".utf8))
        #expect(watcher.eventBatchEnded() == .flush)
        #expect(watcher.flush(socketTakes: 0).1 == [.none, .close(.watcherTooFarBehind(heldBytes: 24))])
        #expect(watcher.isClosed && watcher.unsentCount == 0)

        // A client owed replies is paced by pausing instead: never closed for holding much.
        var served = machine(pauseInputAbove: 20, watcherCap: 20)
        #expect(served.read("r\n") == .dispatch)
        _ = served.takeFrames()
        #expect(served.reply(0, String(repeating: "x", count: 99)) == .none)
        #expect(served.endBatch() == .flush)
        #expect(served.flush(socketTakes: 0).1 == [.armStallTimer(deadline: 1_000), .setInterest(.writable)])
        #expect(!served.isClosed)
    }

    @Test func theSendTimeoutRunsFromWhenOutputLastMovedAndIsArmedOnceAtATime() {
        var m = machine()
        #expect(m.read("a\nb\n") == .dispatch)
        _ = m.takeFrames()
        _ = m.reply(0, "aaaa")
        _ = m.reply(1, "bbbb")
        #expect(m.endBatch() == .flush)
        // Nothing taken at 1,000: the timer is armed for 1,000 + 100.
        #expect(
            m.flush(socketTakes: 0, now: 1_000, sendTimeout: 100).1
                == [.armStallTimer(deadline: 1_100), .setInterest([.readable, .writable])])
        #expect(m.flush(socketTakes: 0, now: 1_050, sendTimeout: 100).1 == [.none, .none], "one timer at a time")
        // The client takes 3 bytes at 1,080: the clock starts again there.
        #expect(m.flush(socketTakes: 3, now: 1_080, sendTimeout: 100).1 == [.none, .none])
        #expect(m.stallTimerFired(now: 1_100, sendTimeout: 100) == .armStallTimer(deadline: 1_180))
        // A reload shortened the timeout: the next check uses the new one.
        #expect(m.stallTimerFired(now: 1_140, sendTimeout: 50) == .close(.stalled(unsentBytes: 7, waited: 60)))
        #expect(m.isClosed)
    }

    @Test func theStallTimerIsNotReArmedOnceTheOutputDrainedAndIsArmedAgainAtTheNextWait() {
        var m = machine()
        #expect(m.read("a\n") == .dispatch)
        _ = m.takeFrames()
        _ = m.reply(0, "aaaa")
        #expect(m.endBatch() == .flush)
        #expect(
            m.flush(socketTakes: 0, now: 10, sendTimeout: 100).1
                == [.armStallTimer(deadline: 110), .setInterest([.readable, .writable])])
        #expect(m.flush(now: 50).1 == [.setInterest(.readable)])
        #expect(m.stallTimerFired(now: 110, sendTimeout: 100) == .none, "nothing waits")
        // Output that waits much later is measured from then, with a new timer.
        #expect(m.read("b\n") == .dispatch)
        _ = m.takeFrames()
        _ = m.reply(1, "bbbb")
        #expect(m.endBatch() == .flush)
        #expect(
            m.flush(socketTakes: 0, now: 5_000, sendTimeout: 100).1
                == [.armStallTimer(deadline: 5_100), .setInterest([.readable, .writable])])
        #expect(m.stallTimerFired(now: 5_099, sendTimeout: 100) == .armStallTimer(deadline: 5_100))
        #expect(m.stallTimerFired(now: 5_100, sendTimeout: 100) == .close(.stalled(unsentBytes: 5, waited: 100)))
    }

    @Test func aTooLargeLineGetsItsReplyAfterThoseOwedThenTheConnectionCloses() {
        var m = machine(maximumLineLength: 8)
        #expect(m.read("run --w\n" + String(repeating: "x", count: 20) + "\nping\n") == .dispatch)
        #expect(m.takeFrames() == [request("run --w", 0), .tooLarge(length: 20, slot: 1)])
        #expect(m.state == .closing)
        #expect(m.nextFrame() == nil, "nothing after the line is answered")
        #expect(m.reply(1, "too_large") == .none)
        #expect(m.endBatch() == .flush)
        #expect(m.flush() == ("", [.setInterest([])]), "the reply waits for the run's; nothing is read")
        #expect(m.inputReady(hangUp: false) == .none)
        #expect(m.reply(0, "ran") == .flush)
        var (sent, actions) = m.flush(socketTakes: 6)
        #expect(sent == "ran\nto" && actions == [.armStallTimer(deadline: 1_000), .setInterest(.writable)])
        (sent, actions) = m.flush()
        #expect(sent == "o_large\n" && actions == [.close(.lineTooLarge)])
    }

    @Test func aTooLargeLineAloneClosesAsSoonAsItsReplyIsSent() {
        var m = machine(maximumLineLength: 8)
        #expect(m.read(String(repeating: "x", count: 20)) == .dispatch, "reported as soon as the limit is crossed")
        #expect(m.takeFrames() == [.tooLarge(length: 20, slot: 0)])
        #expect(m.reply(0, "too_large") == .none)
        #expect(m.endBatch() == .flush)
        #expect(m.flush() == ("too_large\n", [.close(.lineTooLarge)]))
    }

    @Test func failuresAndTheServerClosingEndTheConnectionOnce() {
        var read = machine()
        #expect(read.readFailed() == .close(.peerGone))
        #expect(read.readFailed() == .none && read.closeRequested() == .none)

        var send = machine()
        #expect(send.read("a\n") == .dispatch)
        _ = send.takeFrames()
        _ = send.reply(0, "a")
        #expect(send.endBatch() == .flush)
        #expect(send.sendFailed() == .close(.peerGone))
        #expect(send.unsentCount == 0 && send.flushEnded() == .none)

        var shutdown = machine()
        #expect(shutdown.closeRequested() == .close(.serverClosing))
        #expect(shutdown.eventReady(Array("e\n".utf8)) == .none && shutdown.watchStarted() == .none)
    }

    @Test func aReplyAnsweredDuringTheBatchOfAnotherRequestWaitsForTheBatchEnd() {
        // The replies to a burst of pipelined requests leave in one send.
        var m = machine()
        let count = Machine.requestsPerTurn
        #expect(m.read(String(repeating: "p\n", count: count)) == .dispatch)
        let frames = m.takeFrames()
        #expect(frames.count == count)
        for slot in 0..<count { #expect(m.reply(slot, "r") == .none) }
        #expect(m.endBatch() == .flush)
        #expect(m.flush() == (String(repeating: "r\n", count: count), [.none]))
    }

    @Test func aTurnTakesAtMostItsShareOfPipelinedRequestsAndTheRestWaitForTheNextTurn() {
        var m = machine()
        let lines = (0..<150).map { "p\($0)\n" }.joined()
        #expect(m.inputReady(hangUp: false) == .read)
        #expect(m.read(lines) == .dispatch)
        var (taken, action) = m.answerFrames()
        #expect(taken.count == Machine.requestsPerTurn && action == .flush)
        var (sent, actions) = m.flush()
        #expect(sent.hasPrefix("reply-p0\n") && sent.hasSuffix("reply-p63\n"), "one send for the batch")
        #expect(actions == [.continueNextTurn])
        #expect(m.nextTurnRequested() == .setInterest([]), "nothing more is read while frames wait")
        #expect(m.inputReady(hangUp: false) == .none, "frames wait: nothing is read")

        #expect(m.nextTurnStarted() == .dispatch)
        (taken, action) = m.answerFrames()
        #expect(taken.first == "p64" && taken.count == Machine.requestsPerTurn && action == .flush)
        (sent, actions) = m.flush()
        #expect(actions == [.continueNextTurn])
        #expect(m.nextTurnRequested() == .none)
        #expect(m.nextTurnStarted() == .dispatch)
        (taken, action) = m.answerFrames()
        #expect(taken.count == 150 - 2 * Machine.requestsPerTurn && taken.last == "p149" && action == .flush)
        (sent, actions) = m.flush()
        #expect(actions == [.setInterest(.readable)], "every request answered: reading again")
        #expect(m.state == .serving(.reading))
    }

    @Test func aNextTurnIsAskedForOnceAndIsHarmlessAfterTheConnectionClosed() {
        var m = machine()
        #expect(m.read(String(repeating: "x\n", count: Machine.requestsPerTurn + 1)) == .dispatch)
        _ = m.answerFrames()
        #expect(m.flush().1 == [.continueNextTurn])
        #expect(m.nextTurnRequested() == .setInterest([]))
        // A flush in the same turn (the socket writable) does not ask again.
        #expect(m.flush().1 == [.none])
        #expect(m.readFailed() == .close(.peerGone))
        #expect(m.nextTurnStarted() == .none)
        #expect(m.nextTurnRequested() == .none)
    }

    @Test func aSlicedReplyIsWrittenAsTheSocketDrainsAndRequestsBehindItWait() {
        var m = machine()
        let slices = LetterSlices(sliceSize: 30_000, sliceCount: 10)
        #expect(m.read("results\nping\n") == .dispatch)
        m.beginBatch()
        guard case .request(_, let slot) = m.nextFrame() else { Issue.record("no frame"); return }
        #expect(m.replyReady(slot: slot, slices: slices) == .none, "held in the batch")
        #expect(m.nextFrame() == nil, "ping waits for the sliced reply")
        #expect(m.endBatch() == .flush)
        #expect(m.unsentCount == 0 && m.isProducing, "nothing encoded before the socket can take it")

        // The client reads nothing: slices stop at the low-water mark.
        var (sent, actions) = m.flushAll(sends: 0)
        #expect(sent.isEmpty)
        #expect(m.unsentCount == 90_000, "three slices: over 64 KiB, no more")
        #expect(actions == [.armStallTimer(deadline: 1_000), .setInterest(.writable)])
        // A fast reader: what was queued, then at most four slices a flush, and the rest on the
        // next writable report.
        (sent, actions) = m.flushAll()
        #expect(sent.count == 90_000 + Machine.slicesPerFlush * 30_000 && m.isProducing)
        #expect(actions == [.none], "still writable, frames waiting: nothing changes")
        var all = sent
        while m.isProducing {
            (sent, actions) = m.flushAll(perSend: 50_000)
            all += sent
        }
        #expect(all == slices.expected)
        #expect(actions == [.dispatch], "the ping behind it is taken once the reply is whole")
        var taken: [String]
        var action: Action
        (taken, action) = m.answerFrames()
        #expect(taken == ["ping"] && action == .flush)
        (sent, actions) = m.flushAll()
        #expect(sent == "reply-ping\n" && actions == [.setInterest(.readable)])
    }

    @Test func repliesAndSlicesAnsweredOutOfOrderLeaveInRequestOrder() {
        var m = machine()
        #expect(m.read("a\nb\nc\n") == .dispatch)
        _ = m.takeFrames()
        let slices = LetterSlices(sliceSize: 10, sliceCount: 3)
        #expect(m.reply(2, "C") == .none)
        #expect(m.replyReady(slot: 1, slices: slices) == .none)
        #expect(m.endBatch() == .flush)
        #expect(m.flushAll().0.isEmpty, "nothing is due before A")
        #expect(m.reply(0, "A") == .flush)
        let (sent, _) = m.flushAll()
        #expect(sent == "A\n" + slices.expected + "C\n")
        #expect(!m.owesReplies && !m.isProducing)
    }

    @Test func aClosedConnectionDropsItsSlicedReply() {
        var m = machine()
        #expect(m.read("results\n") == .dispatch)
        _ = m.takeFrames()
        #expect(m.replyReady(slot: 0, slices: LetterSlices(sliceSize: 100_000, sliceCount: 50)) == .none)
        #expect(m.endBatch() == .flush)
        #expect(m.flushAll(sends: 1).0.count == 100_000)
        #expect(m.sendFailed() == .close(.peerGone))
        #expect(!m.isProducing && m.unsentCount == 0)
        let more = m.prepareOutput()
        #expect(!more)
    }
}
