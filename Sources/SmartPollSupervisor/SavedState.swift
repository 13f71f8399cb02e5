import SmartPollProtocol

/// What the supervisor keeps across restarts (SPEC section 7, `state_dir`): per task, its
/// counters, its last run, its last successful result, when it is next due and the retry
/// state; and the last run id handed out, so that run ids keep growing across restarts.
struct SavedState: Equatable, Sendable {
    /// The highest run id that may have been handed out: run ids are reserved in blocks ahead of
    /// use (``StatePersistence``), so this is the reserved mark, and a restart starts above it.
    var lastRunID = 0
    var tasks: [String: SavedTask] = [:]
    /// Each task's `history` (apart from ``SavedTask``: a run's end appends one entry to the
    /// journal, never the whole ring). A task without an entry has none.
    var histories: [String: RunHistory] = [:]

    /// Why the counters contradict each other, in one sentence; nil when they agree. A state
    /// file with such counters was not written by a supervisor (or was damaged where no checksum
    /// looks) and is moved aside like a corrupt one.
    func contradiction() -> String? {
        for name in tasks.keys.sorted() {
            let task = tasks[name]!
            let place = "task \"\(name)\""
            if task.failures > task.runs {
                return "\(place) has more failures (\(task.failures)) than runs (\(task.runs))"
            }
            if task.failures + task.cancelled > task.runs {
                return "\(place) has more failed and cancelled runs (\(task.failures) + \(task.cancelled)) than runs "
                    + "(\(task.runs))"
            }
            if task.consecutiveFailures > task.failures {
                return "\(place) has more consecutive failures (\(task.consecutiveFailures)) than failures "
                    + "(\(task.failures))"
            }
            if let last = task.last, last.run > lastRunID {
                return "\(place): its last run (\(last.run)) is above the last run id (\(lastRunID))"
            }
            if let last = task.last, task.runs == 0 {
                return "\(place) has a last run (\(last.run)) but no runs"
            }
            if let result = task.result, result.run > lastRunID {
                return "\(place): its result's run (\(result.run)) is above the last run id (\(lastRunID))"
            }
            if let run = task.interruptedRun, run > lastRunID || run < 1 {
                return "\(place): its interrupted run (\(run)) is not between 1 and the last run id (\(lastRunID))"
            }
        }
        return nil
    }
}

/// One task's part of ``SavedState``.
struct SavedTask: Equatable, Sendable {
    var runs = 0
    var failures = 0
    /// Runs that `cancel` or the loop's end interrupted (not failures).
    var cancelled = 0
    /// Failures since the last success: the `retry` backoff's exponent and `max_retries` count.
    var consecutiveFailures = 0
    var last: LastRun?
    var result: TaskResult?
    /// When the task is next due, as wall-clock time: a pending schedule's time, or when a
    /// ready task (or a run that was in flight) fell due. Nil: not scheduled.
    var next: Timestamp?
    /// The run that was in flight when the state was written; it never ended, so it is due
    /// again (at ``next``) when the supervisor starts.
    var interruptedRun: Int?
    /// `pause` keeps the task from starting; a restart keeps it paused.
    var paused = false
}

/// The state file's JSON form (`state.json`; results larger than
/// ``StateStore/largestInlineResult`` live in files of their own, see ``StateStore``):
///
/// ```
/// {"format":"smartpoll-state","version":1,"written":T,"pid":N,"last_run":N,
///  "tasks":{"w1":{"runs":N,"failures":N,"consecutive_failures":N,"next":T|null,
///                 "interrupted_run":N|null,"paused":false,"last":{...as in status...}|null,
///                 "result":{"run":N,"time":T,"truncated":false,"file":"w1.17",
///                           "size":N,"fnv1a64":"<16 hex digits>"}|null}},
///  "history":{"w1":[{...a history entry as the reply has it...}, ...oldest first]}}
/// ```
///
/// A small result is inline: `"data":"<Base64>"` in place of `"file"` (with `size` and
/// `fnv1a64` as for a file), so that it costs no file of its own (a create, two flushes and an
/// unlink a run). `history` is absent from files written before it (no task has any); `data`
/// from files written before inline results (every result has a file).
enum SavedStateFormat {
    static let format = "smartpoll-state"
    static let version: Int64 = 1

    /// A result's bytes are in `file` under `results/`; this is what the state file says of it.
    struct ResultReference: Equatable, Sendable {
        var file: String
        var size: Int
        var checksum: UInt64
    }

