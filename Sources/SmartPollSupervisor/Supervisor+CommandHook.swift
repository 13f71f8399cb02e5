import SmartPollProtocol
#if canImport(Glibc)
import Glibc
#endif

/// Command hooks (SPEC section 4): `emit HOOK DATA` runs the hook's command inside the loop with
/// DATA on stdin and directives on descriptor 3. The loop waits for it: task runs that end
/// meanwhile are handled (their task hooks run) only after the hook has finished, so no task
/// hook runs at the same time as an event hook.
extension Supervisor {
    func runCommandHook(_ name: String, _ hook: HookConfiguration.CommandHook, data: String?, reply: @escaping (Reply.Body) -> Void) {
        guard hookInFlight == nil else {
            // One event hook at a time, in arrival order.
            pendingHooks.append((name, hook, data, reply))
            return
        }
        nextRunID += 1
        let runID = nextRunID
        let environment = childEnvironment(hook.environment, [
            "SMARTPOLL_HOOK": name, "SMARTPOLL_RUN": "\(runID)", "SMARTPOLL_SOCKET": socketPath, "SMARTPOLL_HOOK_FD": "3",
        ])
        let run: TaskRun
        let feeder: InputFeeder
        do throws(SupervisorError) {
            let input = try Pipe()
            let stdout = try Pipe(nonblockingReadEnd: true)
            let stderr = try Pipe(nonblockingReadEnd: true)
            let directives = try Pipe(nonblockingReadEnd: true)
            let process = try ProcessSpawner.spawn(SpawnRequest(
                arguments: hook.command, environment: environment, workingDirectory: hook.workingDirectory,
                standardInput: .fileDescriptor(input.readEnd!), standardOutput: .fileDescriptor(stdout.writeEnd!),
                standardError: .fileDescriptor(stderr.writeEnd!), directives: directives.writeEnd!))
            input.closeReadEnd()
            stdout.closeWriteEnd()
            stderr.closeWriteEnd()
            directives.closeWriteEnd()
            run = TaskRun(
                task: name, taskIndex: -1, runID: runID, generation: generation, due: loop.now, started: loop.now,
                capture: 1 << 20, maximumDirectives: configuration.maximumDirectives, process: process,
                stdout: stdout.takeReadEnd()!, stderr: stderr.takeReadEnd()!, directives: directives.takeReadEnd()!,
                loop: loop, log: log)
            run.isKnownTask = { [unowned self] name in self.indexByName[name] != nil }
            try run.watch()
            let writeEnd = input.takeWriteEnd()!
            do throws(SupervisorError) {
                feeder = try InputFeeder(descriptor: writeEnd, bytes: Array((data ?? "").utf8), loop: loop)
            } catch {
                close(writeEnd)  // the hook then reads end of file instead of waiting forever
                throw error
            }
        } catch {
            log.write(.error, "hook \(name): \(error.message)", [("hook", name)])
            reply(.failure(ProtocolError(.internal, "hook \(name) could not start: \(error.message)")))
            return
        }
        hookInFlight = run
        log.write(.info, "hook started", [("hook", name), ("run", "\(runID)"), ("pid", "\(run.pid)")])
        if let timeout = hook.timeout {
            run.timeoutTimer = loop.schedule(after: timeout) { [weak self, weak run] in
                guard let self, let run else { return }
                run.timedOut = true
                run.signalGroup(SIGTERM)
                run.killTimer = self.loop.schedule(after: .seconds(5)) { [weak run] in run?.signalGroup(SIGKILL) }
            }
        }
        run.onEnd = { [unowned self] run in
            feeder.close()
            self.hookInFlight = nil
            if run.succeeded, run.generation == self.generation, self.loopState == .running {
                for directive in run.directives { self.apply(directive) }
                self.log.write(.info, "hook ran", [("hook", name), ("run", "\(runID)")])
                self.publish(.hookRan(hook: name))
                reply(.ok)
            } else if run.generation != self.generation || self.loopState != .running {
                // The run it belonged to has ended (stop, restart, shutdown): nothing to apply.
                reply(.failure(ProtocolError(.notRunning, "the loop's run ended while hook \(name) ran")))
            } else {
                let reason = run.failureReason ?? "failed"
                self.log.write(.warning, "hook failed: \(reason)", [("hook", name), ("run", "\(runID)")])
                reply(.failure(ProtocolError(.internal, "hook \(name) failed: \(reason); the loop's run ended with that error")))
                // As in the library: an error from an event hook ends the loop's run.
                self.endRun(error: "hook \(name) run \(runID) \(reason)")
            }
            // Task runs that ended while the hook ran now get their task hooks, in order.
            let ended = self.endedDuringHook
            self.endedDuringHook = []
            for taskRun in ended { self.runEnded(taskRun) }
            if let next = self.pendingHooks.first {
                self.pendingHooks.removeFirst()
                if self.loopState == .running {
                    self.runCommandHook(next.name, next.hook, data: next.data, reply: next.reply)
                } else {
                    next.reply(.failure(ProtocolError(.notRunning, "the loop stopped before hook \(next.name) ran")))
                }
            }
            self.checkQuiescent()
            self.pump()
        }
    }
}

/// Writes a command hook's DATA to its stdin without blocking the loop, then closes it.
final class InputFeeder {
    private var descriptor: Int32?
    private let bytes: [UInt8]
    private var offset = 0
    private let loop: EventLoop

    init(descriptor: Int32, bytes: [UInt8], loop: EventLoop) throws(SupervisorError) {
        self.descriptor = descriptor
        self.bytes = bytes
        self.loop = loop
        _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) | O_NONBLOCK)
        if !writeSome() { return }
        try loop.register(descriptor, for: .writable) { [weak self] _ in _ = self?.writeSome() }
    }

    /// Writes what the pipe takes; returns whether more remains.
    private func writeSome() -> Bool {
        guard let descriptor else { return false }
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress! + offset, $0.count - offset) }
            if written < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN { return true }
                break  // EPIPE: the hook does not read its input
            }
            offset += written
        }
        close()
        return false
    }

    func close() {
        guard let descriptor else { return }
        loop.deregister(descriptor)
        Glibc.close(descriptor)
        self.descriptor = nil
    }
}
