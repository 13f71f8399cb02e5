import SmartPoll

// TEMPORARY: replaced by the core's own remapping operation.
extension SchedulerStateMachine {
    func remapped(taskCount: Int, maximumRunning: Int, now: Instant, mapping: (TaskID) -> TaskID?) -> SchedulerStateMachine {
        var newMachine = SchedulerStateMachine(taskCount: taskCount, maximumRunning: maximumRunning)
        if phase == .running { newMachine.runStarted() }
        var carried: [(time: Instant, order: Int, task: TaskID, ready: Bool)] = []
        for index in 0..<self.taskCount {
            guard let target = mapping(TaskID(index)) else { continue }
            switch schedule(of: TaskID(index)) {
            case .none: break
            case .pending(let time): carried.append((time, 1, target, false))
            case .ready(let due): carried.append((due, 0, target, true))
            }
        }
        carried.sort { ($0.order, $0.time, $0.task) < ($1.order, $1.time, $1.task) }
        for entry in carried {
            newMachine.schedule(entry.task, at: entry.ready ? min(entry.time, now) : entry.time, now: now)
        }
        for index in 0..<self.taskCount where isRunning(TaskID(index)) {
            if let target = mapping(TaskID(index)) { newMachine.adoptRunning(target) }
        }
        return newMachine
    }
}
