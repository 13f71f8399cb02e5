import Glibc
import SmartPoll
import Synchronization

/// Task cycles per second: N tasks, each rescheduling itself with `schedule(after: .zero)` from
/// its task hook. Reference: the Go library on this machine kind, 310k/s at N=1, 54k at 100,
/// 4.6k at 1,000, 420 at 10,000.
func benchCycles() async throws {
    let reference: [Int: Double] = [1: 310_000, 100: 54_000, 1_000: 4_600, 10_000: 420]
    for count in options.taskCounts ?? [1, 10, 100, 1_000, 10_000, 100_000] {
        let cycles = max(options.quick ? 100_000 : 300_000, count * 3)
        var rates: [Double] = []
        // CPU time a cycle (every thread of the process), which the machine's load changes less
        // than the rate.
        var cpuPerCycle: [Double] = []
        for _ in 0..<options.repeats {
            let done = Atomic<Int>(0)
            let names = (0..<count).map { "t\($0)" }
            var tasks: [String: SchedulerTask] = [:]
            for name in names {
                tasks[name] = SchedulerTask {
                    { control in
                        if done.add(1, ordering: .relaxed).newValue >= cycles { throw Finished() }
                        control.schedule(name, after: .zero)
                    }
                }
            }
            let scheduler = try Scheduler(
                tasks: tasks,
                runHooks: [
                    RunHook { control in
                        for name in names { control.schedule(name, after: .zero) }
                    }
                ])
            let start = ContinuousClock.now
            let cpuStart = cpuSeconds()
            do { try await scheduler.run() } catch is Finished {}
            rates.append(Double(done.load(ordering: .relaxed)) / seconds(ContinuousClock.now - start))
            cpuPerCycle.append((cpuSeconds() - cpuStart) * 1e6 / Double(done.load(ordering: .relaxed)))
        }
        var fields: [(String, Any)] = [
            ("scenario", "cycles"), ("tasks", count), ("cycles_per_s_median", median(rates)),
            ("min", rates.min()!), ("max", rates.max()!), ("cpu_us_per_cycle_median", median(cpuPerCycle)),
            ("target", 300_000.0),
        ]
        if let go = reference[count] {
            fields += [("go_reference", go), ("ratio_vs_go", median(rates) / go)]
        }
        emit(fields)
    }
}

/// Nanoseconds per scheduling call inside a hook (name lookup, clock read, heap update), and
/// per call on the bare state machine. Reference: the Go library, 670 to 1,460 ns a call.
func benchScheduleCall() async throws {
    for count in [10, 10_000] {
        let calls = options.quick ? 1_000_000 : 3_000_000
        let names = (0..<count).map { "task-\($0)" }
        var rng = SystemRandomNumberGenerator()
        let delays: [Duration] = (0..<4096).map { _ in .milliseconds(Int.random(in: 1...3_600_000, using: &rng)) }
        var perCall: [Double] = []
        var bare: [Double] = []
        var byHandle: [Double] = []
        for _ in 0..<options.repeats {
            var tasks: [String: SchedulerTask] = [:]
            for name in names { tasks[name] = SchedulerTask { nil } }
            // Times `calls` scheduling calls made from inside a run hook; `prepare` runs first,
            // untimed, and returns the call to make.
            func timeCalls(_ prepare: @escaping @Sendable (SchedulerControl) -> (Int) -> Void) async throws -> Double {
                let measured = Mutex<Double>(0)
                let scheduler = try Scheduler(
                    tasks: tasks,
                    runHooks: [
                        RunHook { control in
                            let call = prepare(control)
                            let start = ContinuousClock.now
                            for i in 0..<calls { call(i) }
                            measured.withLock { $0 = seconds(ContinuousClock.now - start) * 1e9 / Double(calls) }
                            throw Finished()
                        }
                    ])
                do { try await scheduler.run() } catch is Finished {}
                return measured.withLock { $0 }
            }
            perCall.append(
                try await timeCalls { control in
                    { i in control.schedule(names[i % count], after: delays[i & 4095]) }
                })
            byHandle.append(
                try await timeCalls { control in
                    let handles = names.map { control.handle(for: $0)! }
                    return { i in control.schedule(handles[i % count], after: delays[i & 4095]) }
                })

            var machine = SchedulerStateMachine(taskCount: count)
            machine.runStarted()
            let now = Instant(nanoseconds: 0)
            let start = ContinuousClock.now
            for i in 0..<calls {
                machine.schedule(.init(i % count), after: delays[i & 4095], now: now)
            }
            bare.append(seconds(ContinuousClock.now - start) * 1e9 / Double(calls))
            precondition(machine.scheduledCount == count)
        }
        emit([
            ("scenario", "schedule_call"), ("tasks", count), ("ns_per_call_median", median(perCall)),
            ("min", perCall.min()!), ("max", perCall.max()!), ("by_handle_ns_median", median(byHandle)),
            ("state_machine_ns_median", median(bare)),
            ("target", 100.0), ("go_reference_best", 670.0), ("ratio_vs_go", median(perCall) / 670),
        ])
    }
}

