/// The loop part of a `status` reply:
/// `{"state":"running","since":T,"runs":N,"error":null}`.
public struct LoopStatus: Sendable, Hashable {
    /// The loop's states on the wire.
    public enum State: String, Sendable, Hashable, CaseIterable {
        case running, starting, stopped, failed
    }

    public var state: State
    /// When the loop entered ``state``; `nil` if it never changed state.
    public var since: Timestamp?
    /// How many runs of the loop have started.
    public var runs: Int
    /// Why the last run failed (with ``State/failed``); otherwise `nil`.
    public var error: String?

    public init(state: State, since: Timestamp?, runs: Int, error: String?) {
        self.state = state
        self.since = since
        self.runs = runs
        self.error = error
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
            error: try reader.optionalString("error"))
    }
}
