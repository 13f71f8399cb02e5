import SmartPollProtocol
import Testing

@testable import SmartPollSupervisor

/// The key a kept `status` row is reused by (``TaskStatusKey``) must cover everything the row
/// shows: these tests fail when a field is added to the row but not to the key, or when the last
/// run can change without the key seeing it.
@Suite("status row keys")
struct TaskStatusKeyTests {
    static let time = Timestamp(nanosecondsSinceEpoch: 1_796_003_072_123_000_000)

    static func lastRun(_ run: Int) -> LastRun {
        LastRun(
            run: run, started: time, ended: time.advanced(by: .milliseconds(5)), durationMilliseconds: 5,
            exitCode: 0, signal: nil, timedOut: false, succeeded: true, error: nil, stderrTail: "tail")
    }

    @Test("every field of a status row but the name and the last run is a field of its key")
    func keyCoversEveryField() {
        let row = TaskStatus(
            name: "t", scheduled: false, ready: false, next: nil, running: false, pid: nil, run: nil, runs: 0,
            failures: 0, last: nil)
        let rowFields = Set(Mirror(reflecting: row).children.compactMap(\.label))
        let keyFields = Set(Mirror(reflecting: TaskStatusKey()).children.compactMap(\.label))
        // The name is the TaskRuntime's own (a `let`); the last run is counted by lastChanges.
        #expect(rowFields.subtracting(["name", "last"]) == keyFields.subtracting(["lastChanges"]))
        #expect(keyFields.contains("lastChanges"))
    }

    @Test("every change to a task's last run, even to an equal value, counts")
    func lastRunChangesAreCounted() {
        var task = TaskRuntime(name: "t", incarnation: 0)
        var seen = [task.lastChanges]
        func changed(_ what: String) {
            #expect(!seen.contains(task.lastChanges), "\(what) was not counted")
            seen.append(task.lastChanges)
        }
        task.last = Self.lastRun(1)
        changed("set")
        task.last?.stderrTail = "other"
        changed("a field changed in place")
        task.last?.exitCode = nil
        changed("another field")
        let same = task.last
        task.last = same
        changed("set to an equal value")
        task.last = nil
        changed("cleared")
        var tasks = [task]
        tasks[0].last = Self.lastRun(2)
        task = tasks[0]
        changed("set in an array")
        // Reading it counts nothing.
        _ = task.last?.run
        #expect(task.lastChanges == seen.last)
    }

    @Test("every set of a field the row shows from the runtime counts in statusChanges, by any path")
    func runtimeFieldChangesAreCounted() {
        var task = TaskRuntime(name: "t", incarnation: 0)
        var seen = [task.statusChanges]
        func changed(_ what: String) {
            #expect(!seen.contains(task.statusChanges), "\(what) was not counted")
            seen.append(task.statusChanges)
        }
        func bump(_ value: inout Int) { value += 1 }
        task.runs = 1
        changed("runs set")
        task.runs += 1
        changed("runs incremented")
        bump(&task.failures)
        changed("failures passed inout")
        task.cancelled = 0
        changed("cancelled set to an equal value")
        task.last = Self.lastRun(1)
        changed("last set")
        task.last?.stderrTail = "other"
        changed("last changed in place")
        task.current = nil
        changed("current set")
        var tasks = [task]
        tasks[0].runs += 1
        task = tasks[0]
        changed("runs set in an array")
        tasks.withUnsafeMutableBufferPointer { $0[0].cancelled += 1 }
        task = tasks[0]
        changed("cancelled set through a buffer pointer")
        // The fields the key takes from the runtime are exactly these (and the name, a let).
        let key = Set(Mirror(reflecting: TaskStatusKey()).children.compactMap(\.label))
        #expect(
            key.subtracting(["scheduled", "ready", "next", "paused"])
                == ["running", "pid", "run", "runs", "failures", "cancelled", "lastChanges"])
        _ = task.runs + task.failures
        #expect(task.statusChanges == seen.last, "reading counts nothing")
    }
}
