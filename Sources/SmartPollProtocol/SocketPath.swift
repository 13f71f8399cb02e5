/// Where the control socket is, resolved identically by the supervisor and by `smartpollctl`
/// (SPEC section 4).
public enum SocketPath {
    /// The default from the environment: `$SMARTPOLL_SOCKET`, else
    /// `$XDG_RUNTIME_DIR/smartpoll/supervisor.sock`, else `/run/smartpoll/supervisor.sock` for
    /// root and `/tmp/smartpoll-$UID/supervisor.sock` for everyone else.
    ///
    /// An empty variable counts as unset, and so does a relative `XDG_RUNTIME_DIR` (the XDG base
    /// directory specification calls it invalid).
    public static func fromEnvironment(_ environment: [String: String], userID: UInt32) -> String {
        fromEnvironment({ environment[$0] }, userID: userID)
    }

    /// ``fromEnvironment(_:userID:)`` with the variables given by a lookup function, such as
    /// ``ProcessEnvironment/value(_:)``.
    public static func fromEnvironment(_ variable: (String) -> String?, userID: UInt32) -> String {
        if let path = variable("SMARTPOLL_SOCKET"), !path.isEmpty {
            return path
        }
        if let runtime = variable("XDG_RUNTIME_DIR"), runtime.hasPrefix("/") {
            return join(runtime, "smartpoll/supervisor.sock")
        }
        return userID == 0 ? "/run/smartpoll/supervisor.sock" : "/tmp/smartpoll-\(userID)/supervisor.sock"
    }

    /// The supervisor's choice: `--socket` wins over the configuration's `socket`, which wins
    /// over ``fromEnvironment(_:userID:)``.
    public static func resolve(
        explicit: String?, configured: String?, environment: [String: String], userID: UInt32
    ) -> String {
        if let explicit, !explicit.isEmpty { return explicit }
        if let configured, !configured.isEmpty { return configured }
        return fromEnvironment(environment, userID: userID)
    }

    static func join(_ directory: String, _ name: String) -> String {
        directory.hasSuffix("/") ? directory + name : directory + "/" + name
    }
}
