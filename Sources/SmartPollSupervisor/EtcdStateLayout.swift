import SmartPollProtocol

/// Where ``EtcdStateStore`` keeps a supervisor's saved state in etcd, and the values' format.
/// Every key is under `PREFIX state/`:
///
/// ```
/// meta                          {"format":"smartpoll-etcd-state","version":1,"last_run":N}
/// tasks/NAME                    one task as state.json has it, its result as below
/// results/NAME/GEN/IDX          the bytes of result generation GEN (20 digits), chunk IDX (6 digits)
/// history/NAME/SEQ              one history entry (SEQ: 20 digits, oldest first), as state.json has it
/// ```
///
/// A task's `result` is `{"run":N,"time":T,"truncated":B,"generation":GEN,"chunks":N,"size":N,
/// "fnv1a64":"<16 hex digits>"}`: the output is in `chunks` keys of at most ``chunkSize`` bytes
/// (etcd refuses requests above 1.5 MiB by default), whatever its size. Task names hold no `/`
/// (the configuration allows letters, digits and `_ - . : @`), so `results/NAME/` is exactly one
/// task's.
struct EtcdStateLayout {
    static let format = "smartpoll-etcd-state"
    static let version: Int64 = 1
    /// The most bytes of a result in one key.
    static let chunkSize = 512 << 10

    /// `PREFIX state/`.
    let state: [UInt8]

    init(keyPrefix: [UInt8]) {
        state = keyPrefix + Array("state/".utf8)
    }

    var meta: [UInt8] { state + Array("meta".utf8) }
    var tasks: [UInt8] { state + Array("tasks/".utf8) }
    var results: [UInt8] { state + Array("results/".utf8) }
    var history: [UInt8] { state + Array("history/".utf8) }

    func task(_ name: String) -> [UInt8] { tasks + Array(name.utf8) }

    /// `results/NAME/`: every generation of the task's result.
    func results(_ name: String) -> [UInt8] { results + Array(name.utf8) + [0x2F] }

    /// `results/NAME/GEN/`: one generation's chunks.
    func generation(_ name: String, _ generation: Int) -> [UInt8] {
        results(name) + Self.digits(generation, 20) + [0x2F]
    }

    func chunk(_ name: String, _ generation: Int, _ index: Int) -> [UInt8] {
        self.generation(name, generation) + Self.digits(index, 6)
    }

    /// `history/NAME/`.
    func history(_ name: String) -> [UInt8] { history + Array(name.utf8) + [0x2F] }

    func historyEntry(_ name: String, _ sequence: Int) -> [UInt8] { history(name) + Self.digits(sequence, 20) }

    /// `value` in decimal, zero-padded to `width` digits, so that keys sort as numbers.
    static func digits(_ value: Int, _ width: Int) -> [UInt8] {
        let text = Array(String(value).utf8)
        return [UInt8](repeating: UInt8(ascii: "0"), count: max(0, width - text.count)) + text
    }

    /// What follows `prefix` in `key`, if `key` starts with it.
    static func suffix(_ key: [UInt8], after prefix: [UInt8]) -> ArraySlice<UInt8>? {
        guard key.count >= prefix.count, key[..<prefix.count].elementsEqual(prefix) else { return nil }
        return key[prefix.count...]
    }

    /// A decimal number of exactly `width` digits.
    static func number(_ bytes: ArraySlice<UInt8>, width: Int) -> Int? {
        guard bytes.count == width else { return nil }
        var value = 0
        for byte in bytes {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            let (product, overflow) = value.multipliedReportingOverflow(by: 10)
            guard !overflow else { return nil }
            value = product + Int(byte - UInt8(ascii: "0"))
        }
        return value
    }

    /// The key right after `key`: a range from it leaves `key` out.
    static func successor(_ key: [UInt8]) -> [UInt8] { key + [0] }

    /// The end of the range of every key that starts with `prefix`.
    static func end(of prefix: [UInt8]) -> [UInt8] {
        Etcd.KeyRange.prefix(prefix).bounds.rangeEnd ?? [0]
    }

    // MARK: Values

    /// What a task's record says of its result's bytes.
    struct ResultRecord: Equatable, Sendable {
        var run: Int
        var generation: Int
        var chunks: Int
        var size: Int
        var checksum: UInt64

        /// How many chunks `size` bytes take.
        static func chunks(of size: Int) -> Int { (size + EtcdStateLayout.chunkSize - 1) / EtcdStateLayout.chunkSize }
    }

    static func encodeMeta(lastRunID: Int) -> [UInt8] {
        let value = JSONValue.object(
            JSONObject([
                "format": .string(format), "version": .int(version), "last_run": .int(Int64(lastRunID)),
            ]))
        return Array(value.serialized().utf8)
    }

