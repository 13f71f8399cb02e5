import SmartPollProtocol

/// The requests and replies of etcd's v3 API that ``EtcdClient`` speaks, as its JSON gateway
/// writes them: keys and values Base64, 64-bit integers as strings, fields at their default
/// (0, false, empty) left out.
enum Etcd {
    /// The keys a request is about: one key, every key with a prefix, or `[from, to)`.
    enum KeyRange: Hashable {
        case key([UInt8])
        case prefix([UInt8])
        case range(from: [UInt8], to: [UInt8])

        /// `key` and `range_end` as etcd wants them (`range_end` nil: one key).
        var bounds: (key: [UInt8], rangeEnd: [UInt8]?) {
            switch self {
            case .key(let key): return (key, nil)
            case .range(let from, let to): return (from, to)
            case .prefix(let prefix):
                // etcd's prefix end: the prefix with its last byte below 0xff incremented and what
                // follows it dropped; all 0xff (or empty): "\0", every key from the prefix on.
                var end = prefix
                while let last = end.last {
                    if last < 0xff {
                        end[end.count - 1] = last + 1
                        return (prefix, end)
                    }
                    end.removeLast()
                }
                return (prefix, [0])
            }
        }
    }

    /// A key's value and its revisions.
    struct KeyValue: Hashable {
        var key: [UInt8]
        var value: [UInt8]
        var createRevision: Int64
        var modRevision: Int64
        var version: Int64
        /// The lease the key is attached to (0: none).
        var lease: Int64
    }

    struct PutReply: Hashable {
        /// The store's revision after the put (the header's).
        var revision: Int64
        var previous: KeyValue?
    }

    struct RangeRequest: Hashable {
        var keys: KeyRange
        /// At most this many keys (0: no limit).
        var limit: Int64 = 0
        /// In order of creation (create revision, oldest first) instead of by key.
        var sortByCreateRevision = false
        /// The store as of this revision (0: the latest).
        var revision: Int64 = 0
        var keysOnly = false
        var countOnly = false
    }

    struct RangeReply: Hashable {
        var revision: Int64
        var keyValues: [KeyValue]
        /// The number of keys in the range (more than `keyValues` under a limit).
        var count: Int64
        /// Whether a limit left keys out.
        var more: Bool
    }

    struct DeleteReply: Hashable {
        var revision: Int64
        var deleted: Int64
        var previous: [KeyValue]
    }

    /// One comparison of a transaction's guard.
    struct Compare: Hashable {
        enum Target: Hashable {
            case createRevision(Int64)
            case modRevision(Int64)
            case version(Int64)
            case value([UInt8])
        }

        enum Result: String, Hashable {
            case equal = "EQUAL"
            case greater = "GREATER"
            case less = "LESS"
            case notEqual = "NOT_EQUAL"
        }

        var key: [UInt8]
        var target: Target
        var result: Result = .equal
    }

    /// One operation of a transaction's branch.
    enum Operation: Hashable {
        case put(key: [UInt8], value: [UInt8], lease: Int64)
        case range(RangeRequest)
        case delete(KeyRange)
    }

    enum OperationReply: Hashable {
        case put(PutReply)
        case range(RangeReply)
        case delete(DeleteReply)
    }

    struct TxnReply: Hashable {
        var revision: Int64
        /// Whether every comparison held (the success branch ran).
        var succeeded: Bool
        var responses: [OperationReply]
    }

    struct LeaseReply: Hashable {
        var revision: Int64
        var id: Int64
        /// The lease's time to live, in seconds; 0 from a keep-alive: the lease is gone.
        var ttl: Int64
    }

    /// A reply that has nothing but the header's revision (revoke, compact).
    struct RevisionReply: Hashable {
        var revision: Int64
    }

    struct WatchEvent: Hashable {
        enum Kind: Hashable {
            case put
            case delete
        }

        var kind: Kind
        /// The key's new value; for a delete only its key and the revision that deleted it.
        var keyValue: KeyValue
        var previous: KeyValue?
    }

    /// One message of a watch stream.
    struct WatchMessage: Hashable {
        var revision: Int64
        /// The first message: the watch is in place.
        var created: Bool
        /// etcd ended the watch (for one, its start revision was compacted: `compactRevision`).
        var canceled: Bool
        var compactRevision: Int64
        var events: [WatchEvent]
    }
}

// MARK: Encoding and decoding

extension Etcd {
    static func string(_ bytes: [UInt8]) -> JSONValue { .string(Base64.encode(bytes)) }

    static func number(_ value: Int64) -> JSONValue { .string(String(value)) }

    /// An int64 the gateway wrote as a string (or a number); absent: 0.
    static func integer(_ value: JSONValue?, _ name: String) throws(EtcdError) -> Int64 {
        switch value {
        case nil, .null: return 0
        case .int(let number): return number
        case .string(let text):
            guard let number = Int64(text) else { throw .malformedReply("\(name) is not an integer") }
            return number
        default: throw .malformedReply("\(name) is not an integer")
        }
    }

    static func bytes(_ value: JSONValue?, _ name: String) throws(EtcdError) -> [UInt8] {
        switch value {
        case nil, .null: return []
        case .string(let text):
            guard let bytes = Base64.decode(text) else { throw .malformedReply("\(name) is not Base64") }
            return bytes
        default: throw .malformedReply("\(name) is not Base64")
        }
    }

    static func flag(_ value: JSONValue?) -> Bool { value?.boolValue ?? false }

    static func headerRevision(_ object: JSONObject) throws(EtcdError) -> Int64 {
        try integer(object["header"]?.objectValue?["revision"], "header.revision")
    }

