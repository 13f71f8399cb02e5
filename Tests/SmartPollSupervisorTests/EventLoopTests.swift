import Glibc
import Testing

@testable import SmartPollSupervisor

@Suite struct EventLoopTests {
    @Test func timersFireInDeadlineOrderAndCancelledOnesNever() throws {
        let loop = try EventLoop()
        var fired: [String] = []
        let base = loop.now
        loop.schedule(at: base + 3_000_000) { fired.append("c") }
        loop.schedule(at: base + 1_000_000) { fired.append("a") }
        let cancelled = loop.schedule(at: base + 2_000_000) { fired.append("cancelled") }
        loop.schedule(at: base + 1_000_000) { fired.append("a2") }
        loop.schedule(at: base + 4_000_000) {
            fired.append("d")
            loop.schedule(at: base) {
                fired.append("from a callback, already due"); loop.stop()
            }
        }
        loop.cancel(cancelled)
        try loop.run()
        #expect(fired == ["a", "a2", "c", "d", "from a callback, already due"])
        #expect(loop.now - base >= 4_000_000, "nothing fired early")
    }

    @Test func readinessOfAPipeAndItsHangup() throws {
        let loop = try EventLoop()
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        _ = fcntl(fds[0], F_SETFL, O_NONBLOCK)
        defer { close(fds[0]) }
        var seen: [String] = []
        try loop.register(fds[0], for: .readable) { events in
            var buffer = [UInt8](repeating: 0, count: 16)
            let count = read(fds[0], &buffer, buffer.count)
            if count > 0 {
                seen.append(String(decoding: buffer[..<count], as: UTF8.self))
            } else if count == 0 {
                #expect(events.contains(.hangup) || events.contains(.readable))
                seen.append("EOF")
                loop.deregister(fds[0])
                loop.stop()
            }
        }
        loop.schedule(after: .milliseconds(1)) {
            _ = "hello".withCString { write(fds[1], $0, 5) }
            loop.schedule(after: .milliseconds(1)) { close(fds[1]) }
        }
        try loop.run()
        #expect(seen == ["hello", "EOF"])
    }

    @Test func workCarriedOverToTheNextTurnLetsATimerAndAPipeIn() throws {
        let loop = try EventLoop()
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        defer {
            close(fds[0])
            close(fds[1])
        }
        var slices = 0
        var order: [String] = []
        // A source that always has more: it never lets the loop block, and never starves it.
        func slice() {
            slices += 1
            loop.callNextTurn(slice)
        }
        loop.callNextTurn(slice)
        try loop.register(fds[0], for: .readable) { _ in
            var byte: UInt8 = 0
            _ = read(fds[0], &byte, 1)
            order.append("pipe after \(slices)")
        }
        loop.schedule(after: .milliseconds(5)) {
            order.append("timer")
            _ = write(fds[1], "x", 1)
            loop.schedule(after: .milliseconds(5)) { loop.stop() }
        }
        try loop.run()
        #expect(order.first == "timer")
        #expect(order.count == 2)
        // The pipe was handled within a turn or two of the write, not after the slices ended.
        #expect(slices > 2)
    }

    @Test func stopEndsRunAndRunCanBeCalledAgain() throws {
        let loop = try EventLoop()
        var runs = 0
        for _ in 0..<2 {
            loop.schedule(after: .zero) {
                runs += 1; loop.stop()
            }
            try loop.run()
        }
        #expect(runs == 2)
    }

    @Test func registeringABadDescriptorIsAnError() throws {
        let loop = try EventLoop()
        #expect(throws: SupervisorError.self) { try loop.register(-1, for: .readable) { _ in } }
    }

    /// Two pipes ready in one wake-up; the handler of the first event closes the other one's
    /// read end and puts a new pipe at the same number (dup2 does both at once, so no other
    /// test's thread can take the number in between) and registers it. The event of this
    /// wake-up that belonged to the closed pipe must not reach the new owner of the number.
    @Test func eventOfADescriptorReusedWithinOneWakeUpIsDropped() throws {
        let loop = try EventLoop()
        var first: [Int32] = [-1, -1]
        var second: [Int32] = [-1, -1]
        var replacement: [Int32] = [-1, -1]
        try #require(pipe(&first) == 0 && pipe(&second) == 0 && pipe(&replacement) == 0)
        // One of first[0] and second[0] ends up as the replacement's read end.
        defer { for fd in first + second + replacement where fd >= 0 { close(fd) } }
        // The handlers hold the loop: dropping them (before the descriptors close) frees it.
        defer { for fd in [first[0], second[0]] { loop.deregister(fd) } }
        for fd in [first[1], second[1]] { #expect(write(fd, "x", 1) == 1) }

        var calls: [String] = []
        var reused: Int32?
        var newOwnerCalls = 0
        func consumeByte(_ descriptor: Int32) {
            var byte: UInt8 = 0
            #expect(read(descriptor, &byte, 1) == 1)
        }
        func handler(_ name: String, own: Int32, other: Int32) -> (EventLoop.Events) -> Void {
            { _ in
                calls.append(name)
                consumeByte(own)
                guard reused == nil else { return }
                reused = other
                // The other pipe's event is already in this wake-up's batch.
                loop.forget(other)
                #expect(dup2(replacement[0], other) == other)
                close(replacement[0])
                replacement[0] = -1
                #expect(throws: Never.self) {
                    try loop.register(other, for: .readable) { _ in
                        newOwnerCalls += 1
                        consumeByte(other)
                    }
                }
                #expect(write(replacement[1], "y", 1) == 1)
                loop.deferUntilIdle { loop.stop() }
            }
        }
        try loop.register(first[0], for: .readable, handler("first", own: first[0], other: second[0]))
        try loop.register(second[0], for: .readable, handler("second", own: second[0], other: first[0]))
        try loop.run()
        #expect(calls.count == 1, "the closed pipe's handler was forgotten: \(calls)")
        #expect(newOwnerCalls == 0, "the closed pipe's event reached the descriptor's new owner")

        // The new registration itself works: its own readiness comes in the next wake-up.
        loop.schedule(after: .milliseconds(1)) { loop.stop() }
        try loop.run()
        #expect(newOwnerCalls == 1)
        #expect(calls.count == 1)
    }

    @Test func callsWithAStaleRegistrationLeaveTheNumbersNewOwnerAlone() throws {
        let loop = try EventLoop()
        var fds: [Int32] = [-1, -1]
        try #require(pipe(&fds) == 0)
        defer { for fd in fds { close(fd) } }
        let old = try loop.register(fds[0], for: .readable) { _ in Issue.record("a stale handler ran") }
        loop.deregister(old)
        #expect(!loop.isCurrent(old))
        var calls = 0
        let new = try loop.register(fds[0], for: .readable) { _ in
            calls += 1
            loop.stop()
        }
        #expect(new != old && new.descriptor == old.descriptor && loop.isCurrent(new))
        loop.watch(old, for: [])
        loop.forget(old)
        loop.deregister(old)
        #expect(loop.isCurrent(new))
        #expect(write(fds[1], "x", 1) == 1)
        // A bound, should the stale calls have silenced the new registration after all.
        let timeout = loop.schedule(after: .seconds(10)) { loop.stop() }
        try loop.run()
        loop.cancel(timeout)
        // The handler holds the loop: dropping it frees the loop.
        loop.deregister(new)
        #expect(calls == 1)
    }
}