/// 1,000 tasks each due every 10 ms (rescheduled from their hook at previous due + 10 ms) for
/// 10 s (2 s with --quick): runs per second against the ideal 100,000, and lateness (stage one
/// start minus due). Reference: the Go library reached 3,200 runs/s, p99 lateness 9.6 ms.
func benchCadence() async throws {
    let count = 1_000
    let period = Duration.milliseconds(10)
    let length = options.quick ? Duration.seconds(2) : .seconds(10)
    let clock = SystemClock()
    let names = (0..<count).map { "t\($0)" }
    let slots = Slots(count: count)
    var tasks: [String: SchedulerTask] = [:]
    for (index, name) in names.enumerated() {
        tasks[name] = SchedulerTask {
            let started = clock.now
            return { control in
                slots.record(index, started: started)
                if started.nanoseconds >= length.nanosecondsClamped { throw Finished() }
                let due = slots.due(index).advanced(by: period)
                slots.setDue(index, due)
                control.schedule(name, at: due)
            }
        }
    }
    let scheduler = try Scheduler(
        tasks: tasks,
        runHooks: [
            RunHook { control in
                // Spread the first deadlines over one period, as independent pollers would be.
                let origin = control.now
                for (index, name) in names.enumerated() {
                    let due = origin.advanced(by: .nanoseconds(Int64(index) * period.nanosecondsClamped / Int64(count)))
                    slots.setDue(index, due)
                    control.schedule(name, at: due)
                }
            }
        ],
        clock: clock
    )
    let cpuStart = cpuSeconds()
    let start = clock.now
    do { try await scheduler.run() } catch is Finished {}
    let elapsed = seconds(start.duration(to: clock.now))
    let lateness = slots.lateness.sorted()
    let rate = Double(lateness.count) / elapsed
    emit([
        ("scenario", "cadence"), ("tasks", count), ("period_ms", 10), ("seconds", elapsed),
        ("runs_per_s", rate), ("ideal_runs_per_s", 100_000.0), ("fraction_of_ideal", rate / 100_000),
        ("lateness_p50_ms", percentile(lateness, 0.5)), ("lateness_p99_ms", percentile(lateness, 0.99)),
        ("lateness_max_ms", lateness.last ?? .nan), ("cpu_s", cpuSeconds() - cpuStart),
        ("target_fraction", 0.9), ("target_p99_ms", 2.0),
        ("go_reference_runs_per_s", 3_200.0), ("go_reference_p99_ms", 9.6),
    ])
}

/// Per-task due times and lateness samples; touched only from hooks, which the loop serializes.
final class Slots: @unchecked Sendable {
    private var dues: [Instant]
    private(set) var lateness: [Double] = []

    init(count: Int) {
        dues = Array(repeating: Instant(nanoseconds: 0), count: count)
        lateness.reserveCapacity(1_200_000)
    }

    func due(_ index: Int) -> Instant { dues[index] }
    func setDue(_ index: Int, _ due: Instant) { dues[index] = due }
    func record(_ index: Int, started: Instant) {
        lateness.append(Double(started.nanoseconds - dues[index].nanoseconds) / 1e6)
    }
}

/// CPU and memory with 100,000 tasks scheduled an hour out, over 10 s idle (3 s with --quick).
/// Reference: the Go library, ~0 CPU and 0.65 KB per task.
func benchIdle() async throws {
    let count = 100_000
    let idle = options.quick ? Duration.seconds(3) : .seconds(10)
    _ = mallocTrim(0)
    let before = residentKiB()
    let names = (0..<count).map { "poller-\($0)" }
    let measurement = Mutex<(cpu: Double, kib: Double)>((0, 0))
    // The task dictionary is the caller's input, gone once the scheduler is built.
    let scheduler = try Scheduler(
        tasks: Dictionary(uniqueKeysWithValues: names.lazy.map { ($0, SchedulerTask { nil }) }),
        runHooks: [
            RunHook { control in
                for name in names { control.schedule(name, after: .seconds(3600)) }
            }
        ],
        eventHooks: [
            EventHook(IdleTicker(after: idle)) { _, _ in
                throw Finished()
            }
        ]
    )
    let runner = Task { try await scheduler.run() }
    // Let the run hook finish before measuring the idle period.
    try await Task.sleep(for: .milliseconds(300))
    let cpuStart = cpuSeconds()
    _ = mallocTrim(0)
    let during = residentKiB()
    do { try await runner.value } catch is Finished {}
    measurement.withLock { $0 = (cpuSeconds() - cpuStart, during) }
    let (cpu, kib) = measurement.withLock { $0 }
    emit([
        ("scenario", "idle"), ("tasks", count), ("idle_s", seconds(idle) - 0.3), ("cpu_s", cpu),
        ("rss_kib", kib), ("kib_per_task", (kib - before) / Double(count)),
        ("target_kib_per_task", 0.3), ("go_reference_kib_per_task", 0.65),
    ])
}

/// One value after `after`, then nothing: ends the idle scenario from inside the loop.
struct IdleTicker: AsyncSequence, Sendable {
    let after: Duration
    struct Iterator: AsyncIteratorProtocol {
        let after: Duration
        var fired = false
        mutating func next() async throws -> Int? {
            if fired { return nil }
            fired = true
            try await Task.sleep(for: after)
            return 1
        }
    }
    func makeAsyncIterator() -> Iterator { Iterator(after: after) }
}