    static func keyValue(_ value: JSONValue?) throws(EtcdError) -> KeyValue? {
        guard let object = value?.objectValue else { return nil }
        return KeyValue(
            key: try bytes(object["key"], "key"), value: try bytes(object["value"], "value"),
            createRevision: try integer(object["create_revision"], "create_revision"),
            modRevision: try integer(object["mod_revision"], "mod_revision"),
            version: try integer(object["version"], "version"), lease: try integer(object["lease"], "lease"))
    }

    static func keyValues(_ value: JSONValue?) throws(EtcdError) -> [KeyValue] {
        var result: [KeyValue] = []
        for element in value?.arrayValue ?? [] {
            guard let keyValue = try keyValue(element) else { throw .malformedReply("a key-value is not an object") }
            result.append(keyValue)
        }
        return result
    }

    static func keysMembers(_ keys: KeyRange, into object: inout JSONObject) {
        let (key, rangeEnd) = keys.bounds
        object.append("key", string(key))
        if let rangeEnd { object.append("range_end", string(rangeEnd)) }
    }

    static func putBody(key: [UInt8], value: [UInt8], lease: Int64, previous: Bool) -> JSONObject {
        var object: JSONObject = ["key": string(key), "value": string(value)]
        if lease != 0 { object.append("lease", number(lease)) }
        if previous { object.append("prev_kv", .bool(true)) }
        return object
    }

    static func rangeBody(_ request: RangeRequest) -> JSONObject {
        var object = JSONObject()
        keysMembers(request.keys, into: &object)
        if request.limit > 0 { object.append("limit", number(request.limit)) }
        if request.sortByCreateRevision {
            object.append("sort_order", "ASCEND")
            object.append("sort_target", "CREATE")
        }
        if request.revision > 0 { object.append("revision", number(request.revision)) }
        if request.keysOnly { object.append("keys_only", .bool(true)) }
        if request.countOnly { object.append("count_only", .bool(true)) }
        return object
    }

    static func deleteBody(_ keys: KeyRange, previous: Bool) -> JSONObject {
        var object = JSONObject()
        keysMembers(keys, into: &object)
        if previous { object.append("prev_kv", .bool(true)) }
        return object
    }

    static func compareBody(_ compare: Compare) -> JSONValue {
        var object: JSONObject = ["key": string(compare.key), "result": .string(compare.result.rawValue)]
        switch compare.target {
        case .createRevision(let revision):
            object.append("target", "CREATE")
            object.append("create_revision", number(revision))
        case .modRevision(let revision):
            object.append("target", "MOD")
            object.append("mod_revision", number(revision))
        case .version(let version):
            object.append("target", "VERSION")
            object.append("version", number(version))
        case .value(let value):
            object.append("target", "VALUE")
            object.append("value", string(value))
        }
        return .object(object)
    }

    static func operationBody(_ operation: Operation) -> JSONValue {
        switch operation {
        case .put(let key, let value, let lease):
            ["request_put": .object(putBody(key: key, value: value, lease: lease, previous: false))]
        case .range(let request): ["request_range": .object(rangeBody(request))]
        case .delete(let keys): ["request_delete_range": .object(deleteBody(keys, previous: false))]
        }
    }

    static func putReply(_ object: JSONObject) throws(EtcdError) -> PutReply {
        PutReply(revision: try headerRevision(object), previous: try keyValue(object["prev_kv"]))
    }

    static func rangeReply(_ object: JSONObject) throws(EtcdError) -> RangeReply {
        RangeReply(
            revision: try headerRevision(object), keyValues: try keyValues(object["kvs"]),
            count: try integer(object["count"], "count"), more: flag(object["more"]))
    }

    static func deleteReply(_ object: JSONObject) throws(EtcdError) -> DeleteReply {
        DeleteReply(
            revision: try headerRevision(object), deleted: try integer(object["deleted"], "deleted"),
            previous: try keyValues(object["prev_kvs"]))
    }

    static func txnReply(_ object: JSONObject) throws(EtcdError) -> TxnReply {
        var responses: [OperationReply] = []
        for element in object["responses"]?.arrayValue ?? [] {
            guard let response = element.objectValue else { throw .malformedReply("a response is not an object") }
            if let put = response["response_put"]?.objectValue {
                responses.append(.put(try putReply(put)))
            } else if let range = response["response_range"]?.objectValue {
                responses.append(.range(try rangeReply(range)))
            } else if let delete = response["response_delete_range"]?.objectValue {
                responses.append(.delete(try deleteReply(delete)))
            } else {
                throw .malformedReply("a transaction response of an unknown kind")
            }
        }
        return TxnReply(
            revision: try headerRevision(object), succeeded: flag(object["succeeded"]), responses: responses)
    }

    static func leaseReply(_ object: JSONObject) throws(EtcdError) -> LeaseReply {
        LeaseReply(
            revision: try headerRevision(object), id: try integer(object["ID"], "ID"),
            ttl: try integer(object["TTL"], "TTL"))
    }

    static func watchMessage(_ object: JSONObject) throws(EtcdError) -> WatchMessage {
        var events: [WatchEvent] = []
        for element in object["events"]?.arrayValue ?? [] {
            guard let event = element.objectValue, let keyValue = try keyValue(event["kv"]) else {
                throw .malformedReply("a watch event without kv")
            }
            let kind: WatchEvent.Kind = event["type"]?.stringValue == "DELETE" ? .delete : .put
            events.append(WatchEvent(kind: kind, keyValue: keyValue, previous: try Etcd.keyValue(event["prev_kv"])))
        }
        return WatchMessage(
            revision: try headerRevision(object), created: flag(object["created"]),
            canceled: flag(object["canceled"]),
            compactRevision: try integer(object["compact_revision"], "compact_revision"), events: events)
    }
}
