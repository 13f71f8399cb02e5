/// The reply to `ping`: `{"id":..,"ok":true,"version":"X.Y.Z","protocol":1,"pid":N,"uptime_ms":N}`.
public struct PingReply: Sendable, Hashable {
    /// The supervisor's version, `X.Y.Z`.
    public var version: String
    /// The protocol version (`"protocol"`); this module speaks ``currentProtocolVersion``.
    public var protocolVersion: Int
    /// The supervisor's process id.
    public var pid: Int
    /// Milliseconds since the supervisor started (`"uptime_ms"`).
    public var uptimeMilliseconds: Int

    /// The protocol version this module implements.
    public static let currentProtocolVersion = 1

    public init(
        version: String, protocolVersion: Int = PingReply.currentProtocolVersion, pid: Int, uptimeMilliseconds: Int
    ) {
        self.version = version
        self.protocolVersion = protocolVersion
        self.pid = pid
        self.uptimeMilliseconds = uptimeMilliseconds
    }

    func writeMembers(to writer: inout JSONWriter) {
        writer.key("version")
        writer.string(version)
        writer.key("protocol")
        writer.int(protocolVersion)
        writer.key("pid")
        writer.int(pid)
        writer.key("uptime_ms")
        writer.int(uptimeMilliseconds)
    }

    static func decode(_ reader: ObjectReader) throws(ProtocolError) -> PingReply {
        PingReply(
            version: try reader.string("version"),
            protocolVersion: try reader.int("protocol"),
            pid: try reader.int("pid"),
            uptimeMilliseconds: try reader.int("uptime_ms"))
    }
}
