import Glibc
import SmartPoll
import SmartPollProtocol
import SmartPollTestSupport

// `smartpoll-bench --count NAME`: a fixed amount of work and nothing else, for `make bench-check`,
// which counts its instructions under callgrind. No clock is read and nothing is random but a
// seeded generator, so the same build does the same work every run; what callgrind counts is
// `countedWork` alone (--toggle-collect=smartpoll_bench_counted_work), not the process start.

/// The fixed workloads, by the name `make bench-check` gives them.
let countScenarioNames = ["protocol_ping", "protocol_status100", "state_machine"]

/// Runs workload `index` of ``countScenarioNames``; the symbol is fixed so that callgrind counts
/// this call only. Returns a checksum of the work, printed so that nothing is optimized away.
/// Not optimized itself (the workloads are), and it takes no closure: a specialized copy under
/// another symbol would escape the count.
@_silgen_name("smartpoll_bench_counted_work")
@inline(never)
@_optimize(none)
func countedWork(_ index: Int) -> Int {
    switch index {
    case 0: return countProtocolPing()
    case 1: return countProtocolStatus100()
    default: return countStateMachine()
    }
}

/// `--count NAME`: runs the workload, prints its checksum and exits; exits 2 for an unknown name.
func runCount(_ name: String) -> Never {
    guard let index = countScenarioNames.firstIndex(of: name) else {
        let usage = "smartpoll-bench: --count \(name): unknown (\(countScenarioNames.joined(separator: "|")))\n"
        _ = usage.utf8CString.withUnsafeBufferPointer { write(2, $0.baseAddress, $0.count - 1) }
        exit(2)
    }
    print("\(name) checksum \(countedWork(index))")
    exit(0)
}

/// `--fixture status100`: the `status` reply of ``fixedStatusReply()`` as one line, the canned
/// reply (contrib/bench/status-100.json) that bench-check's server gives `smartpollctl status`.
func printFixture(_ name: String) -> Never {
    guard name == "status100" else {
        let usage = "smartpoll-bench: --fixture \(name): unknown (status100)\n"
        _ = usage.utf8CString.withUnsafeBufferPointer { write(2, $0.baseAddress, $0.count - 1) }
        exit(2)
    }
    print(Reply(id: .int(1), body: .status(fixedStatusReply())).encoded())
    exit(0)
}

// MARK: - Protocol

/// Iterations of each protocol workload: an iteration of ping is about 43k instructions, one of
/// status with 100 tasks about 8.5M (a few seconds each under callgrind).
let pingIterations = 1_000
let statusIterations = 20

