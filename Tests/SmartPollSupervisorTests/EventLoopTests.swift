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
            loop.schedule(at: base) { fired.append("from a callback, already due"); loop.stop() }
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

    @Test func stopEndsRunAndRunCanBeCalledAgain() throws {
        let loop = try EventLoop()
        var runs = 0
        for _ in 0..<2 {
            loop.schedule(after: .zero) { runs += 1; loop.stop() }
            try loop.run()
        }
        #expect(runs == 2)
    }

    @Test func registeringABadDescriptorIsAnError() throws {
        let loop = try EventLoop()
        #expect(throws: SupervisorError.self) { try loop.register(-1, for: .readable) { _ in } }
    }
}
