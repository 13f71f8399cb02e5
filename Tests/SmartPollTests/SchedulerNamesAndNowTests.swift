import Testing

@testable import SmartPoll

/// The name table behind scheduling by name, and the hook's instant (`SchedulerControl.now`).
@Suite(.timeLimit(.minutes(1)))
struct SchedulerNamesAndNowTests {
    @Test func nameTableFindsEveryNameAndNothingElse() {
        // Short (inline) and long names, shared prefixes and suffixes, lengths around the 8-byte
        // words the hash takes, non-ASCII, and the empty name.
        var names = (0..<5_000).map { "task-\($0)" }
        names += ["", "a", "ab", "abcdefg", "abcdefgh", "abcdefghi", "poller-with-a-much-longer-name-0"]
        names += ["poller-with-a-much-longer-name-1", "café", "日本語のタスク"]
        let table = TaskNameTable(names: names)
        for (index, name) in names.enumerated() {
            #expect(table.index(of: name) == index, "\(name)")
        }
        for absent in ["task-5000", "task-", "abcdefgh ", "poller-with-a-much-longer-name-2", "cafe", "日本語"] {
            #expect(table.index(of: absent) == nil, "\(absent)")
        }
        // Equal as Swift compares strings: another normalization of a name is that name.
        #expect(table.index(of: "cafe\u{301}") == names.firstIndex(of: "café"))
        #expect(TaskNameTable(names: ["a;b"]).index(of: "a\u{37E}b") == 0)
        // A name built at run time (a native heap string, not a literal) is found too.
        let built = String(repeating: "x", count: 3) + "-" + String(42)
        #expect(TaskNameTable(names: ["xxx-42", "other"]).index(of: built) == 0)
    }

    @Test func shortNamesAreFoundByTheirSmallStringWords() {
        // The fast path reads a small String's two words; it is on where the layout is as expected.
        #expect(TaskNameTable.smallStringsAreKeys == (MemoryLayout<String>.size == 16))
        // Every length from 0 to 17 bytes, around the 8- and 15-byte edges, ASCII or not.
        let names = (0...17).map { String(repeating: "n", count: $0) } + ["é", "ée", "日本語のタ", "x-日本語", "task-3"]
        let table = TaskNameTable(names: names)
        for (index, name) in names.enumerated() {
            #expect(table.index(of: name) == index, "\(name)")
            // The same bytes in a heap string (not the small form) reach the same task.
            var heap = String()
            heap.reserveCapacity(64)
            heap.append(name)
            #expect(table.index(of: heap) == index, "heap \(name)")
            if let key = SmallKey(name) {
                let bytes = Array(name.utf8)
                #expect(bytes.withUnsafeBytes { SmallKey($0) } == key, "key of \(name)")
            } else {
                #expect(name.utf8.count > 15, "\(name) is small")
            }
        }
        for absent in ["m", "nnnnnnnnnnnnnnnnnn", "e\u{301}x", "task-4", "日本語のタス"] {
            #expect(table.index(of: absent) == nil, "\(absent)")
        }
        // Another normalization of a short name is that name (the slow path's comparison).
        #expect(table.index(of: "e\u{301}") == names.firstIndex(of: "é"))
    }

    @Test func nanosecondsClampedAgreesWithInt128Division() {
        func reference(_ duration: Duration) -> Int64 {
            let quotient = duration.attoseconds / 1_000_000_000
            if quotient > Int128(Int64.max) { return .max }
            if quotient < Int128(Int64.min) { return .min }
            return Int64(quotient)
        }
        var samples: [Duration] = [
            .zero, .nanoseconds(1), .nanoseconds(-1), .seconds(3600), .seconds(-3600), .milliseconds(1),
            Duration(attoseconds: 999_999_999), Duration(attoseconds: -999_999_999),
            Duration(attoseconds: 1_000_000_000), Duration(attoseconds: Int128(UInt64.max)),
            Duration(attoseconds: Int128(UInt64.max) + 1), .nanoseconds(Int64.max), .nanoseconds(Int64.min),
            Duration(attoseconds: Int128(Int64.max) * 1_000_000_000 + 999_999_999),
            Duration(attoseconds: Int128(Int64.max) * 1_000_000_000 + 1_000_000_000),
            Duration(attoseconds: Int128(Int64.min) * 1_000_000_000 - 1_000_000_000),
            .seconds(Int64.max), .seconds(Int64.min),
        ]
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<10_000 {
            let high = Int128(Int64.random(in: -2_000_000_000...2_000_000_000, using: &generator))
            samples.append(
                Duration(attoseconds: high << 64 | Int128(UInt64.random(in: .min ... .max, using: &generator))))
        }
        for sample in samples {
            #expect(sample.nanosecondsClamped == reference(sample), "\(sample.attoseconds)")
        }
    }