/// What a client and the supervisor do with a `ping`, `pingIterations` times: the request is
/// decoded, the reply built and encoded, then decoded as the client decodes it.
func countProtocolPing() -> Int {
    let line = Array(#"{"id":1,"cmd":"ping"}"#.utf8)
    var checksum = 0
    for _ in 0..<pingIterations {
        guard case .success(let request) = Request.decode(line) else { fatalError("ping did not decode") }
        let reply = Reply(to: request, body: .ping(PingReply(version: "0.1.0", pid: 4242, uptimeMilliseconds: 98_765)))
        let encoded = reply.encodedLine()
        guard let decoded = try? Reply.decode(encoded, for: request.command), case .ping(let ping) = decoded.body else {
            fatalError("the ping reply did not decode")
        }
        checksum &+= encoded.count &+ ping.pid
    }
    return checksum
}

/// The same for `status` with 100 tasks (``fixedStatusReply()``), `statusIterations` times. The
/// reply is made as the supervisor makes it: from the rows it keeps encoded between requests
/// (``TaskStatusRecord``), encoded once before the loop since nothing changes in it (the
/// supervisor's own path, with its comparison of each row, is supervisor_status100).
func countProtocolStatus100() -> Int {
    let line = Array(#"{"id":1,"cmd":"status"}"#.utf8)
    let fixed = fixedStatusReply()
    let records = fixed.tasks.map { TaskStatusRecord($0) }
    var checksum = 0
    for _ in 0..<statusIterations {
        guard case .success(let request) = Request.decode(line) else { fatalError("status did not decode") }
        let status = StatusReply(loop: fixed.loop, records: records)
        let reply = Reply(to: request, body: .status(status))
        let encoded = reply.encodedLine()
        guard let decoded = try? Reply.decode(encoded, for: request.command),
            case .status(let back) = decoded.body
        else {
            fatalError("the status reply did not decode")
        }
        checksum &+= encoded.count &+ back.tasks.count
    }
    return checksum
}

/// A `status` of 100 tasks in a mix of states, at fixed times: the loop and the last runs in
/// 1990, the next deadlines in 2200, so that `smartpollctl status` renders them with as many
/// digits on any day of the next decades ("12345d06h ago").
func fixedStatusReply() -> StatusReply {
    let past = Timestamp(nanosecondsSinceEpoch: 631_152_000 * 1_000_000_000)  // 1990-01-01T00:00:00Z
    let future = Timestamp(nanosecondsSinceEpoch: 7_258_118_400 * 1_000_000_000)  // 2200-01-01T00:00:00Z
    let tasks = (0..<100).map { index -> TaskStatus in
        let name = "poller-\(index / 10)\(index % 10)"
        let started = past.advanced(by: .milliseconds(index * 1_000 + 250))
        let duration = 120 + index * 7
        let ended = started.advanced(by: .milliseconds(duration))
        let last: LastRun?
        switch index % 10 {
        case 2:  // never ran
            last = nil
        case 3:  // exited non-zero
            last = LastRun(
                run: index * 3 + 1, started: started, ended: ended, durationMilliseconds: Double(duration) + 0.5,
                exitCode: 3, signal: nil, timedOut: false, succeeded: false, error: nil,
                stderrTail: "curl: (22) The requested URL returned error: 503\n")
        case 7:  // timed out
            last = LastRun(
                run: index * 3 + 1, started: started, ended: ended, durationMilliseconds: 30_000.25,
                exitCode: nil, signal: 15, timedOut: true, succeeded: false, error: nil, stderrTail: "")
        default:
            last = LastRun(
                run: index * 3 + 1, started: started, ended: ended, durationMilliseconds: Double(duration) + 0.5,
                exitCode: 0, signal: nil, timedOut: false, succeeded: true, error: nil,
                stderrTail: "fetched \(index * 13 % 97) records\n")
        }
        let running = index % 10 == 0
        let ready = index % 10 == 1
        let scheduled = ready || (index % 10 != 2 && !running)
        return TaskStatus(
            name: name, scheduled: scheduled, ready: ready,
            next: scheduled ? (ready ? ended : future.advanced(by: .seconds(index * 10))) : nil,
            running: running, pid: running ? 40_000 + index : nil, run: running ? index * 3 + 2 : nil,
            runs: last == nil ? 0 : index * 3 + 1, failures: index % 10 == 3 || index % 10 == 7 ? 1 + index % 4 : 0,
            last: last)
    }
    return StatusReply(loop: LoopStatus(state: .running, since: past, runs: 1, error: nil), tasks: tasks)
}

// MARK: - State machine

/// Operations of the state machine workload.
let stateMachineOperations = 100_000

/// `stateMachineOperations` calls on a `SchedulerStateMachine` of 1,000 tasks, chosen by a
/// generator with a fixed seed, as a driver would make them: schedule after a delay (now,
/// later, or cleared), schedule sooner, stop a timer, then let time pass, hand out what fell
/// due and finish runs. At most 16 runs in flight.
func countStateMachine() -> Int {
    let taskCount = 1_000
    var machine = SchedulerStateMachine(taskCount: taskCount, maximumRunning: 16)
    var random = SplitMix64(seed: 0x5EED_0000_0011)
    var now = Instant(nanoseconds: 1_000_000_000)
    var running: [SchedulerStateMachine.TaskID] = []
    running.reserveCapacity(16)
    var operations = 0
    var started = 0
    machine.runStarted()
    while operations < stateMachineOperations {
        let task = SchedulerStateMachine.TaskID(Int(random.next() % UInt64(taskCount)))
        let roll = random.next() % 100
        switch roll {
        case 0..<40:
            // 1 ms to 60 s; one in eight now, one in sixteen cleared.
            let kind = random.next() % 16
            let delay: Duration =
                kind == 0
                ? .milliseconds(-1)
                : kind < 3
                    ? .zero
                    : .milliseconds(Int64(1 + random.next() % 60_000))
            machine.schedule(task, after: delay, now: now)
        case 40..<55:
            machine.scheduleSooner(task, after: .milliseconds(Int64(1 + random.next() % 30_000)), now: now)
        case 55..<62:
            _ = machine.stopTimer(task, now: now)
        case 62..<80:
            now = now.advanced(by: .milliseconds(Int64(random.next() % 500)))
            // The drivers' step: deadlines fall due, then each task that may start.
            while operations < stateMachineOperations, case .start(let task, _) = machine.advance(now: now) {
                running.append(task)
                started += 1
                operations += 1
            }
        default:
            guard !running.isEmpty else { continue }
            machine.taskFinished(running.remove(at: Int(random.next() % UInt64(running.count))))
        }
        operations += 1
    }
    return started &* 31 &+ machine.scheduledCount &+ machine.runningCount
}
