import SmartPollProtocol
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Users and groups of a task's `user` and `group` keys, looked up in the system's databases
/// (`getpwnam_r`, `getgrnam_r`: reentrant, as configuration may be read on any thread).
enum AccountDatabase {
    /// A user name, or a numeric id (as a whole number or a string of digits): its uid, and its
    /// primary group when the database has it. Reports a problem and returns nil otherwise.
    static func user(_ value: JSONValue, at path: ConfigurationPath, reader: inout ConfigurationReader) -> (UInt32, UInt32?)? {
        guard let key = identifier(value, at: path, what: "a user name or uid", reader: &reader) else { return nil }
        switch key {
        case .number(let uid):
            return (uid, lookUpUser(byID: uid)?.1)
        case .name(let name):
            guard let found = lookUpUser(byName: name) else {
                reader.problem(path, "no user is named \(value.shortDescription)")
                return nil
            }
            return found
        }
    }

    /// A group name or numeric id: its gid. Reports a problem and returns nil otherwise.
    static func group(_ value: JSONValue, at path: ConfigurationPath, reader: inout ConfigurationReader) -> UInt32? {
        guard let key = identifier(value, at: path, what: "a group name or gid", reader: &reader) else { return nil }
        switch key {
        case .number(let gid):
            return gid
        case .name(let name):
            guard let gid = lookUpGroup(byName: name) else {
                reader.problem(path, "no group is named \(value.shortDescription)")
                return nil
            }
            return gid
        }
    }

    private enum Identifier {
        case name(String)
        case number(UInt32)
    }

    /// A name, or an id below 2^32 - 1 (that one means "unchanged" to the kernel).
    private static func identifier(_ value: JSONValue, at path: ConfigurationPath, what: String, reader: inout ConfigurationReader) -> Identifier? {
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

    private static func lookUpUser(byName name: String) -> (UInt32, UInt32?)? {
        withBuffer { entry, buffer, size, result in getpwnam_r(name, entry, buffer, size, result) }
            .map { ($0.pw_uid, $0.pw_gid) }
    }

    private static func lookUpUser(byID uid: UInt32) -> (UInt32, UInt32)? {
        withBuffer { entry, buffer, size, result in getpwuid_r(uid, entry, buffer, size, result) }
            .map { ($0.pw_uid, $0.pw_gid) }
    }

    private static func lookUpGroup(byName name: String) -> UInt32? {
        var entry = Glibc.group()
        var size = 4_096
        while size <= 1 << 20 {
            var result: UnsafeMutablePointer<Glibc.group>?
            let buffer = UnsafeMutablePointer<CChar>.allocate(capacity: size)
            defer { buffer.deallocate() }
            let status = getgrnam_r(name, &entry, buffer, size, &result)
            if status == ERANGE {
                size *= 4
                continue
            }
            return status == 0 && result != nil ? entry.gr_gid : nil
        }
        return nil
    }

    /// Calls a `getpw*_r` function with a buffer that grows until the entry fits.
    private static func withBuffer(
        _ call: (UnsafeMutablePointer<passwd>, UnsafeMutablePointer<CChar>, Int, UnsafeMutablePointer<UnsafeMutablePointer<passwd>?>) -> Int32
    ) -> passwd? {
        var entry = passwd()
        var size = 4_096
        while size <= 1 << 20 {
            var result: UnsafeMutablePointer<passwd>?
            let buffer = UnsafeMutablePointer<CChar>.allocate(capacity: size)
            defer { buffer.deallocate() }
            let status = call(&entry, buffer, size, &result)
            if status == ERANGE {
                size *= 4
                continue
            }
            // Only the ids are used, which do not point into the buffer.
            return status == 0 && result != nil ? entry : nil
        }
        return nil
    }
}
