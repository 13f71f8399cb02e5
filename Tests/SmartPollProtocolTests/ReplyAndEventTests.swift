import SmartPollProtocol
import Testing

@Suite("Replies and events")
struct ReplyAndEventTests {
    static let time = Timestamp(nanosecondsSinceEpoch: 1_796_003_072_123_000_000)

    @Test("generic and error replies have the SPEC shape with id first")
    func genericAndErrorShapes() {
        #expect(Reply(id: 7, body: .ok).encoded() == #"{"id":7,"ok":true}"#)
        #expect(Reply(body: .ok).encoded() == #"{"id":null,"ok":true}"#)
        #expect(
            Reply(id: "x", body: .failure(ProtocolError(.notRunning, "the loop is stopped"))).encoded()
                == #"{"id":"x","ok":false,"error":{"code":"not_running","message":"the loop is stopped"}}"#)
        let request = Request(id: 3.5, command: .ping)
        #expect(Reply(to: request, body: .ok).id == .double(3.5))
    }

    @Test("a result that is valid UTF-8 is output, anything else output_base64")
    func resultOutputEncoding() throws {
        let text = TaskResult(task: "t", run: 1, time: Self.time, output: Array("héllo\n".utf8), truncated: false)
        #expect(Reply(id: 1, body: .result(text)).encoded().contains(#""output":"héllo\n""#))
        let binary = TaskResult(task: "t", run: 1, time: Self.time, output: [0x68, 0xC3], truncated: true)
        let line = Reply(id: 1, body: .result(binary)).encoded()
        #expect(line.contains(#""output_base64":"aMM=""#))
        #expect(!line.contains(#""output":"#))
        #expect(try Reply.decode(line, for: .result(task: "t")).body == .result(binary))
        let empty = TaskResult(task: "t", run: 1, time: Self.time, output: [], truncated: false)
        #expect(
            try Reply.decode(Reply(id: 1, body: .result(empty)).encoded(), for: .result(task: "t")).body
                == .result(empty))
    }

    @Test("decoding a reply ignores keys it does not know")
    func replyDecodingIgnoresUnknownKeys() throws {
        let reply = try Reply.decode(
            #"{"id":1,"ok":true,"task":"w","ready":false,"new_key":[1]}"#, for: .stopTimer(task: "w"))
        #expect(reply.body == .stopTimer(StopTimerReply(task: "w", ready: false)))
        let ok = try Reply.decode(#"{"id":1,"ok":true,"anything":1}"#, for: .shutdown)
        #expect(ok.body == .ok)
    }

    @Test("a reload reply lists what changed, and a bare ok from an older supervisor reads as nothing listed")
    func reloadReplyShapes() throws {
        let reload = ReloadReply(file: "s.json", added: ["b"], changed: [], removed: ["a"], restartNeeded: ["socket"])
        let line = Reply(id: 1, body: .reloaded(reload)).encoded()
        #expect(
            line
                == #"{"id":1,"ok":true,"file":"s.json","added":["b"],"changed":[],"removed":["a"],"restart_needed":["socket"]}"#
        )
        #expect(try Reply.decode(line, for: .reload).body == .reloaded(reload))
        let bare = try Reply.decode(#"{"id":1,"ok":true}"#, for: .reload)
        #expect(bare.body == .reloaded(ReloadReply(file: "", added: [], changed: [], removed: [], restartNeeded: [])))
        #expect(throws: ProtocolError.self) { try Reply.decode(#"{"id":1,"ok":true,"added":[1]}"#, for: .reload) }
    }

    @Test("status carries the state file's health, null without a state_dir, and an older reply without it decodes")
    func statusStateFile() throws {
        let loop = LoopStatus(state: .running, since: nil, runs: 1, error: nil)
        let failing = StateFileStatus(path: "/s/state.json", saved: nil, error: "disk full", failingSince: Self.time)
        let line = Reply(id: 1, body: .status(StatusReply(loop: loop, tasks: [], stateFile: failing))).encoded()
        #expect(
            line.hasSuffix(
                #","state_file":{"path":"/s/state.json","saved":null,"error":"disk full","failing_since":"2026-11-30T01:44:32.123Z"},"hooks":[]}"#
            ))
        #expect(
            try Reply.decode(line, for: .status(tasks: nil)).body
                == .status(StatusReply(loop: loop, tasks: [], stateFile: failing)))
        #expect(
            Reply(id: 1, body: .status(StatusReply(loop: loop, tasks: []))).encoded().hasSuffix(
                #""tasks":[],"state_file":null,"hooks":[]}"#))
        let older = try Reply.decode(
            #"{"ok":true,"loop":{"state":"running","since":null,"runs":1,"error":null},"tasks":[]}"#,
            for: .status(tasks: nil))
        #expect(older.body == .status(StatusReply(loop: loop, tasks: [])))
    }

    @Test("a task's paused flag follows cancelled, and a task row without it (an older supervisor) reads as not paused")
    func statusPaused() throws {
        let loop = LoopStatus(state: .running, since: nil, runs: 1, error: nil)
        let row = TaskStatus(
            name: "w", scheduled: false, ready: true, next: nil, running: false, pid: nil, run: nil, runs: 0,
            failures: 0, cancelled: 0, paused: true, last: nil)
        let line = Reply(id: 1, body: .status(StatusReply(loop: loop, tasks: [row]))).encoded()
        #expect(line.contains(#""cancelled":0,"paused":true,"last":null"#))
        #expect(try Reply.decode(line, for: .status(tasks: nil)).body == .status(StatusReply(loop: loop, tasks: [row])))
        let older = try Reply.decode(
            line.replacingOccurrences(of: #""paused":true,"#, with: ""), for: .status(tasks: nil))
        guard case .status(let status) = older.body else {
            Issue.record("not a status reply: \(older)")
            return
        }
        #expect(status.tasks.map(\.paused) == [false])
    }

    @Test("an unknown error code from a newer peer becomes internal and keeps the code in the message")
    func unknownErrorCodeIsKept() throws {
        let reply = try Reply.decode(
            #"{"id":1,"ok":false,"error":{"code":"rate_limited","message":"slow down"}}"#, for: .ping)
        #expect(reply.body == .failure(ProtocolError(.internal, #"(error code "rate_limited") slow down"#)))
    }

    @Test("malformed replies are errors naming the field")
    func malformedRepliesAreErrors() {
        #expect(throws: ProtocolError(.badRequest, #"missing field "ok""#)) {
            try Reply.decode(#"{"id":1}"#, for: .ping)
        }
        #expect(throws: ProtocolError(.badRequest, #"field "tasks[0].last.run": expected an integer, got "x""#)) {
            try Reply.decode(
                #"{"ok":true,"loop":{"state":"running","since":null,"runs":0,"error":null},"tasks":[{"name":"a","scheduled":false,"ready":false,"next":null,"running":false,"pid":null,"run":null,"runs":0,"failures":0,"last":{"run":"x"}}]}"#,
                for: .status(tasks: nil))
        }
        #expect(throws: ProtocolError.self) { try Reply.decode(#"{"ok":true,"version":"1"}"#, for: .ping) }
        #expect(throws: ProtocolError.self) { try Reply.decode("[]", for: .ping) }
    }

    @Test("run --wait exit status follows the SPEC")
    func runOutcomeShellStatus() {
        #expect(
            RunOutcome(task: "t", run: 1, exitCode: 3, signal: nil, timedOut: false, succeeded: false).shellExitStatus
                == 3)
        #expect(
            RunOutcome(task: "t", run: 1, exitCode: nil, signal: 9, timedOut: false, succeeded: false).shellExitStatus
                == 137)
        #expect(
            RunOutcome(task: "t", run: 1, exitCode: nil, signal: 15, timedOut: true, succeeded: false).shellExitStatus
                == 124)
        #expect(
            RunOutcome(task: "t", run: 1, exitCode: 0, signal: nil, timedOut: false, succeeded: true).shellExitStatus
                == 0)
    }

    @Test("every event kind round-trips, and task events name their task")
    func everyEventRoundTrips() throws {
        let kinds: [Event.Kind] = [
            .loopStarted, .loopStopped, .loopFailed(error: "boom\n"), .taskScheduled(task: "a", next: nil),
            .taskScheduled(task: "a", next: Self.time), .taskUnscheduled(task: "a"),
            .taskStarted(task: "a", run: 1, pid: 2, due: nil, lateMilliseconds: nil),
            .taskFinished(
                task: "a", run: 1, exitCode: nil, signal: 9, timedOut: true, succeeded: false,
                durationMilliseconds: 0.001, cpuMilliseconds: 0.5, changed: false),
            .hookRan(hook: "h"), .configReloaded(added: ["b"], changed: [], removed: ["a", "c"]),
            .taskPaused(task: "a"), .taskResumed(task: "a"), .taskLog(task: "a", run: 3, line: "fetched \"x\"\t"),
            .leaderChanged(leader: "host-a", role: .standby), .leaderChanged(leader: nil, role: .leader),
        ]
        #expect(Set(kinds.map { Event(time: Self.time, kind: $0).name }) == Set(Event.Name.allCases))
        for kind in kinds {
            let event = Event(time: Self.time, kind: kind)
            #expect(try Event.decode(event.encoded()) == event)
            #expect(
                event.encoded().hasPrefix(
                    #"{"event":""# + event.name.rawValue + #"","time":"2026-11-30T01:44:32.123Z""#))
        }
        #expect(Event(time: Self.time, kind: .taskUnscheduled(task: "a")).task == "a")
        #expect(Event(time: Self.time, kind: .loopStarted).task == nil)
        #expect(throws: ProtocolError.self) {
            try Event.decode(#"{"event":"task_exploded","time":"2026-11-30T01:44:32.123Z"}"#)
        }
        // A config_reloaded event without the lists (an older supervisor) reads as empty lists.
        #expect(
            try Event.decode(#"{"event":"config_reloaded","time":"2026-11-30T01:44:32.123Z"}"#).kind
                == .configReloaded(added: [], changed: [], removed: []))
    }
}