    /// The whole state file. `journal`: the generation of the journal that continues it
    /// (``StateJournal``): a journal of another generation is older than this file and ignored.
    static func encode(
        _ state: SavedState, resultFiles: [String: ResultReference], written: Timestamp, pid: Int32,
        journal: Int = 0
    ) -> [UInt8] {
        var tasks = JSONObject()
        for name in state.tasks.keys.sorted() {
            tasks.append(name, encode(state.tasks[name]!, reference: resultFiles[name]))
        }
        var histories = JSONObject()
        for name in state.histories.keys.sorted() where !state.histories[name]!.isEmpty {
            histories.append(name, .array(state.histories[name]!.oldestFirst().map(encode)))
        }
        let root = JSONValue.object(
            JSONObject([
                "format": .string(format), "version": .int(version), "written": .string(written.formatted()),
                "pid": .int(Int64(pid)), "last_run": .int(Int64(state.lastRunID)), "journal": .int(Int64(journal)),
                "tasks": .object(tasks), "history": .object(histories),
            ]))
        return Array((root.serialized() + "\n").utf8)
    }

    /// One task's object, as the state file and the journal hold it: its result with the
    /// reference to the file that holds its bytes, or inline (its bytes in `data`) without one.
    static func encode(_ task: SavedTask, reference: ResultReference?) -> JSONValue {
        var object = JSONObject()
        object.append("runs", .int(Int64(task.runs)))
        object.append("failures", .int(Int64(task.failures)))
        object.append("cancelled", .int(Int64(task.cancelled)))
        object.append("consecutive_failures", .int(Int64(task.consecutiveFailures)))
        object.append("next", task.next.map { .string($0.formatted()) } ?? .null)
        object.append("interrupted_run", task.interruptedRun.map { .int(Int64($0)) } ?? .null)
        object.append("paused", .bool(task.paused))
        object.append("last", task.last.map(encode) ?? .null)
        if let result = task.result {
            var fields = JSONObject([
                "run": .int(Int64(result.run)), "time": .string(result.time.formatted()),
                "truncated": .bool(result.truncated),
            ])
            if let reference {
                fields.append("file", .string(reference.file))
                fields.append("size", .int(Int64(reference.size)))
                fields.append("fnv1a64", .string(hex(reference.checksum)))
            } else {
                fields.append("data", .string(Base64.encode(result.output)))
                fields.append("size", .int(Int64(result.output.count)))
                fields.append("fnv1a64", .string(hex(checksum(result.output))))
            }
            object.append("result", .object(fields))
        } else {
            object.append("result", .null)
        }
        return .object(object)
    }

    private static func encode(_ last: LastRun) -> JSONValue {
        .object(
            JSONObject([
                "run": .int(Int64(last.run)), "started": .string(last.started.formatted()),
                "ended": .string(last.ended.formatted()), "duration_ms": .double(last.durationMilliseconds),
                "exit_code": last.exitCode.map { .int(Int64($0)) } ?? .null,
                "signal": last.signal.map { .int(Int64($0)) } ?? .null,
                "timed_out": .bool(last.timedOut), "succeeded": .bool(last.succeeded),
                "error": last.error.map { .string($0) } ?? .null, "stderr_tail": .string(last.stderrTail),
            ]))
    }

    /// A `history` entry, with the members of the `history` reply's.
    static func encode(_ entry: HistoryReply.Entry) -> JSONValue {
        let run = entry.run
        return .object(
            JSONObject([
                "run": .int(Int64(run.run)), "started": .string(run.started.formatted()),
                "ended": .string(run.ended.formatted()), "duration_ms": .double(run.durationMilliseconds),
                "exit_code": run.exitCode.map { .int(Int64($0)) } ?? .null,
                "signal": run.signal.map { .int(Int64($0)) } ?? .null,
                "timed_out": .bool(run.timedOut), "succeeded": .bool(run.succeeded),
                "error": run.error.map { .string($0) } ?? .null,
                "cpu_ms": run.cpuMilliseconds.map { .double($0) } ?? .null, "changed": .bool(entry.changed),
                "output_bytes": .int(Int64(entry.outputBytes)),
                "stderr_last": entry.stderrLast.map { .string($0) } ?? .null,
            ]))
    }

