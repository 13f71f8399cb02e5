import Glibc
import SmartPollProtocol
import SmartPollSystem

/// Users and groups of a task's `user` and `group` keys, looked up in the system's databases
/// (`getpwnam_r`, `getgrnam_r`: reentrant, as configuration may be read on any thread).
enum AccountDatabase {
    /// A user name, or a numeric id (as a whole number or a string of digits): its uid, and its
    /// primary group when the database has it. Reports a problem and returns nil otherwise.
    static func user(
        _ value: JSONValue, at path: ConfigurationPath, reader: inout ConfigurationReader
    ) -> (UInt32, UInt32?)? {
        guard let key = identifier(value, at: path, what: "a user name or uid", reader: &reader) else { return nil }
        switch key {
        case .number(let uid):
            switch lookUp(passwd(), { getpwuid_r(uid, $0, $1, $2, $3) }) {
            case .found(let entry): return (uid, entry.pw_gid)
            case .missing: return (uid, nil)
            case .failed(let error):
                reader.problem(path, "cannot look up uid \(uid): \(error)")
                return nil
            }
        case .name(let name):
            switch lookUp(passwd(), { getpwnam_r(name, $0, $1, $2, $3) }) {
            case .found(let entry): return (entry.pw_uid, entry.pw_gid)
            case .missing:
                reader.problem(path, "no user is named \(value.shortDescription)")
                return nil
            case .failed(let error):
                reader.problem(path, "cannot look up the user \(value.shortDescription): \(error)")
                return nil
            }
        }
    }

    /// A group name or numeric id: its gid. Reports a problem and returns nil otherwise.
    static func group(_ value: JSONValue, at path: ConfigurationPath, reader: inout ConfigurationReader) -> UInt32? {
        guard let key = identifier(value, at: path, what: "a group name or gid", reader: &reader) else { return nil }
        switch key {
        case .number(let gid):
            return gid
        case .name(let name):
            switch lookUp(Glibc.group(), { getgrnam_r(name, $0, $1, $2, $3) }) {
            case .found(let entry): return entry.gr_gid
            case .missing:
                reader.problem(path, "no group is named \(value.shortDescription)")
                return nil
            case .failed(let error):
                reader.problem(path, "cannot look up the group \(value.shortDescription): \(error)")
                return nil
            }
        }
    }

    private enum Identifier {
        case name(String)
        case number(UInt32)
    }

    /// A name, or an id below 2^32 - 1 (that one means "unchanged" to the kernel).
    private static func identifier(
        _ value: JSONValue, at path: ConfigurationPath, what: String, reader: inout ConfigurationReader
    ) -> Identifier? {
        let text: String
        switch value {
        case .int(let number):
            text = String(number)
        case .string(let string) where !string.isEmpty && !string.utf8.contains(0):
            text = string
        default:
            reader.problem(path, "expected \(what), got \(value.shortDescription)")
            return nil
        }
        if text.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) {
            guard let number = UInt32(text), number != .max else {
                reader.problem(path, "must be at least 0 and at most \(UInt32.max - 1), got \(value.shortDescription)")
                return nil
            }
            return .number(number)
        }
        if case .int = value {
            reader.problem(path, "must be at least 0 and at most \(UInt32.max - 1), got \(value.shortDescription)")
            return nil
        }
        return .name(text)
    }

    /// What a `get*_r` lookup found.
    private enum Lookup<Entry> {
        case found(Entry)
        case missing
        case failed(Errno)
    }

    /// Calls a `getpwnam_r`-like function with a buffer that grows until the entry fits (up to
    /// 1 MiB), again after EINTR. Only the entry's ids are used: they do not point into the
    /// buffer, which is gone when this returns.
    private static func lookUp<Entry>(
        _ empty: Entry,
        _ call: (
            _ entry: UnsafeMutablePointer<Entry>, _ buffer: UnsafeMutablePointer<CChar>, _ size: Int,
            _ result: UnsafeMutablePointer<UnsafeMutablePointer<Entry>?>
        ) -> Int32
    ) -> Lookup<Entry> {
        var entry = empty
        var size = 4_096
        while size <= 1 << 20 {
            var result: UnsafeMutablePointer<Entry>?
            let buffer = UnsafeMutablePointer<CChar>.allocate(capacity: size)
            defer { buffer.deallocate() }
            switch call(&entry, buffer, size, &result) {
            case 0: return result == nil ? .missing : .found(entry)
            case ERANGE: size *= 4
            case EINTR: continue
            // getpwnam_r(3): these too say that the database has no such entry.
            case ENOENT, ESRCH, EBADF, EPERM: return .missing
            case let error: return .failed(Errno(rawValue: error))
            }
        }
        return .failed(.outOfRange)
    }
}
