import SmartPollProtocol

extension SupervisorConfiguration {
    /// `--check`'s lines after the verdict: when each task first runs, so that a task that
    /// never runs by itself is plain to see.
    ///
    /// ```
    ///   fetch    first runs when the loop starts, then every 10s
    ///   publish  runs when scheduled: on_change of fetch, hook refresh
    ///   beat     first runs when the loop starts, then every 1s from its due time
    /// ```
    public var firstRunSummary: [String] {
        var triggers: [String: [String]] = [:]
        for (name, task) in tasks.sorted(by: { $0.key < $1.key }) {
            for target in task.onChange { triggers[target, default: []].append("on_change of \(name)") }
            for target in task.onSuccess { triggers[target, default: []].append("on_success of \(name)") }
        }
        for (name, hook) in hooks.sorted(by: { $0.key < $1.key }) {
            if case .schedule(let entries) = hook {
                for entry in entries { triggers[entry.task, default: []].append("hook \(name)") }
            }
        }
        let names = taskNames
        let width = names.map(\.count).max() ?? 0
        return names.map { name in
            let task = tasks[name]!
            var when: String
            let every = task.every.map {
                "every \(DurationFormat.format($0))" + (task.everyFrom == .due ? " from its due time" : "")
            }
            if let start = task.start {
                when =
                    start == .zero
                    ? "first runs when the loop starts"
                    : "first runs \(DurationFormat.format(start)) after the loop starts"
                if let every { when += ", then " + every }
            } else {
                let by = triggers[name] ?? []
                when =
                    by.isEmpty
                    ? "runs only when asked (smartpollctl run or schedule, or a directive)"
                    : "runs when scheduled: " + by.joined(separator: ", ")
                if let every { when += "; then " + every }
            }
            return "  " + name + String(repeating: " ", count: width - name.count + 2) + when
        }
    }
}
