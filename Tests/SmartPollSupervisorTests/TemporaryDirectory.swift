import Glibc

/// A fresh directory under /tmp, removed with everything in it when the value is released.
final class TemporaryDirectory {
    let path: String

    struct Failure: Error { var message: String }

    init() throws {
        var template = Array("/tmp/smartpoll-test-XXXXXX".utf8CString)
        guard let result = mkdtemp(&template) else { throw Failure(message: "mkdtemp failed") }
        path = String(cString: result)
    }

    func write(_ name: String, _ contents: String) throws {
        let descriptor = open(path + "/" + name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw Failure(message: "cannot create \(name)") }
        defer { close(descriptor) }
        let bytes = Array(contents.utf8)
        guard bytes.withUnsafeBytes({ Glibc.write(descriptor, $0.baseAddress, $0.count) }) == bytes.count else {
            throw Failure(message: "short write")
        }
    }

    deinit {
        // Test-only cleanup of a directory this object created.
        _ = system("rm -rf '\(path)'")
    }
}
