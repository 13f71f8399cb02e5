import CSmartPollPosix
import Glibc
import SmartPollProtocol

/// The command line of `smartpoll-supervisor`, parsed.
public struct SupervisorOptions: Sendable {
    public static let version = Supervisor.version
    public var configuration: String?
    public var socket: String?
    public var checkOnly = false
    public var logFormat = "text"
    public var logLevel = "info"

    public init() {}
}

/// What `smartpoll-supervisor` does with its options.
public enum SupervisorMain {
    /// Validates the configuration and either returns a `--check` summary or serves until
    /// shutdown (returning nil).
    public static func run(
        _ options: SupervisorOptions, environment: [String: String]
    ) throws(SupervisorError) -> String? {
        guard let format = SupervisorLog.Format(rawValue: options.logFormat) else {
            throw SupervisorError(
                code: .usage,
                message: "--log-format takes text or json, not \(JSONValue.string(options.logFormat).serialized())")
        }
        guard let level = SupervisorLog.Level(name: options.logLevel) else {
            throw SupervisorError(
                code: .usage,
                message:
                    "--log-level takes debug, info, warning or error, not \(JSONValue.string(options.logLevel).serialized())"
            )
        }
        // Absolute, as `reload` replies it and the log names it.
        let path = absolute(try ConfigurationFile.locate(explicit: options.configuration, environment: environment))
        let configuration = try ConfigurationFile.load(path)
        // Absolute, as tasks see it in SMARTPOLL_SOCKET: a task with a cwd of its own must reach
        // the same socket.
        let given = SocketPath.resolve(
            explicit: options.socket, configured: configuration.socket, environment: environment, userID: getuid())
        let socket = absolute(given)
        // A socket address holds 107 bytes: a relative path that fits is bound as given even
        // when its absolute form would not (tasks still get the absolute one).
        let bindPath = socket.utf8.count < 108 ? socket : given
        if options.checkOnly {
            return "\(path): valid: \(configuration.tasks.count) task\(configuration.tasks.count == 1 ? "" : "s"), "
                + "\(configuration.hooks.count) hook\(configuration.hooks.count == 1 ? "" : "s"); socket \(socket)"
                + (configuration.metricsListen.map { "; metrics http://\($0)/metrics" } ?? "") + "\n"
                + configuration.firstRunSummary.joined(separator: "\n")
        }
        let log = SupervisorLog(format: format, level: level)
        log.writer.setReport { count in log.line(.warning, SupervisorLog.droppedMessage(count)) }
        // A running run holds about ten descriptors (three pipes, both ends of each until its
        // process exits, a pidfd, its cgroup's files) and each client one: the soft limit goes
        // up to the hard one; children start with the soft limit the supervisor was given.
        var before: UInt64 = 0
        var after: UInt64 = 0
        if sp_raise_nofile_limit(&before, &after) != 0 {
            log.write(
                .warning, "cannot raise the limit of open descriptors: \(SupervisorError.errorText(errno))",
                [("nofile", "\(before)")])
        } else if after != before {
            log.write(.debug, "raised the soft limit of open descriptors", [("from", "\(before)"), ("to", "\(after)")])
        }
        // The log is written by a thread of its own: what it still holds goes out before the exit
        // (or before the error that ends it), waiting at most 1 s for a destination that does not
        // read.
        defer { log.writer.flush(within: .seconds(1)) }
        let supervisor = try Supervisor(
            configuration: configuration, socketPath: socket, bindPath: bindPath, log: log, environment: environment)
        try supervisor.serve()
        return nil
    }
}

extension SupervisorError {
    /// The process exit status for this error: 64 usage, 78 configuration, 1 otherwise.
    public var exitStatus: Int32 {
        switch code {
        case .usage: return 64
        case .configurationNotFound, .invalidConfiguration: return 78
        default: return 1
        }
    }
}

/// `path` made absolute against the working directory (as it is when `path` is absolute, or
/// when the working directory cannot be named).
private func absolute(_ path: String) -> String {
    if path.hasPrefix("/") { return path }
    let directory = currentDirectory()
    if directory.isEmpty { return path }
    // A String, not a Substring: appending a Substring goes through the generic
    // append(contentsOf:), a Character at a time (87k instructions for one path).
    let relative = path.hasPrefix("./") ? String(path.utf8.dropFirst(2))! : path
    return directory.hasSuffix("/") ? directory + relative : directory + "/" + relative
}

/// The working directory, or "" when it cannot be named (deleted, say). glibc's getcwd
/// allocates the string; reading it through a 4 KiB Swift array cost 90k instructions a start.
private func currentDirectory() -> String {
    guard let pointer = getcwd(nil, 0) else { return "" }
    defer { free(pointer) }
    return String(decoding: UnsafeRawBufferPointer(start: pointer, count: strlen(pointer)), as: UTF8.self)
}
