/// When a `schedule` request wants a task to run: SPEC's "one of `after` or `at`".
public enum ScheduleTime: Sendable, Hashable {
    /// Relative to the time the request is handled (`"after"`): positive schedules
    /// at now + duration, zero makes the task ready now, negative clears its schedule.
    case after(Duration)
    /// Absolute (`"at"`): a time in the past makes the task ready now; `nil`
    /// (`"at": null`) clears its schedule.
    case at(Timestamp?)
}
