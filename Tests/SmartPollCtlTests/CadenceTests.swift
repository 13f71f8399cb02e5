import Foundation
import SmartPollProtocol
import Testing

/// `every_from`: what `every` counts from, seen in the due times `task_started` announces.
@Suite(.endToEnd)
struct CadenceTests {
    /// The due times, in nanoseconds since the epoch, of the next `count` starts of each task.
    static func dues(_ events: EventStream, of tasks: [String], count: Int) throws -> [String: [Int64]] {
        var dues: [String: [Int64]] = [:]
        try events.until { event in
            if case .taskStarted(let task, _, _, let due?, _) = event.kind, tasks.contains(task) {
                dues[task, default: []].append(due.nanosecondsSinceEpoch)
            }
            return tasks.allSatisfy { dues[$0, default: []].count >= count }
        }
        return dues
    }

    @Test func everyFromDueKeepsRunsOnTheGridWhileEveryFromEndDrifts() throws {
        // Both tasks run 50 ms every 200 ms: from the due time they stay on a 200 ms grid; from
        // the end of the run each period is 200 ms plus the run.
        let supervisor = try SupervisorHarness(
            """
            {"tasks": {
              "grid": {"command": ["sleep", "0.05"], "every": "200ms", "every_from": "due"},
              "drift": {"command": ["sleep", "0.05"], "every": "200ms"}}}
            """)
        let events = try supervisor.watch(["grid", "drift"])
        let dues = try Self.dues(events, of: ["grid", "drift"], count: 7)
        let period: Int64 = 200_000_000
        let tolerance: Int64 = 1_000_000
        let grid = zip(dues["grid"]!.dropFirst(), dues["grid"]!).map { $0 - $1 }
        // On a busy machine a run may outlast a beat: the next one is then skipped, still on the
        // grid (a multiple of 200 ms), never bunched up.
        for gap in grid {
            let beats = (gap + period / 2) / period
            #expect(beats >= 1 && abs(gap - beats * period) <= tolerance, "due times \(grid) ns apart")
        }
        #expect(grid.filter { abs($0 - period) <= tolerance }.count * 2 >= grid.count, "\(grid)")
        let drift = zip(dues["drift"]!.dropFirst(), dues["drift"]!).map { $0 - $1 }
        for gap in drift {
            #expect(gap >= period + 50_000_000 - tolerance, "every_from end: 200 ms after a 50 ms run: \(drift)")
        }
    }
}
