/// The cluster part of a `status` reply, from a member of a cluster (SPEC section 9):
/// `{"node":"host-a","role":"leader","leader":"host-a","lease_left_ms":4100}`.
public struct ClusterStatus: Sendable, Hashable {
    /// A member's part in its cluster.
    public enum Role: String, Sendable, Hashable, CaseIterable {
        /// It holds the leadership and runs the loop.
        case leader
        /// Another member leads (or none does yet); it starts nothing.
        case standby
    }

    /// This member's node name.
    public var node: String
    public var role: Role
    /// The leading member's node name; `nil` when none is known.
    public var leader: String?
    /// A leader: how long it still counts itself leader without another acknowledged keep-alive
    /// (its fence). A standby: how long its own lease has left. `nil` without a lease.
    public var leaseLeftMilliseconds: Int?

    public init(node: String, role: Role, leader: String?, leaseLeftMilliseconds: Int?) {
        self.node = node
        self.role = role
        self.leader = leader
        self.leaseLeftMilliseconds = leaseLeftMilliseconds
    }

    func write(to writer: inout JSONWriter) {
        writer.beginObject()
        writer.key("node")
        writer.string(node)
        writer.key("role")
        writer.string(role.rawValue)
        writer.key("leader")
        writer.string(leader)
        writer.key("lease_left_ms")
        if let leaseLeftMilliseconds { writer.int(leaseLeftMilliseconds) } else { writer.null() }
        writer.endObject()
    }

    static func decode(_ reader: ObjectReader) throws(ProtocolError) -> ClusterStatus {
        let roleText = try reader.string("role")
        guard let role = Role(rawValue: roleText) else {
            throw ProtocolError.badRequest("unknown role \(JSONValue.string(roleText).shortDescription)")
                .inField(reader.fieldName("role"))
        }
        return ClusterStatus(
            node: try reader.string("node"), role: role, leader: try reader.optionalString("leader"),
            leaseLeftMilliseconds: try reader.optionalInt("lease_left_ms"))
    }
}
