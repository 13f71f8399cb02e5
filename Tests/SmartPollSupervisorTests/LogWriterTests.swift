import Glibc
import Testing

@testable import SmartPollSupervisor

@Suite struct LogWriterTests {
    /// A pipe whose read end the test holds; its write end is the writer's.
    private func makePipe() throws -> (read: Int32, write: Int32) {
        var ends: [Int32] = [0, 0]
        guard pipe(&ends) == 0 else { throw HarnessFailure("pipe: \(errno)") }
        return (ends[0], ends[1])
    }

    private func readAll(_ descriptor: Int32, until done: (String) -> Bool) -> String {
        var text: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        while !done(String(decoding: text, as: UTF8.self)) {
            guard poll(&poller, 1, 10_000) > 0 else { break }
            let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            guard count > 0 else { break }
            text.append(contentsOf: chunk[..<count])
        }
        return String(decoding: text, as: UTF8.self)
    }

    @Test func linesLeaveInOrder() throws {
        let ends = try makePipe()
        defer { close(ends.read) }
        let writer = LogWriter(descriptor: ends.write)
        for number in 0..<1_000 { #expect(writer.append(Array("line \(number)\n".utf8))) }
        #expect(writer.flush(within: .seconds(10)))
        writer.stop()
        close(ends.write)
        let lines = readAll(ends.read) { $0.hasSuffix("line 999\n") }.split(separator: "\n")
        #expect(lines == (0..<1_000).map { "line \($0)"[...] })
    }

    @Test func aDestinationThatDoesNotReadCostsDroppedLinesNotAWaitAndTheyAreReported() throws {
        let ends = try makePipe()
        defer { close(ends.read) }
        // The pipe is full and nobody reads it.
        _ = fcntl(ends.write, F_SETFL, O_NONBLOCK)
        let filler = Array("filler\n".utf8)
        while write(ends.write, filler, filler.count) > 0 {}
        _ = fcntl(ends.write, F_SETFL, 0)
        let writer = LogWriter(descriptor: ends.write, capacity: 16_384)
        let line = Array(String(repeating: "x", count: 99).utf8) + [10]
        var queued = 0
        for _ in 0..<5_000 where writer.append(line) { queued += 1 }
        #expect(queued == 16_384 / 100, "what the buffer holds; the rest is dropped")
        #expect(writer.unreportedDrops == 5_000 - queued)
        #expect(writer.bufferedByteCount == queued * 100)
        #expect(!writer.flush(within: .milliseconds(50)), "the destination does not read")
        let text = readAll(ends.read) { $0.contains("log lines dropped") }
        #expect(text.contains("\(5_000 - queued) log lines dropped (the log's destination was not reading)\n"))
        #expect(text.split(separator: "\n").filter { $0.hasPrefix("xxx") }.count == queued)
        #expect(writer.unreportedDrops == 0)
        writer.stop()
        close(ends.write)
    }

    @Test func aBrokenDestinationDoesNotStopTheWriter() throws {
        let ends = try makePipe()
        close(ends.read)
        let writer = LogWriter(descriptor: ends.write)
        // EPIPE (SIGPIPE is blocked in the writer's thread): the line is given up.
        #expect(writer.append(Array("lost\n".utf8)))
        #expect(writer.flush(within: .seconds(10)))
        writer.stop()
        close(ends.write)
    }
}
