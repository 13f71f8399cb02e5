// smartpoll-bench: figures for the scheduling core (and, where noted, the protocol module).
// Prints one JSON line per scenario on stdout. Not a test: nothing here passes or fails.
//
//   smartpoll-bench [--quick] [--repeat N] [--only NAME]
#if canImport(Glibc)
import Glibc
#endif
import SmartPoll


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
