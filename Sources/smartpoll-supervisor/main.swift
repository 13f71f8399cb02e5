// smartpoll-supervisor: the daemon. Argument parsing and exit statuses only; the work is in
// SmartPollSupervisor.
import Glibc
import SmartPollProtocol
import SmartPollSupervisor

let usage = """
    usage: smartpoll-supervisor [--config FILE] [--socket PATH] [--check]
                                [--log-format text|json] [--log-level debug|info|warning|error]

    Runs the smartpoll control loop: named tasks as child processes, scheduled by each other and by
    smartpollctl over a Unix socket.

      --config FILE       configuration (default: $SMARTPOLL_CONFIG, ./smartpoll.json,
                          $XDG_CONFIG_HOME/smartpoll/smartpoll.json, /etc/smartpoll/smartpoll.json)
      --socket PATH       control socket (default: the configuration's socket, $SMARTPOLL_SOCKET,
                          $XDG_RUNTIME_DIR/smartpoll/supervisor.sock, /run/smartpoll/supervisor.sock
                          for root, /tmp/smartpoll-$UID/supervisor.sock otherwise)
      --check             validate the configuration, print a summary, and exit
      --log-format FMT    text (default) or json, one line per event on stderr
      --log-level LEVEL   debug, info (default), warning or error
      -h, --help          this help
      --version           the version

    Signals: SIGTERM or SIGINT shut down gracefully; SIGHUP reloads the configuration.
    With "state_dir" in the configuration, results and schedules survive restarts and crashes.
    Under systemd: Type=notify readiness (NOTIFY_SOCKET) and socket activation (LISTEN_FDS).

    Exit status: 0 after a clean shutdown or a valid --check; 64 usage; 78 configuration not found
    or invalid; 1 another failure (for instance, another supervisor owns the socket).
    See smartpoll-supervisor(8) and smartpoll.json(5).

    """

/// Every line of `message` (a configuration error lists one problem a line) gets the prefix.
func fail(_ status: Int32, _ message: String) -> Never {
    let text = message.split(separator: "\n", omittingEmptySubsequences: false)
        .map { $0.isEmpty ? "" : "smartpoll-supervisor: \($0)" }.joined(separator: "\n")
    var line = Array((text.hasSuffix("\n") ? text : text + "\n").utf8)
    _ = line.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
    exit(status)
}

var options = SupervisorOptions()
var arguments = CommandLine.arguments.dropFirst()
while let argument = arguments.popFirst() {
    func value() -> String {
        guard let next = arguments.popFirst() else {
            fail(64, "\(argument) needs a value (see smartpoll-supervisor --help)")
        }
        return next
    }
    switch argument {
    case "--config": options.configuration = value()
    case "--socket": options.socket = value()
    case "--check": options.checkOnly = true
    case "--log-format": options.logFormat = value()
    case "--log-level": options.logLevel = value()
    case "-h", "--help":
        print(usage, terminator: "")
        exit(0)
    case "--version":
        print("smartpoll-supervisor \(SupervisorOptions.version)")
        exit(0)
    default:
        fail(64, "unknown argument \"\(argument)\" (see smartpoll-supervisor --help)")
    }
}

do {
    if let summary = try SupervisorMain.run(options, environment: ProcessEnvironment.current()) {
        print(summary)
    }
    exit(0)
} catch {
    fail(error.exitStatus, error.message)
}