    /// The run id mark of a `meta` value.
    static func decodeMeta(_ bytes: [UInt8]) throws(SavedStateFormat.Problem) -> Int {
        guard case .object(let object) = try parse(bytes) else {
            throw SavedStateFormat.Problem(message: "it is not an object")
        }
        guard object["format"] == .string(format) else {
            throw SavedStateFormat.Problem(message: "it is not smartpoll's (no \"format\":\"\(format)\")")
        }
        guard case .int(let found)? = object["version"], found == version else {
            throw SavedStateFormat.Problem(message: "its version is not \(version)")
        }
        guard case .int(let run)? = object["last_run"], run >= 0, run <= 1 << 53 else {
            throw SavedStateFormat.Problem(message: "\"last_run\" is missing or out of range")
        }
        return Int(run)
    }

    /// A task's record: ``SavedStateFormat``'s object for one task, its result as `result`
    /// says (nil: `"result": null`).
    static func encodeTask(_ task: SavedTask, result record: ResultRecord?) -> [UInt8] {
        guard case .object(var object) = SavedStateFormat.encode(task, reference: nil) else { return [] }
        if let result = task.result, let record {
            object["result"] = .object(
                JSONObject([
                    "run": .int(Int64(result.run)), "time": .string(result.time.formatted()),
                    "truncated": .bool(result.truncated), "generation": .int(Int64(record.generation)),
                    "chunks": .int(Int64(record.chunks)), "size": .int(Int64(record.size)),
                    "fnv1a64": .string(SavedStateFormat.hex(record.checksum)),
                ]))
        }
        return Array(JSONValue.object(object).serialized().utf8)
    }

    /// A task's record; its result comes back without its bytes (`output` empty).
    static func decodeTask(
        _ name: String, _ bytes: [UInt8]
    ) throws(SavedStateFormat.Problem) -> (SavedTask, ResultRecord?) {
        guard case .object(var object) = try parse(bytes) else {
            throw SavedStateFormat.Problem(message: "task \"\(name)\" is not an object")
        }
        let resultValue = object["result"]
        object["result"] = .null
        var (task, _) = try SavedStateFormat.decodeTask(name, .object(object))
        guard let resultValue, !resultValue.isNull else { return (task, nil) }
        let place = "task \"\(name)\".result"
        guard case .object(let result) = resultValue else {
            throw SavedStateFormat.Problem(message: "\(place) is not an object")
        }
        func count(_ key: String) throws(SavedStateFormat.Problem) -> Int {
            guard case .int(let value)? = result[key], value >= 0, value <= 1 << 53 else {
                throw SavedStateFormat.Problem(message: "\(place): \"\(key)\" is missing or out of range")
            }
            return Int(value)
        }
        guard case .bool(let truncated)? = result["truncated"] else {
            throw SavedStateFormat.Problem(message: "\(place): \"truncated\" is missing or not true or false")
        }
        guard case .string(let timeText)? = result["time"], let time = try? Timestamp.parse(timeText) else {
            throw SavedStateFormat.Problem(message: "\(place): \"time\" is missing or not a time")
        }
        guard case .string(let hex)? = result["fnv1a64"], hex.utf8.count == 16, let checksum = UInt64(hex, radix: 16)
        else { throw SavedStateFormat.Problem(message: "\(place): \"fnv1a64\" is not 16 hexadecimal digits") }
        let record = ResultRecord(
            run: try count("run"), generation: try count("generation"), chunks: try count("chunks"),
            size: try count("size"), checksum: checksum)
        // Written with ``chunkSize``; read with any chunk size, each chunk holding at least a byte.
        guard (record.size == 0) == (record.chunks == 0), record.chunks <= record.size else {
            throw SavedStateFormat.Problem(
                message: "\(place): \(record.chunks) chunks cannot hold \(record.size) bytes")
        }
        task.result = TaskResult(task: name, run: record.run, time: time, output: [], truncated: truncated)
        return (task, record)
    }

    private static func parse(_ bytes: [UInt8]) throws(SavedStateFormat.Problem) -> JSONValue {
        do {
            return try JSONParser.parse(bytes, mode: .strict)
        } catch {
            throw SavedStateFormat.Problem(message: error.message)
        }
    }

    // MARK: Checksum

    /// FNV-1a 64's starting value: ``checksum(continuing:_:)`` from it over a result's chunks in
    /// order gives ``SavedStateFormat/checksum(_:)`` of the whole.
    static let checksumStart: UInt64 = 0xcbf2_9ce4_8422_2325

    static func checksum(continuing start: UInt64, _ bytes: ArraySlice<UInt8>) -> UInt64 {
        bytes.withUnsafeBufferPointer { buffer in
            var hash = start
            for byte in buffer {
                hash ^= UInt64(byte)
                hash &*= 0x0000_0100_0000_01B3
            }
            return hash
        }
    }
}
