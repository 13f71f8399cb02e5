// smartpoll-bench: figures for the scheduling core (and, where noted, the protocol module).
// Prints one JSON line per scenario on stdout. Not a test: nothing here passes or fails.
//
//   smartpoll-bench [--quick] [--repeat N] [--only NAME]
//   smartpoll-bench --count NAME      (fixed work for make bench-check's instruction counts)
//   smartpoll-bench --fixture NAME    (prints a fixed reply; see CountScenarios.swift)
import Glibc
import SmartPoll

// Before any await: synchronous fixed work, then exit (no task switch inside what is counted).
if let name = options.count { runCount(name) }
if let name = options.fixture { printFixture(name) }

let scenarios: [(String, () async throws -> Void)] = [
    ("cycles", benchCycles),
    ("schedule_call", benchScheduleCall),
    ("cadence", benchCadence),
    ("idle", benchIdle),
    ("protocol", benchProtocol),
]
for (name, body) in scenarios where options.only == nil || options.only == name {
    try await body()
}
