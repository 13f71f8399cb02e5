import SmartPollClient
import SmartPollProtocol
import SmartPollSystem

// smartpollctl: the command-line client of smartpoll-supervisor. Hand-parsed arguments and a
// blocking socket keep its whole-process time near a C client's (it runs in shell loops).
#if hasFeature(Embedded)
import CSmartPollPosix
#else
import Glibc
#endif

func standardError(_ text: String) {
    let bytes = Array(text.utf8)
    // The message is all there is to report with: if stderr cannot take it, nothing can.
    _ = try? SystemCall.retrying { bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) } }
}

func standardOutput(_ bytes: [UInt8]) {
    bytes.withUnsafeBytes { standardOutput($0) }
}

func standardOutput(_ bytes: UnsafeRawBufferPointer) {
    var offset = 0
    while offset < bytes.count {
        // A reader that went away (EPIPE) or a full disk: the output is incomplete, so the
        // status says so; there is no channel left to say more.
        guard
            let written = try? SystemCall.retrying({ write(1, bytes.baseAddress! + offset, bytes.count - offset) }),
            written > 0
        else { exit(1) }
        offset += written
    }
}

/// `text` and a newline on stdout in one write(2). Not print: it goes through stdio and casts
/// its argument to TextOutputStreamable and friends, which scans every protocol conformance of
/// the binary (70k instructions of smartpollctl status's 800k).
func printLine(_ text: String) {
    var line = text
    line.append("\n")
    line.withUTF8 { standardOutput(UnsafeRawBufferPointer($0)) }
}

func fail(_ status: Int32, _ code: String, _ message: String) -> Never {
    standardError("smartpollctl: \(code): \(message)\n")
    exit(status)
}

