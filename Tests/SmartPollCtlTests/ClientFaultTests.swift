import Foundation
import Glibc
import SmartPollProtocol
import Testing

/// What a client can do to the supervisor (SPEC section 8): too many connections, leaving in the
/// middle of a stream or a wait, never reading its replies, asking for more than fits in a
/// buffer. Each time the supervisor stays up, bounded, and fair to everyone else. (Malformed and
/// oversized lines, half-written lines and half-closed clients are in RobustnessTests.)
@Suite(.endToEnd)
struct ClientFaultTests {
    @Test func theTwoHundredFiftySeventhClientGetsBusyAndTheOthersAreServed() throws {
        let supervisor = try SupervisorHarness(#"{"tasks": {"idle": {"command": ["true"]}}}"#)
        var clients: [RawSocket] = []
        for index in 0..<256 {
            let client = try RawSocket(supervisor.socket)
            try expectPing(client, id: Int64(index))  // answered: accepted and counted
            clients.append(client)
        }
        let extra = try RawSocket(supervisor.socket)
        _ = extra.send(#"{"id":"extra","cmd":"ping"}"# + "\n")
        expectError(try extra.reply(), code: "busy", id: .null)
        #expect(try extra.readLine() == nil, "the refused connection is closed")
        // Everyone admitted is still served, the first and the last.
        try expectPing(clients[0], id: 1000)
        try expectPing(clients[255], id: 1001)
        // One leaves: its place is free (once the supervisor has seen it go, which a reply on
        // another connection after the close guarantees).
        clients[100].close()
        try expectPing(clients[101], id: 1002)
        try expectPing(try RawSocket(supervisor.socket), id: 1003)
        withExtendedLifetime(clients) {}
    }

    @Test func aClientLeavingInTheMiddleOfWatchOrRunWaitDisturbsNobody() throws {
        let supervisor = try SupervisorHarness(
            """
            {"tasks": {
              "ticker": {"command": ["echo", "tick"], "start": "0s", "every": "20ms"},
              "slow": {"command": ["sh", "-c", "sleep 0.3; echo slow-done"]}
            }}
            """)
        let bystander = try supervisor.watch(["slow"])
        // Watchers that leave while events stream to them: politely and with a reset.
        for index in 0..<20 {
            let watcher = try RawSocket(supervisor.socket)
            #expect(watcher.send(#"{"id":\#(index),"cmd":"watch"}"# + "\n"))
            #expect(try watcher.reply()["ok"] == .bool(true))
            _ = try watcher.readLine()  // an event is flowing
            if index % 2 == 0 { watcher.close() } else { watcher.reset() }
        }
        // Waiters that leave before their run ends.
        for index in 0..<5 {
            let waiter = try RawSocket(supervisor.socket)
            #expect(waiter.send(#"{"id":\#(index),"cmd":"run","task":"slow","wait":true}"# + "\n"))
            if index % 2 == 0 { waiter.close() } else { waiter.reset() }
            try bystander.finishes(of: "slow")
        }
        // The runs they asked for all happened and succeeded; the ticker never stopped.
        let status = try json(try supervisor.ctl("--json", "status").output)
        #expect(status["loop"]?.objectValue?["state"] == .string("running"))
        let rows = try #require(status["tasks"]?.arrayValue).compactMap(\.objectValue)
        let slow = try #require(rows.first { $0["name"] == .string("slow") })
        #expect(slow["runs"] == .int(5) && slow["failures"] == .int(0), "\(slow)")
        let ticker = try #require(rows.first { $0["name"] == .string("ticker") })
        #expect((ticker["runs"]?.int64Value ?? 0) > 10 && ticker["failures"] == .int(0), "\(ticker)")
        #expect(try supervisor.ctl("result", "slow").output == "slow-done\n")
        // A waiter that stays gets its answer as usual.
        let waited = try supervisor.ctl("run", "slow", "--wait")
        #expect(waited.status == 0, "\(waited)")
    }

    @Test func aClientThatNeverReadsIsBoundedThenDisconnectedAndNobodyElseWaits() throws {
        // A 256 KiB result: every reply is about 350 KB (base64), so a few hundred requests
        // already owe far more than any buffer should hold.
        let supervisor = try SupervisorHarness(
            """
            {"send_timeout": "1s",
             "tasks": {"big": {"command": ["head", "-c", "262144", "/dev/urandom"]}}}
            """)
        #expect(try supervisor.ctl("run", "big", "--wait").status == 0)
        let baseline = try residentMemory(of: supervisor.pid).current

        let flooder = try RawSocket(supervisor.socket)
        let request = Array(#"{"id":1,"cmd":"result","task":"big"}"#.utf8) + [10]
        // 760 KB of requests, 7 GB of replies: more than the kernel's socket buffers take.
        let burst = Array([[UInt8]](repeating: request, count: 20_000).joined())
        var offset = 0
        var stalled = Date()
        var closedEarly = false
        // Send while the supervisor reads; it stops reading once about 1 MiB of replies waits.
        while offset < burst.count && Date().timeIntervalSince(stalled) < 0.5 {
            let sent = flooder.sendSome(burst[offset...])
            if sent < 0 { closedEarly = true; break }
            if sent > 0 { offset += sent; stalled = Date() } else { usleep(5_000) }
        }
        #expect(!closedEarly, "disconnected before the send timeout")
        #expect(offset < burst.count, "the supervisor read every request of a client that reads nothing")

        // Meanwhile everybody else is served at once, and the supervisor stays small.
        let clock = ContinuousClock()
        let began = clock.now
        try expectPing(try RawSocket(supervisor.socket), id: 7)
        #expect(
            clock.now - began < .milliseconds(500) * Sanitizer.slowdown,
            "a ping waited \(clock.now - began) behind the flooder")
        let memory = try residentMemory(of: supervisor.pid)
        #expect(
            memory.peak - baseline < Sanitizer.memory(32 << 20), "VmHWM grew by \((memory.peak - baseline) >> 20) MiB")

        // After the send timeout the flooder is disconnected: what the kernel held for it ends
        // in end of file, every complete line a well-formed reply in order.
        var replies = 0
        let deadline = Date().addingTimeInterval(15)
        while Date() < deadline {
            guard let line = try flooder.readLine(timeout: 15) else { break }
            let reply = try json(line)
            #expect(reply["id"] == .int(1) && reply["ok"] == .bool(true))
            replies += 1
            if replies == 1 { usleep(1_500_000) }  // past the timeout: the supervisor gives up
        }
        #expect(replies > 0 && replies < 20_000, "\(replies) replies before the end")
        #expect(supervisor.logText.contains("disconnecting it"), "the log says why")
        try expectPing(try RawSocket(supervisor.socket), id: 8)
        #expect(try residentMemory(of: supervisor.pid).peak - baseline < Sanitizer.memory(32 << 20))
    }

    @Test func aClientThatReadsGetsEveryReplyOfALongPipelineAndAReplyLargerThanAnyBuffer() throws {
        // 17 tasks with a 1 MiB text result each: `results` is one 17 MiB line.
        var tasks = [#""quarter": {"command": ["sh", "-c", "head -c 262144 /dev/zero | tr '\\0' q"]}"#]
        for index in 0..<17 {
            tasks.append(#""t\#(index)": {"command": ["sh", "-c", "head -c 1048576 /dev/zero | tr '\\0' a"]}"#)
        }
        // The send timeout is short, and scaled under a sanitizer, where the reader's own work
        // between reads is several times slower (1 s failed 1 run in 2 under AddressSanitizer).
        let sendTimeout = "\(Sanitizer.slowdown)s"
        let supervisor = try SupervisorHarness(
            #"{"send_timeout": "\#(sendTimeout)", "tasks": {\#(tasks.joined(separator: ","))}}"#)
        for index in 0..<17 { #expect(try supervisor.ctl("run", "t\(index)", "--wait").status == 0) }
        let results = try supervisor.ctl("--json", "results")
        #expect(results.status == 0, "\(results.error)")
        #expect(results.output.utf8.count > 17 << 20)
        #expect(results.output.contains(#""ok":true"#) && results.output.hasSuffix("}}\n"))
        #expect(results.output.components(separatedBy: #""truncated":false"#).count == 17 + 1)

        // 100 `result` requests of a 256 KiB result in one write, read slowly but steadily: all
        // answered, in order, although they owe 25 MiB.
        #expect(try supervisor.ctl("run", "quarter", "--wait").status == 0)
        let connection = try RawSocket(supervisor.socket)
        let requests =
            (1...100).map { #"{"id":\#($0),"cmd":"result","task":"quarter"}"# }.joined(separator: "\n") + "\n"
        #expect(connection.send(requests))
        for id in 1...100 {
            let reply = try connection.reply()
            #expect(reply["id"] == .int(Int64(id)) && reply["output"]?.stringValue?.utf8.count == 1 << 18)
            if id % 25 == 0 { usleep(300_000) }  // slow, but within the send timeout
        }
    }
}
