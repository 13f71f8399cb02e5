/// The loop part of a `status` reply:
/// `{"state":"running","since":T,"runs":N,"error":null,"restart_at":null}`.
public struct LoopStatus: Sendable, Hashable {
    /// The loop's states on the wire.
    public enum State: String, Sendable, Hashable, CaseIterable {
        case running, starting, stopped, failed
        /// A standby member of a cluster (SPEC section 9): another member leads and runs the loop.
        case standby
    }

    public var state: State
    /// When the loop entered ``state``; `nil` if it never changed state.
    public var since: Timestamp?
    /// How many runs of the loop have started.
    public var runs: Int
    /// Why the last run failed (with ``State/failed``); otherwise `nil`.
    public var error: String?
    /// When a failed loop starts again by the configuration's `restart` policy; otherwise
    /// `nil` (`"restart_at"`).
    public var restartAt: Timestamp?

    public init(state: State, since: Timestamp?, runs: Int, error: String?, restartAt: Timestamp? = nil) {
        self.state = state
        self.since = since
        self.runs = runs
        self.error = error
        self.restartAt = restartAt
    }

    func write(to writer: inout JSONWriter) {
        writer.beginObject()
        writer.key("state")
        writer.string(state.rawValue)
        writer.key("since")
        writer.timestamp(since)
        writer.key("runs")
        writer.int(runs)
        writer.key("error")
        writer.string(error)
        writer.key("restart_at")
        writer.timestamp(restartAt)
        writer.endObject()
    }

    static func decode(_ reader: ObjectReader) throws(ProtocolError) -> LoopStatus {
        let stateText = try reader.string("state")
        guard let state = State(rawValue: stateText) else {
            throw ProtocolError.badRequest("unknown loop state \(JSONValue.string(stateText).shortDescription)")
                .inField(reader.fieldName("state"))
        }
        return LoopStatus(
            state: state,
            since: try reader.optionalTimestamp("since"),
            runs: try reader.int("runs"),
            error: try reader.optionalString("error"),
            restartAt: try reader.optionalTimestamp("restart_at"))
    }
}
