import SmartPollProtocol

/// What `smartpollctl` prints for people (without `--json`).
enum Rendering {
    static func status(_ status: StatusReply, now: Timestamp, display: TimeDisplay) -> String {
        let loop = status.loop
        var header = "loop: \(loop.state.rawValue)"
        if let restartAt = loop.restartAt {
            // `loop: failed, restarting in 8s (since 01:44:32.123, 3.0s ago), run 2`
            let delta = restartAt.nanosecondsSinceEpoch - now.nanosecondsSinceEpoch
            header += delta > 50_000_000 ? ", restarting in \(HumanFormat.span(delta))" : ", restarting now"
            if let since = loop.since {
                header += " (since \(display.clock(since)), \(HumanFormat.relative(since, now: now)))"
            }
        } else if let since = loop.since {
            header += " since \(display.clock(since)) (\(HumanFormat.relative(since, now: now)))"
        }
        header += ", run \(loop.runs)"
        if let cluster = status.cluster { header = clusterLine(cluster) + "\n" + header }
        if let error = loop.error { header += "\nerror: \(error)" }
        if let state = status.stateFile {
            if let error = state.error {
                let since =
                    state.failingSince.map { " since \(display.clock($0)) (\(HumanFormat.relative($0, now: now)))" }
                    ?? ""
                header += "\nstate: NOT SAVED\(since): \(error)"
            } else if let saved = state.saved {
                let when = HumanFormat.relative(saved, now: now)
                header += "\nstate: saved \(when == "now" ? "just now" : when) to \(state.path)"
            } else {
                header += "\nstate: \(state.path) (nothing written yet)"
            }
        }
        var rows = [["TASK", "STATE", "NEXT", "LAST", "EXIT", "RUNS", "FAILURES", "CANCELLED"]]
        for task in status.tasks {
            var state =
                task.running
                ? "running" + (task.pid.map { " (\($0))" } ?? "")
                : task.ready ? "ready" : task.scheduled ? "scheduled" : "idle"
            if task.paused {
                state =
                    task.running
                    ? state + ", paused" : task.ready ? "paused, ready" : "paused"
            }
            let next = task.next.map { HumanFormat.relative($0, now: now) } ?? "-"
            let last = task.last.map { HumanFormat.relative($0.ended, now: now) } ?? "-"
            let exit =
                task.last.map { HumanFormat.outcome(exitCode: $0.exitCode, signal: $0.signal, timedOut: $0.timedOut) }
                ?? "-"
            rows.append([task.name, state, next, last, exit, "\(task.runs)", "\(task.failures)", "\(task.cancelled)"])
        }
        var hooks = ""
        for hook in status.hooks {
            if hook.running {
                let since = hook.started.map { ", started \(HumanFormat.relative($0, now: now))" } ?? ""
                hooks +=
                    "\nhook \(hook.name): running" + (hook.pid.map { " (\($0))" } ?? "")
                    + (hook.run.map { ", run \($0)" } ?? "") + since
            } else {
                hooks += "\nhook \(hook.name): waiting for the hook before it"
            }
        }
        return header + hooks + "\n" + HumanFormat.table(rows)
    }

    /// The first line of a cluster member's table: `cluster: leader (node a), fence 3.9s left`
    /// or `cluster: standby (node b), leader a, lease 4.1s left` (`no leader` when none is known).
    static func clusterLine(_ cluster: ClusterStatus) -> String {
        var line = "cluster: \(cluster.role.rawValue) (node \(cluster.node))"
        if cluster.role == .standby { line += cluster.leader.map { ", leader \($0)" } ?? ", no leader" }
        if let left = cluster.leaseLeftMilliseconds {
            line += ", \(cluster.role == .leader ? "fence" : "lease") \(HumanFormat.span(Int64(left) * 1_000_000)) left"
        }
        return line
    }

    /// `smartpollctl run --wait`'s line for a failed run: `w1 run 7 failed: exit 3: last stderr
    /// line` (or `signal 9 (KILL)`, `timed out`, `cancelled`, or the error, such as an invalid
    /// directive).
    static func runFailure(_ outcome: RunOutcome) -> String {
        var what: String
        if outcome.cancelled {
            what = "cancelled"
        } else if outcome.timedOut {
            what = "timed out"
        } else if let signal = outcome.signal {
            let name = HumanFormat.signalName(signal)
            what = "signal \(signal)" + (name.hasPrefix("SIG") ? " (\(name.dropFirst(3)))" : "")
        } else if let exitCode = outcome.exitCode, exitCode != 0 {
            what = "exit \(exitCode)"
        } else {
            what = outcome.error ?? "failed"
        }
        if let line = outcome.lastStderrLine { what += ": " + line }
        return "\(outcome.task) run \(outcome.run) failed: \(what)"
    }

