import CSmartPollPosix
import SmartPollSystem

/// A pipe whose two ends are close-on-exec, so neither leaks into a child
/// unless handed over explicitly (the spawner duplicates it onto 0-3).
/// Both ends are closed on deinit unless closed or taken before.
public final class Pipe {
    /// The end the parent reads from, while owned.
    public private(set) var readEnd: Int32?
    /// The end the child writes to, while owned.
    public private(set) var writeEnd: Int32?

    /// - Parameter nonblockingReadEnd: sets O_NONBLOCK on the read end only,
    ///   so a child writing to the other end still blocks when the pipe is full.
    /// - Throws: `.systemCallFailed` when the pipe cannot be created.
    public init(nonblockingReadEnd: Bool = false) throws(SupervisorError) {
        var fds: (Int32, Int32) = (-1, -1)
        do throws(Errno) {
            _ = try SystemCall.checking {
                withUnsafeMutableBytes(of: &fds) { buffer in
                    let pointer = buffer.baseAddress!.assumingMemoryBound(to: Int32.self)
                    return nonblockingReadEnd ? sp_pipe_nonblocking_read_end(pointer) : sp_pipe2_cloexec(pointer, 0)
                }
            }
        } catch {
            throw .systemCall("pipe2", errno: error.rawValue)
        }
        readEnd = fds.0
        writeEnd = fds.1
    }

    deinit { close() }

    /// Closes the read end if still owned.
    public func closeReadEnd() {
        if let fd = readEnd {
            SystemCall.close(fd)
            readEnd = nil
        }
    }

    /// Closes the write end if still owned; the parent does so right after
    /// spawning, so the reader sees end-of-file when the child is done.
    public func closeWriteEnd() {
        if let fd = writeEnd {
            SystemCall.close(fd)
            writeEnd = nil
        }
    }

    /// Closes both ends still owned.
    public func close() {
        closeReadEnd()
        closeWriteEnd()
    }

    /// Gives up ownership of the read end: the caller must close it.
    public func takeReadEnd() -> Int32? {
        defer { readEnd = nil }
        return readEnd
    }

    /// Gives up ownership of the write end: the caller must close it.
    public func takeWriteEnd() -> Int32? {
        defer { writeEnd = nil }
        return writeEnd
    }
}
