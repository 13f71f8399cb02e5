import CSmartPollPosix
import Glibc
import SmartPollProtocol

/// Binding the socket, serving, signals and shutdown (SPEC section 7).
extension Supervisor {
    /// Serves until `shutdown`, SIGTERM or SIGINT; then every task has been ended and reaped
    /// and the socket removed.
    func serve() throws(SupervisorError) {
        // The subtree goes with the supervisor when it is empty (when it exits on an error too).
        defer { cgroups?.removeSubtree() }
        let signals = sp_signalfd_for_shutdown_signals()
        guard signals >= 0 else { throw SupervisorError.systemCall("signalfd", errno: errno) }
        defer { close(signals) }
        let policy = try PeerPolicy(socketGroup: configuration.socketGroup)
        let listener: Int32
        if let activatedListener { listener = activatedListener } else { listener = try bindSocket() }
        defer {
            // A socket systemd passed belongs to its socket unit: it stays, for the next start.
            if activatedListener == nil { unlink(bindPath) }
            close(listener)
        }
        server = try ControlServer(
            loop: loop, listener: listener, maximumConnections: configuration.maximumConnections,
            maximumLineLength: configuration.maximumLineBytes, sendTimeout: configuration.sendTimeout)
        server.log = log
        server.isAuthorized = { uid, gid in policy.allows(userID: uid, groupID: gid) }
        server.handler = { [unowned self] request, client, respond in
            self.handle(request, from: client, respond: respond)
        }
        server.clientsChanged = { [unowned self] in self.metricsChanged() }
        // After the signalfd: the endpoint's thread inherits the mask that blocks its signals.
        try startMetricsEndpoint()
        defer { stopMetricsEndpoint() }
        try loop.register(signals, for: .readable) { [unowned self] _ in
            while case let signal = sp_signalfd_read(signals), signal > 0 {
                if signal == SIGHUP {
                    if !self.isShuttingDown {
                        self.log.write(.info, "SIGHUP received; reloading the configuration")
                        _ = self.reload()
                    }
                } else if !self.isShuttingDown {
                    self.log.write(.info, "\(SignalName.name(signal)) received; shutting down")
                    self.beginShutdown()
                }
            }
        }
        startContainment()
        if let cluster = configuration.cluster {
            try startCluster(cluster)
        } else {
            try restoreState()
        }
        log.write(
            .info, "listening",
            [("socket", socketPath), ("pid", "\(getpid())"), ("tasks", "\(names.count)")]
                + (activatedListener == nil ? [] : [("activated", "systemd")]))
        // A member of a cluster starts the loop once elected.
        if member == nil { requestStart() }
        // The socket accepts (connections queue until the loop runs): systemd may start the
        // units that need the supervisor.
        notifySystemd(["READY=1", "STATUS=" + statusSummary])
        try loop.run()
        log.write(.info, "stopped")
    }

    /// Stops the loop, ends every task (TERM, then KILL after its grace), refuses new requests,
    /// and exits once every task has been reaped.
    func beginShutdown() {
        guard !isShuttingDown else { return }
        notifySystemd(["STOPPING=1", "STATUS=shutting down: ending every task"])
        // What is due stays due across the restart: the final write keeps the schedules as
        // they are now, before ending the loop's run clears them.
        persistence?.frozenSchedules = currentSchedules()
        isShuttingDown = true
        server.isShuttingDown = true
        endRun(error: nil)
        checkQuiescent()
    }

    func finishShutdown() {
        // Reached again when a run that ended while a command hook ran is accounted for.
        guard !hasShutDown else { return }
        hasShutDown = true
        if member != nil { return leaveCluster() }
        finalStateWrite()
        server.shutdown()
        loop.stop()
    }

    /// Says which containment is in force and, before anything runs, ends what a previous life
    /// of this supervisor left in its cgroups (after a crash), so that no task has two runs at
    /// once.
    private func startContainment() {
        if let cgroups {
            log.write(.info, "containment: a cgroup per run", [("mode", "cgroup"), ("root", cgroups.path)])
            for report in cgroups.endLeftovers() {
                log.write(.warning, "containment: \(report)", [("mode", "cgroup")])
            }
        } else {
            let reason = cgroupUnavailable.map { " (\($0))" } ?? ""
            log.write(.info, "containment: a child subreaper\(reason)", [("mode", "subreaper")])
            if let report = subreaper?.endLeftovers() {
                log.write(.warning, "containment: \(report)", [("mode", "subreaper")])
            }
            subreaper?.start()
        }
    }

    /// Creates the parent directory (0700) if missing, refuses a socket a live supervisor
    /// answers on, replaces a stale one, and listens.
    private func bindSocket() throws(SupervisorError) -> Int32 {
        let path = bindPath
        let directory = SocketFolder.folder(of: path)
        if mkdir(directory, 0o700) == 0 {
            // Members of socket_group must be able to reach the socket inside.
            if let name = configuration.socketGroup, let group = getgrnam(name) {
                if chown(directory, UInt32.max, group.pointee.gr_gid) != 0 || chmod(directory, 0o710) != 0 {
                    log.write(
                        .warning,
                        "cannot give \(directory) to group \(name): \(SupervisorError.errorText(errno)); "
                            + "its members cannot reach the socket")
                }
            }
        } else if errno != EEXIST {
            throw SupervisorError(
                code: .systemCallFailed, message: "cannot create \(directory): \(SupervisorError.errorText(errno))")
        }
        // Nobody else may be able to replace what is bound, unlinked or connected to here.
        try SocketFolder.check(directory)
        if try SocketFolder.existingSocket(at: path) {
            let probe = sp_connect_unix(path)
            if probe >= 0 {
                close(probe)
                throw SupervisorError(
                    code: .systemCallFailed, message: "another supervisor is already listening on \(path)")
            }
            // Nobody listens: a stale socket left by a supervisor that was killed.
            if errno == ECONNREFUSED { unlink(path) }
        }
        let listener = sp_listen_unix(path, 128, configuration.socketMode)
        guard listener >= 0 else {
            throw SupervisorError(
                code: .systemCallFailed, message: "cannot listen on \(path): \(SupervisorError.errorText(errno))")
        }
        // Members of socket_group need the file's group to connect with a 0660 mode.
        if let name = configuration.socketGroup, let group = getgrnam(name) {
            if lchown(path, UInt32.max, group.pointee.gr_gid) != 0 {
                log.write(
                    .warning,
                    "cannot give \(path) to group \(name): \(SupervisorError.errorText(errno)); "
                        + "its members cannot connect")
            }
        }
        return listener
    }
}