    static func event(_ event: Event, display: TimeDisplay) -> String {
        let time = display.clock(event.time)
        switch event.kind {
        case .loopStarted: return "\(time) loop started"
        case .loopStopped: return "\(time) loop stopped"
        case .loopFailed(let error): return "\(time) loop failed: \(error)"
        case .taskScheduled(let task, let next):
            return "\(time) \(task) scheduled " + (next.map { HumanFormat.relative($0, now: event.time) } ?? "")
        case .taskUnscheduled(let task): return "\(time) \(task) unscheduled"
        case .taskStarted(let task, let run, let pid, _, let late):
            let late = late.map { " late \(HumanFormat.milliseconds($0))" } ?? ""
            return "\(time) \(task) started run \(run) pid \(pid)\(late)"
        case .taskFinished(
            let task, let run, let exitCode, let signal, let timedOut, let succeeded, let duration, _, let changed):
            let outcome = HumanFormat.outcome(exitCode: exitCode, signal: signal, timedOut: timedOut)
            return
                "\(time) \(task) \(succeeded ? "finished" : "failed") run \(run) exit \(outcome) in \(HumanFormat.span(Int64(duration * 1e6)))\(changed ? ", changed" : "")"
        case .hookRan(let hook): return "\(time) hook \(hook) ran"
        case .taskPaused(let task): return "\(time) \(task) paused"
        case .taskResumed(let task): return "\(time) \(task) resumed"
        case .taskLog(_, let run, let line): return logLine(time: event.time, run: run, line: line, display: display)
        case .leaderChanged(let leader, let role):
            return "\(time) leader " + (leader.map { "is \($0)" } ?? "unknown") + ", this member \(role.rawValue)"
        case .configReloaded(let added, let changed, let removed):
            return "\(time) configuration reloaded: " + reloadSummary(added: added, changed: changed, removed: removed)
        }
    }

    /// `history`'s table, newest first: `RUN STARTED DURATION EXIT CHANGED BYTES LAST STDERR`;
    /// STARTED as `status` shows times (local, or UTC with `--utc`).
    static func history(_ history: HistoryReply, display: TimeDisplay) -> String {
        var rows = [["RUN", "STARTED", "DURATION", "EXIT", "CHANGED", "BYTES", "LAST STDERR"]]
        for entry in history.entries {
            let run = entry.run
            var outcome = HumanFormat.outcome(exitCode: run.exitCode, signal: run.signal, timedOut: run.timedOut)
            if let error = run.error, run.exitCode == nil, run.signal == nil, !run.timedOut { outcome = error }
            rows.append([
                "\(run.run)", display.full(run.started), HumanFormat.milliseconds(run.durationMilliseconds), outcome,
                entry.changed ? "yes" : "no", "\(entry.outputBytes)", entry.stderrLast ?? "-",
            ])
        }
        if history.entries.isEmpty { return "\(history.task): no finished runs kept" }
        return HumanFormat.table(rows)
    }

    /// A line of `logs`: `17:05:03.123 run 3: fetched 12 records`.
    static func logLine(time: Timestamp, run: Int, line: String, display: TimeDisplay) -> String {
        "\(display.clock(time)) run \(run): \(line)"
    }

    /// `added b; changed a, c; removed d`, or `no task changed`.
    static func reloadSummary(added: [String], changed: [String], removed: [String]) -> String {
        let parts = [("added", added), ("changed", changed), ("removed", removed)]
            .filter { !$0.1.isEmpty }
            .map { "\($0.0) \($0.1.joined(separator: ", "))" }
        return parts.isEmpty ? "no task changed" : parts.joined(separator: "; ")
    }

    static func reload(_ reload: ReloadReply) -> String {
        var text =
            "reloaded \(reload.file): "
            + reloadSummary(added: reload.added, changed: reload.changed, removed: reload.removed)
        if !reload.restartNeeded.isEmpty {
            text += "\nnote: \(reload.restartNeeded.joined(separator: ", ")) changed; restart the supervisor to apply"
        }
        return text
    }
}