/// The whole command, in a function: main.swift's top-level variables would be globals, which
/// Embedded Swift (make release) refuses as shared mutable state.
func runCommand() -> Never {
    let environment: (String) -> String? = ProcessEnvironment.value
    let arguments = CtlArguments.programArguments()
    // Help anywhere among the options, but not after `--`, where `-h` is an argument (data).
    let options = arguments.prefix(while: { $0 != "--" })
    if options.contains("-h") || options.contains("--help") || arguments.first == "help" {
        standardOutput(Array(usage.utf8))
        exit(0)
    }
    if arguments == ["--version"] {
        printLine("smartpollctl 0.1.0")
        exit(0)
    }
    let parsed: CtlArguments
    do throws(CtlArguments.UsageError) {
        parsed = try CtlArguments.parse(arguments, environment: environment)
    } catch {
        standardError("smartpollctl: usage: \(error.message) (see smartpollctl --help)\n")
        exit(2)
    }

    if let directive = parsed.directive {
        exit(HookDirective.write(directive, environment: environment))
    }

    var command = parsed.request!
    if parsed.dataFromStandardInput, case .emit(let hook, _) = command {
        var data: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            // A read error ends the data as end of file does, as it always has.
            let count =
                (try? SystemCall.retrying {
                    buffer.withUnsafeMutableBytes { read(0, $0.baseAddress, $0.count) }
                }) ?? 0
            if count == 0 { break }
            data.append(contentsOf: buffer[..<count])
        }
        command = .emit(hook: hook, data: data)
    }

    let display = TimeDisplay(utc: parsed.utc)
    let socket = parsed.socket ?? SocketPath.fromEnvironment(environment, userID: getuid())
    let client: ControlClient
    do throws(ControlClient.Failure) {
        client = try ControlClient(path: socket)
        client.setTimeout(parsed.timeout)
    } catch {
        fail(69, "unreachable", error.description)
    }

    let request = Request(id: .int(1), command: command)
    let reply: Reply
    let line: [UInt8]
    do throws(ControlClient.Failure) {
        (reply, line) = try client.call(request)
    } catch .timedOut(let message) {
        fail(75, "timeout", message)
    } catch {
        fail(69, "unreachable", error.description)
    }

    if case .failure(let error) = reply.body {
        if parsed.json { standardOutput(line + [10]) }
        fail(1, error.code.rawValue, error.message)
    }

    if case .logs(_, _, let follow) = command, case .logs(let logs) = reply.body {
        if parsed.json {
            standardOutput(line + [10])
        } else {
            var text = ""
            for entry in logs.lines {
                text += Rendering.logLine(time: entry.time, run: entry.run, line: entry.line, display: display) + "\n"
            }
            standardOutput(Array(text.utf8))
        }
        if !follow { exit(0) }
    }

    var streamsEvents = false
    if case .watch = command { streamsEvents = true }
    if case .logs(_, _, true) = command { streamsEvents = true }
    if streamsEvents {
        // After `watch` (reply {"ok":true}) or `logs -f`: events, one per line, until the
        // supervisor goes away.
        client.deadline = nil
        while true {
            let event: [UInt8]
            do {
                event = try client.readLine()
            } catch {
                exit(0)
            }
            if parsed.json {
                standardOutput(event + [10])
            } else if let decoded = try? Event.decode(event) {
                standardOutput(Array((Rendering.event(decoded, display: display) + "\n").utf8))
            }
        }
    }

    if parsed.json {
        standardOutput(line + [10])
        if case .runFinished(let outcome) = reply.body { exit(outcome.shellExitStatus) }
        exit(0)
    }

    switch reply.body {
    case .ping(let ping):
        printLine(
            "smartpoll-supervisor \(ping.version) (protocol \(ping.protocolVersion)), pid \(ping.pid), up \(HumanFormat.span(Int64(ping.uptimeMilliseconds) * 1_000_000))"
        )
    case .status(let status):
        printLine(Rendering.status(status, now: Timestamp.now(), display: display))
    case .schedule(let schedule):
        if schedule.ready {
            printLine(
                "\(schedule.task): ready, " + (schedule.running ? "after its current run" : "waiting to start"))
        } else if let next = schedule.next {
            printLine(
                "\(schedule.task): next \(HumanFormat.relative(next, now: Timestamp.now())) (\(display.full(next)))")
        } else if schedule.running, case .schedule(_, let when, _) = command, !when.clears {
            // Due now, and idle until this request: the request started it.
            printLine("\(schedule.task): starting now")
        } else {
            printLine("\(schedule.task): not scheduled")
        }
    case .pause(let pause):
        printLine("\(pause.task): \(pause.paused ? "paused" : "resumed")")
    case .stopTimer(let stopTimer):
        printLine("\(stopTimer.task): \(stopTimer.ready ? "ready" : "not scheduled")")
    case .result(let result):
        standardOutput(result.output)
        if result.truncated {
            standardError("smartpollctl: note: the output of \(result.task) run \(result.run) was truncated\n")
        }
    case .noResult(let task):
        standardError("smartpollctl: note: \(task) has no successful run yet\n")
    case .results(let results):
        for result in results {
            // One stream (write(2)) for headers and outputs, so that they interleave in order.
            standardOutput(
                Array(
                    "== \(result.task) (run \(result.run), \(display.full(result.time))\(result.truncated ? ", truncated" : "")) ==\n"
                        .utf8))
            standardOutput(result.output)
            if result.output.last != 10 && !result.output.isEmpty { standardOutput([10]) }
        }
    case .runFinished(let outcome):
        if let output = outcome.output {
            standardOutput(output)
            if outcome.truncated {
                standardError("smartpollctl: note: the output of \(outcome.task) run \(outcome.run) was truncated\n")
            }
        }
        if !outcome.succeeded { standardError("smartpollctl: " + Rendering.runFailure(outcome) + "\n") }
        exit(outcome.shellExitStatus)
    case .reloaded(let reload):
        printLine(Rendering.reload(reload))
    case .ok:
        if case .unschedule(let task) = command { printLine("\(task): not scheduled") }
    case .history(let history):
        printLine(Rendering.history(history, display: display))
    case .metrics(let metrics):
        // As the HTTP endpoint serves it: the text exactly, its last newline included.
        standardOutput(Array(metrics.text.utf8))
    case .failure, .logs:
        break
    }
    exit(0)
}

runCommand()

extension ScheduleTime {
    /// A negative delay or `"at": null`: the request clears the schedule.
    fileprivate var clears: Bool {
        switch self {
        case .after(let delay): delay < .zero
        case .at(let time): time == nil
        }
    }
}
