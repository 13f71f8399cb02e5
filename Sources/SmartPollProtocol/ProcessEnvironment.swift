#if hasFeature(Embedded)
import CSmartPollPosix
#else
import Glibc
#endif

/// This process's environment, read without Foundation.
public enum ProcessEnvironment {
    /// Every `NAME=value` entry of `environ`; for a name given twice, the first wins (as
    /// `getenv` does).
    public static func current() -> [String: String] {
        var result: [String: String] = [:]
        #if hasFeature(Embedded)
        guard var entry = sp_environ() else { return result }
        #else
        var entry = environ
        #endif
        while let pointer = entry.pointee {
            let text = String(decoding: UnsafeRawBufferPointer(start: pointer, count: strlen(pointer)), as: UTF8.self)
            if let equals = text.firstIndex(of: "=") {
                let name = String(text[..<equals])
                if result[name] == nil { result[name] = String(text[text.index(after: equals)...]) }
            }
            entry += 1
        }
        return result
    }

    /// One variable, looked up with `getenv` (no copy of the whole environment: a command-line
    /// client that needs two variables should not pay for all of them).
    public static func value(_ name: String) -> String? {
        guard let pointer = getenv(name) else { return nil }
        return String(cString: pointer)
    }
}
