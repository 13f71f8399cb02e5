import SmartPollProtocol

/// The protocol module's share of a round trip, in-process: decode a request line, build and
/// encode its reply, for `ping` and for `status` with 100 tasks; plus framing of pipelined lines.
/// (The socket round trip against a C echo server is the supervisor's benchmark.)
func benchProtocol() async throws {
    let iterations = options.quick ? 20_000 : 100_000
    let ping = Array(#"{"id":1,"cmd":"ping"}"#.utf8)
    let status = Array(#"{"id":2,"cmd":"status"}"#.utf8)
    let now = Timestamp.now()
    let last = LastRun(
        run: 41, started: now, ended: now.advanced(by: .milliseconds(120)), durationMilliseconds: 120.5,
        exitCode: 0, signal: nil, timedOut: false, succeeded: true, error: nil, stderrTail: "fetched 3 records\n")
    let tasks = (0..<100).map { index in
        TaskStatus(
            name: "weather\(index)", scheduled: true, ready: false, next: now.advanced(by: .seconds(10)),
            running: false, pid: nil, run: nil, runs: 41, failures: 2, last: last)
    }
    let loop = LoopStatus(state: .running, since: now, runs: 1, error: nil)

    func measure(iterations: Int, _ body: () -> Int) -> [Double] {
        (0..<options.repeats).map { _ in
            var sink = 0
            let start = ContinuousClock.now
            for _ in 0..<iterations { sink &+= body() }
            let elapsed = seconds(ContinuousClock.now - start)
            precondition(sink > 0)
            return elapsed * 1e9 / Double(iterations)
        }
    }

    let pingTimes = measure(iterations: iterations) {
        guard case .success(let request) = Request.decode(ping) else { fatalError("ping did not decode") }
        let reply = Reply(to: request, body: .ping(PingReply(version: "0.1.0", pid: 1, uptimeMilliseconds: 5)))
        return reply.encoded().utf8.count
    }
    let statusTimes = measure(iterations: iterations / 100) {
        guard case .success(let request) = Request.decode(status) else { fatalError("status did not decode") }
        let reply = Reply(to: request, body: .status(StatusReply(loop: loop, tasks: tasks)))
        return reply.encoded().utf8.count
    }
    let framed = Array(repeating: ping + [10], count: 1_000).flatMap { $0 }
    let framingTimes = (0..<options.repeats).map { _ -> Double in
        var framer = LineFramer()
        var lines = 0
        let start = ContinuousClock.now
        for _ in 0..<(iterations / 1_000) {
            framer.append(framed)
            while case .line = framer.next() { lines += 1 }
        }
        precondition(lines == iterations / 1_000 * 1_000)
        return seconds(ContinuousClock.now - start) * 1e9 / Double(lines)
    }
    emit([
        ("scenario", "protocol"), ("ping_decode_encode_ns_median", median(pingTimes)),
        ("status100_decode_encode_ns_median", median(statusTimes)),
        ("framing_ns_per_line_median", median(framingTimes)),
        ("target_round_trip_us", 50.0),
    ])
}
