import SmartPollProtocol

/// Command hooks (SPEC section 4): `emit HOOK DATA` runs the hook's command inside the loop with
/// DATA on stdin and directives on descriptor 3. The loop waits for it: task runs that end
/// meanwhile are handled (their task hooks run) only after the hook has finished, so no task
/// hook runs at the same time as an event hook.
extension Supervisor {
    /// Runs the hook now, or after those already waiting: one event hook at a time, in
    /// arrival order.
    func runCommandHook(_ emit: CommandHookQueue.Emit) {
        hooks.pending.append(emit)
        startNextHook()
    }

    /// Starts the first `emit` waiting, unless a hook runs; one that cannot start is answered
    /// and the next one tried.
    private func startNextHook() {
        while hooks.inFlight == nil, !hooks.pending.isEmpty {
            let next = hooks.pending.removeFirst()
            guard loopStatus.state == .running else {
                refuseStopped(next)
                continue
            }
            launchHook(next)
        }
    }

    /// Answers an `emit` whose hook will not run: the loop stopped first.
    func refuseStopped(_ emit: CommandHookQueue.Emit) {
        emit.reply(.failure(ProtocolError(.notRunning, "the loop stopped before hook \(emit.name) ran")))
    }

    private func launchHook(_ emit: CommandHookQueue.Emit) {
        let runID = takeRunID()
        let hook = emit.hook
        var variables = [
            "SMARTPOLL_HOOK": emit.name, "SMARTPOLL_RUN": "\(runID)", "SMARTPOLL_SOCKET": socketPath,
            "SMARTPOLL_HOOK_FD": "3",
        ]
        if let fence = member?.fence { variables["SMARTPOLL_FENCE"] = "\(fence)" }
        var environment = childEnvironment(hook.environment, variables)
        if member?.fence == nil { environment.removeAll { $0.hasPrefix("SMARTPOLL_FENCE=") } }
        let specification = TaskRun.Specification(
            owner: .hook(name: emit.name), runID: runID, generation: generation, due: loop.now,
            command: SpawnRequest(
                arguments: hook.command, environment: environment, workingDirectory: hook.workingDirectory),
            input: emit.data ?? [], capture: 1 << 20, maximumDirectives: configuration.maximumDirectives,
            timeout: hook.timeout, teardown: Teardown(grace: hook.killGrace),
            stderrLimiter: StderrRateLimiter(rate: hook.logRate, burst: hook.logBurst, now: loop.now))
        let run: TaskRun
        do {
            run = try launch(specification)
        } catch {
            log.write(.error, "hook \(emit.name): \(error.message)", [("hook", emit.name)])
            return emit.reply(.failure(ProtocolError(.internal, "hook \(emit.name) could not start: \(error.message)")))
        }
        hooks.inFlight = CommandHookQueue.InFlight(run: run, reply: emit.reply)
        log.write(.info, "hook started", [("hook", emit.name), ("run", "\(runID)"), ("pid", "\(run.pid)")])
    }

    /// The hook's run ended: its directives (when it succeeded in the loop's current run), its
    /// reply, the task hooks that waited for it, and the next `emit`.
    func commandHookEnded(_ run: TaskRun) {
        guard let reply = hooks.inFlight?.reply else { return }
        hooks.inFlight = nil
        let name = run.name
        let current = run.generation == generation && loopStatus.state == .running
        if current && run.succeeded {
            for directive in run.directives {
                if let change = policy.apply(directive, now: now, instant: instant) { carryOut([change]) }
            }
            log.write(.info, "hook ran", [("hook", name), ("run", "\(run.runID)")])
            publish(.hookRan(hook: name))
            reply(.ok)
        } else if !current {
            // The run it belonged to has ended (stop, restart, shutdown): nothing to apply.
            reply(.failure(ProtocolError(.notRunning, "the loop's run ended while hook \(name) ran")))
        } else {
            let reason = run.failureReason ?? "failed"
            log.write(.warning, "hook failed: \(reason)", [("hook", name), ("run", "\(run.runID)")])
            reply(
                .failure(
                    ProtocolError(.internal, "hook \(name) failed: \(reason); the loop's run ended with that error")))
            // As in the library: an error from an event hook ends the loop's run.
            endRun(error: "hook \(name) run \(run.runID) \(reason)")
        }
        // Task runs that ended while the hook ran now get their task hooks, in order.
        let ended = hooks.endedDuringHook
        hooks.endedDuringHook = []
        for end in ended { taskRunEnded(end) }
        startNextHook()
        checkQuiescent()
        pump()
    }
}
