extension TaskConfiguration {
    /// What `every` counts from (the task key `every_from`).
    public enum EveryFrom: String, Sendable, Hashable, CaseIterable {
        /// The end of the run (the Go library's): the schedule drifts by each run's lateness and
        /// duration.
        case end
        /// The time the run fell due: a fixed rate on a grid of `every`, skipping the beats that
        /// passed while it ran (never a burst to catch up). Jitter is added to each beat and
        /// never moves the grid.
        case due
    }
}
