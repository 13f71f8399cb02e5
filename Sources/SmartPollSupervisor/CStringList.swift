import Glibc

/// NUL-terminated strings in one allocation, with the NULL-terminated pointer array that
/// `execve` takes, built once and reused for every run of a task. Building the argument vector
/// and environment anew for each run (a dictionary merge, a sort and a `strdup` a string) cost
/// more than the rest of the supervisor's own work for a run.
///
/// Per-run entries (`SMARTPOLL_RUN=N`) are added by ``withPointers(appending:_:)`` to a copy of
/// the pointer array. Immutable after `init`, hence `Sendable`.
final class CStringList: @unchecked Sendable {
    let count: Int
    /// Whether a string had a NUL byte: such a list cannot be passed to `execve`.
    let containsNUL: Bool
    private let storage: UnsafeMutablePointer<CChar>
    private let pointers: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>

    init(_ strings: [String]) {
        count = strings.count
        let size = strings.reduce(0) { $0 + $1.utf8.count + 1 }
        storage = .allocate(capacity: max(size, 1))
        pointers = .allocate(capacity: strings.count + 1)
        var offset = 0
        var nul = false
        for (index, string) in strings.enumerated() {
            pointers[index] = storage + offset
            for byte in string.utf8 {
                if byte == 0 { nul = true }
                storage[offset] = CChar(bitPattern: byte)
                offset += 1
            }
            storage[offset] = 0
            offset += 1
        }
        pointers[strings.count] = nil
        containsNUL = nul
    }

    deinit {
        storage.deallocate()
        pointers.deallocate()
    }

    /// Calls `body` with the NULL-terminated pointer array; `extra` strings are added at the end
    /// of a copy of it (C copies of them live until `body` returns).
    func withPointers<Result>(
        appending extra: [String] = [],
        _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> Result
    ) -> Result {
        if extra.isEmpty { return body(UnsafePointer(pointers)) }
        var array = Array(UnsafeBufferPointer(start: pointers, count: count))
        let extras = extra.map { strdup($0) }
        defer { for pointer in extras { free(pointer) } }
        array.append(contentsOf: extras)
        array.append(nil)
        return array.withUnsafeBufferPointer { body($0.baseAddress!) }
    }
}

/// A task's argument vector and environment (without the per-run `SMARTPOLL_RUN`), prepared
/// once (see ``CStringList``).
final class PreparedCommand: Sendable {
    let arguments: CStringList
    let environment: CStringList

    init(arguments: [String], environment: [String]) {
        self.arguments = CStringList(arguments)
        self.environment = CStringList(environment)
    }
}