    /// A `history` entry (``encode(_:)-(HistoryReply.Entry)``); `place` says where, for errors.
    static func decodeEntry(_ value: JSONValue, _ place: String) throws(Problem) -> HistoryReply.Entry {
        let fields = try Fields(value, place)
        let run = LastRun(
            run: try fields.count("run"), started: try fields.time("started"), ended: try fields.time("ended"),
            durationMilliseconds: try fields.double("duration_ms"), exitCode: try fields.optionalInt("exit_code"),
            signal: try fields.optionalInt("signal"), timedOut: try fields.bool("timed_out"),
            succeeded: try fields.bool("succeeded"), error: try fields.optionalString("error"), stderrTail: "",
            cpuMilliseconds: try fields.optionalDouble("cpu_ms"))
        return HistoryReply.Entry(
            run: run, changed: try fields.bool("changed"), outputBytes: try fields.count("output_bytes"),
            stderrLast: try fields.optionalString("stderr_last"))
    }

    /// Why a state file cannot be used, in one sentence.
    struct Problem: Error {
        var message: String
    }

    /// What ``decode(_:)`` found in a state file.
    struct Decoded {
        var state: SavedState
        var references: [String: ResultReference]
        /// The generation of the journal that continues this file.
        var journal: Int
    }

    /// Decodes `state.json`; results in files come back without their bytes (`output` empty),
    /// with the reference to their file; inline results with their bytes. Counters that contradict each other are refused
    /// (``SavedState/contradiction()``).
    static func decode(_ bytes: [UInt8]) throws(Problem) -> Decoded {
        let root: JSONValue
        do {
            root = try JSONParser.parse(bytes, mode: .strict)
        } catch {
            throw Problem(message: error.message)
        }
        let top = try Fields(root, "the file")
        guard try top.string("format") == format else {
            throw Problem(message: "it is not a smartpoll state file (no \"format\":\"\(format)\")")
        }
        let fileVersion = try top.int("version")
        guard fileVersion == version else {
            throw Problem(message: "it has version \(fileVersion); this supervisor reads version \(version)")
        }
        var state = SavedState()
        state.lastRunID = try top.count("last_run")
        // Files written before the journal existed have no generation: 0, as a fresh journal.
        let journal = top.object["journal"] == nil ? 0 : try top.count("journal")
        var references: [String: ResultReference] = [:]
        guard case .object(let tasks)? = top.object["tasks"] else {
            throw Problem(message: "\"tasks\" is missing or not an object")
        }
        for (name, value) in tasks.pairs {
            let (task, reference) = try decodeTask(name, value)
            state.tasks[name] = task
            references[name] = reference
        }
        // Absent from files written before history.
        if let value = top.object["history"] {
            guard case .object(let histories) = value else { throw Problem(message: "\"history\" is not an object") }
            for (name, value) in histories.pairs {
                guard case .array(let elements) = value else {
                    throw Problem(message: "the history of task \"\(name)\" is not an array")
                }
                var history = RunHistory(capacity: elements.count)
                for (index, element) in elements.enumerated() {
                    history.append(
                        try decodeEntry(element, "history of task \"\(name)\" [\(index)]"), keeping: elements.count)
                }
                state.histories[name] = history
            }
        }
        if let contradiction = state.contradiction() {
            throw Problem(message: "its counters contradict each other: \(contradiction)")
        }
        return Decoded(state: state, references: references, journal: journal)
    }