    @Test func hooksSeeOneInstantPerCallUntilRefreshed() async throws {
        let clock = ManualClock()
        clock.advance(to: at(100))
        let seen = Journal()
        let scheduler = try Scheduler(
            tasks: ["a": SchedulerTask { nil }, "b": SchedulerTask { nil }],
            runHooks: [
                RunHook { control in
                    let first = control.now
                    clock.advance(by: .seconds(5))
                    // The same reading for the rest of this call, whatever the clock does.
                    control.schedule("a", after: .seconds(10))
                    seen.record("a next \(control.next("a")!.nanoseconds / 1_000_000_000)")
                    seen.record("now kept \(control.now == first)")
                    // Read again on request.
                    seen.record("refreshed \(control.refreshNow().nanoseconds / 1_000_000_000)")
                    control.schedule("b", after: .seconds(10))
                    seen.record("b next \(control.next("b")!.nanoseconds / 1_000_000_000)")
                },
                RunHook { control in
                    // The next call of a hook reads the clock afresh.
                    seen.record("next hook \(control.now.nanoseconds / 1_000_000_000)")
                    throw Done()
                },
            ],
            clock: clock
        )
        await #expect(throws: Done.self) { try await scheduler.run() }
        #expect(seen.entries == ["a next 110", "now kept true", "refreshed 105", "b next 115", "next hook 105"])
    }

    /// A hook that suspends (an `await` that waits) between two scheduling calls gets the
    /// second relative to the clock after the wait, without calling refreshNow().
    @Test func aHookThatSuspendsReadsTheClockAgainAfterTheWait() async throws {
        let clock = ManualClock()
        clock.advance(to: at(100))
        let seen = Journal()
        let scheduler = try Scheduler(
            tasks: ["a": SchedulerTask { nil }, "b": SchedulerTask { nil }],
            runHooks: [
                RunHook { control in
                    control.schedule("a", after: .seconds(10))
                    clock.advance(by: .seconds(7))
                    // The hook suspends and resumes as a new job. An `await` need not suspend:
                    // Task.yield() and a detached task's value go on at once when the other side
                    // was quicker (CI's sanitizer run once showed it), and then the hook's reading
                    // rightly stays. So yield until a resumption shows as a new job.
                    let before = try #require(LoopExecutor.shared.jobStamp())
                    var yields = 0
                    repeat {
                        await Task.yield()
                        yields += 1
                    } while LoopExecutor.shared.jobStamp() == before && yields < 10_000
                    #expect(yields < 10_000, "no resumption as a new job")
                    control.schedule("b", after: .seconds(10))
                    seen.record("a next \(control.next("a")!.nanoseconds / 1_000_000_000)")
                    seen.record("b next \(control.next("b")!.nanoseconds / 1_000_000_000)")
                    throw Done()
                }
            ],
            clock: clock
        )
        await #expect(throws: Done.self) { try await scheduler.run() }
        #expect(seen.entries == ["a next 110", "b next 117"])
    }

    @Test func handlesAndNamesReachTheSameTask() async throws {
        let names = (0..<100).map { "t\($0)" }
        let scheduler = try Scheduler(
            tasks: Dictionary(uniqueKeysWithValues: names.map { ($0, SchedulerTask { nil }) }),
            runHooks: [
                RunHook { control in
                    for (offset, name) in names.enumerated() {
                        control.schedule(control.handle(for: name)!, after: .seconds(Int64(offset + 1)))
                    }
                    for (offset, name) in names.enumerated() {
                        #expect(control.next(name) == control.now.advanced(by: .seconds(Int64(offset + 1))))
                    }
                    #expect(control.handle(for: "t100") == nil)
                    throw Done()
                }
            ],
            clock: ManualClock()
        )
        #expect(scheduler.handle(for: "t7") != nil && scheduler.handle(for: "nope") == nil)
        await #expect(throws: Done.self) { try await scheduler.run() }
    }
}
