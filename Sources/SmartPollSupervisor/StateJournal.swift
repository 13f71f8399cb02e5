import SmartPollProtocol

/// The journal that continues `state.json` (SPEC section 7): one record a line, appended as
/// tasks change, so a write costs what changed rather than the whole state.
///
/// ```
/// 0123456789abcdef {"format":"smartpoll-journal","journal":G}
/// 0123456789abcdef {"task":"w1","state":{...one task, as in state.json...}}
/// 0123456789abcdef {"removed":"w1"}
/// 0123456789abcdef {"last_run":N}
/// 0123456789abcdef {"history":"w1","keep":N,"entry":{...one history entry...}}
/// ```
///
/// Each line starts with the FNV-1a 64 checksum of its JSON text (16 hex digits and a space):
/// a line torn by a crash in the middle of an append fails its checksum (or has no newline),
/// and it and whatever follows it are ignored, then truncated away at start. The first line
/// names the journal's generation: `state.json` names the generation that continues it, so a
/// journal left from before a compaction (a crash between writing the new `state.json` and
/// the fresh journal) is recognised as older and ignored.
enum StateJournal {
    static let format = "smartpoll-journal"

    /// One change.
    enum Record: Equatable, Sendable {
        /// A task's whole saved state, with the file that holds its result's bytes.
        case task(String, SavedTask, SavedStateFormat.ResultReference?)
        case removed(String)
        /// The run id high-water mark: no run id above it has been handed out.
        case lastRun(Int)
        /// A run ended: its `history` entry, appended to the task's ring, which then keeps the
        /// newest `keep` (the task's `history` then).
        case history(String, keep: Int, HistoryReply.Entry)
    }

    static func header(generation: Int) -> [UInt8] {
        line(.object(JSONObject(["format": .string(format), "journal": .int(Int64(generation))])))
    }

    static func encode(_ record: Record) -> [UInt8] {
        switch record {
        case .task(let name, let task, let reference):
            line(
                .object(
                    JSONObject([
                        "task": .string(name), "state": SavedStateFormat.encode(task, reference: reference),
                    ])))
        case .removed(let name):
            line(.object(JSONObject(["removed": .string(name)])))
        case .lastRun(let run):
            line(.object(JSONObject(["last_run": .int(Int64(run))])))
        case .history(let name, let keep, let entry):
            line(
                .object(
                    JSONObject([
                        "history": .string(name), "keep": .int(Int64(keep)), "entry": SavedStateFormat.encode(entry),
                    ])))
        }
    }

    /// `CHECKSUM JSON\n`.
    private static func line(_ value: JSONValue) -> [UInt8] {
        let text = Array(value.serialized().utf8)
        var bytes = Array(SavedStateFormat.hex(SavedStateFormat.checksum(text)).utf8)
        bytes.reserveCapacity(text.count + 18)
        bytes.append(UInt8(ascii: " "))
        bytes.append(contentsOf: text)
        bytes.append(UInt8(ascii: "\n"))
        return bytes
    }

    /// What ``decode(_:)`` found.
    struct Decoded {
        /// The header's generation; nil when the journal has no valid header (empty, torn at its
        /// first line, or not a journal).
        var generation: Int?
        var records: [Record] = []
        /// The length of the valid prefix: what follows it (a torn or damaged line) is ignored.
        var validLength = 0
        /// Why the rest was ignored, when it was; nil when every line was whole.
        var problem: String?
    }

    /// Reads the lines of a journal up to the first one that is torn, fails its checksum or
    /// cannot be decoded.
    static func decode(_ bytes: [UInt8]) -> Decoded {
        var decoded = Decoded()
        var start = 0
        var number = 0
        while start < bytes.count {
            number += 1
            guard let end = bytes[start...].firstIndex(of: UInt8(ascii: "\n")) else {
                decoded.problem = "line \(number) is torn (no newline at the end of the file)"
                break
            }
            let line = bytes[start..<end]
            do throws(SavedStateFormat.Problem) {
                let value = try parse(line)
                if number == 1 {
                    guard case .object(let object) = value, object["format"] == .string(format),
                        case .int(let generation)? = object["journal"], generation >= 0
                    else { throw SavedStateFormat.Problem(message: "it is not a smartpoll journal header") }
                    decoded.generation = Int(generation)
                } else {
                    decoded.records.append(try record(value))
                }
            } catch {
                decoded.problem = "line \(number): \(error.message)"
                break
            }
            start = end + 1
            decoded.validLength = start
        }
        return decoded
    }

    private static func parse(_ line: ArraySlice<UInt8>) throws(SavedStateFormat.Problem) -> JSONValue {
        guard line.count > 17, line[line.startIndex + 16] == UInt8(ascii: " "),
            let checksum = UInt64(String(decoding: line.prefix(16), as: UTF8.self), radix: 16)
        else { throw SavedStateFormat.Problem(message: "no checksum") }
        let text = line.dropFirst(17)
        guard SavedStateFormat.checksum(text) == checksum else {
            throw SavedStateFormat.Problem(message: "the checksum does not match (torn or damaged)")
        }
        do {
            return try JSONParser.parse(text, mode: .strict)
        } catch {
            throw SavedStateFormat.Problem(message: error.message)
        }
    }

    private static func record(_ value: JSONValue) throws(SavedStateFormat.Problem) -> Record {
        guard case .object(let object) = value else {
            throw SavedStateFormat.Problem(message: "a record is not an object")
        }
        if case .string(let name)? = object["task"], let state = object["state"] {
            let (task, reference) = try SavedStateFormat.decodeTask(name, state)
            return .task(name, task, reference)
        }
        if case .string(let name)? = object["removed"] { return .removed(name) }
        if case .string(let name)? = object["history"], case .int(let keep)? = object["keep"], keep >= 0,
            keep <= 1 << 53, let entry = object["entry"]
        {
            return .history(name, keep: Int(keep), try SavedStateFormat.decodeEntry(entry, "history entry of \(name)"))
        }
        if case .int(let run)? = object["last_run"], run >= 0, run <= 1 << 53 { return .lastRun(Int(run)) }
        throw SavedStateFormat.Problem(message: "an unknown record")
    }
}