    /// One task's object (``encode(_:reference:)``): an inline result comes back with its bytes
    /// and no reference; a result in a file with the reference and its bytes still to be read.
    static func decodeTask(_ name: String, _ value: JSONValue) throws(Problem) -> (SavedTask, ResultReference?) {
        let fields = try Fields(value, "task \"\(name)\"")
        var task = SavedTask()
        task.runs = try fields.count("runs")
        task.failures = try fields.count("failures")
        // Absent from state files written before the counter.
        task.cancelled = try fields.has("cancelled") ? fields.count("cancelled") : 0
        task.consecutiveFailures = try fields.count("consecutive_failures")
        task.next = try fields.optionalTime("next")
        task.interruptedRun = try fields.optionalInt("interrupted_run")
        // Absent from state files written before pause.
        task.paused = try fields.has("paused") ? fields.bool("paused") : false
        if let last = try fields.optionalFields("last") {
            task.last = LastRun(
                run: try last.int("run"), started: try last.time("started"), ended: try last.time("ended"),
                durationMilliseconds: try last.double("duration_ms"), exitCode: try last.optionalInt("exit_code"),
                signal: try last.optionalInt("signal"), timedOut: try last.bool("timed_out"),
                succeeded: try last.bool("succeeded"), error: try last.optionalString("error"),
                stderrTail: try last.string("stderr_tail"))
        }
        var reference: ResultReference?
        if let result = try fields.optionalFields("result") {
            guard let checksum = UInt64(try result.string("fnv1a64"), radix: 16) else {
                throw Problem(message: "task \"\(name)\": \"fnv1a64\" is not a hexadecimal number")
            }
            let size = try result.count("size")
            var output: [UInt8] = []
            if result.has("data") {
                guard let bytes = Base64.decode(try result.string("data")) else {
                    throw Problem(message: "task \"\(name)\": the result's \"data\" is not Base64")
                }
                guard bytes.count == size, Self.checksum(bytes) == checksum else {
                    throw Problem(
                        message: "task \"\(name)\": the result's data does not match its size and checksum "
                            + "(\(bytes.count) bytes, \(size) expected)")
                }
                output = bytes
            } else {
                let file = try result.string("file")
                guard !file.isEmpty, !file.contains("/"), file != ".", file != ".." else {
                    throw Problem(message: "task \"\(name)\": result file name \"\(file)\" is not a plain file name")
                }
                reference = ResultReference(file: file, size: size, checksum: checksum)
            }
            task.result = TaskResult(
                task: name, run: try result.int("run"), time: try result.time("time"),
                output: output, truncated: try result.bool("truncated"))
        }
        return (task, reference)
    }

    /// FNV-1a, 64 bits: enough to notice a result file that is not the one written.
    static func checksum(_ bytes: some Sequence<UInt8>) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01B3
        }
        return hash
    }

    static func hex(_ value: UInt64) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }

    /// Typed members of one object of the state file, with errors that say where.
    private struct Fields {
        let object: JSONObject
        let place: String

        init(_ value: JSONValue, _ place: String) throws(Problem) {
            guard case .object(let object) = value else { throw Problem(message: "\(place) is not an object") }
            self.object = object
            self.place = place
        }

        private func wrong(_ key: String, _ expected: String) -> Problem {
            Problem(message: "\(place): \"\(key)\" is missing or not \(expected)")
        }

        func int(_ key: String) throws(Problem) -> Int {
            guard case .int(let value)? = object[key] else { throw wrong(key, "an integer") }
            return Int(value)
        }

        /// Whether the object has `key` (a key added after the first version may be missing).
        func has(_ key: String) -> Bool { object[key] != nil }

        /// A count or id: 0 to 2^53, so that adding to it can never overflow.
        func count(_ key: String) throws(Problem) -> Int {
            let value = try int(key)
            guard value >= 0 && value <= 1 << 53 else {
                throw Problem(message: "\(place): \"\(key)\" is out of range (\(value))")
            }
            return value
        }

        func optionalInt(_ key: String) throws(Problem) -> Int? {
            switch object[key] {
            case .null?: return nil
            case .int(let value)?: return Int(value)
            default: throw wrong(key, "an integer or null")
            }
        }

        func optionalDouble(_ key: String) throws(Problem) -> Double? {
            if case .null? = object[key] { return nil }
            return try double(key)
        }

        func double(_ key: String) throws(Problem) -> Double {
            guard let value = object[key]?.doubleValue else { throw wrong(key, "a number") }
            return value
        }

        func bool(_ key: String) throws(Problem) -> Bool {
            guard case .bool(let value)? = object[key] else { throw wrong(key, "true or false") }
            return value
        }

        func string(_ key: String) throws(Problem) -> String {
            guard case .string(let value)? = object[key] else { throw wrong(key, "a string") }
            return value
        }

        func optionalString(_ key: String) throws(Problem) -> String? {
            switch object[key] {
            case .null?: return nil
            case .string(let value)?: return value
            default: throw wrong(key, "a string or null")
            }
        }

        func time(_ key: String) throws(Problem) -> Timestamp {
            let text = try string(key)
            do {
                return try Timestamp.parse(text)
            } catch {
                throw Problem(message: "\(place): \"\(key)\": \(error.message)")
            }
        }

        func optionalTime(_ key: String) throws(Problem) -> Timestamp? {
            if case .null? = object[key] { return nil }
            return try time(key)
        }

        func optionalFields(_ key: String) throws(Problem) -> Fields? {
            switch object[key] {
            case .null?: return nil
            case let value?: return try Fields(value, "\(place).\(key)")
            case nil: throw wrong(key, "an object or null")
            }
        }
    }
}
