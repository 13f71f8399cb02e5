#if hasFeature(Embedded)
import CSmartPollPosix
#else
import Glibc
#endif

/// The one way this package's Swift code makes a system call, or calls a `CSmartPollPosix`
/// function (which report as system calls do, see `smartpoll_convention.h`): the result is a
/// value or a thrown ``Errno``, never a -1 to check by hand.
///
/// Why not swift-system (`FileDescriptor`, `Errno`), which DESIGN.md prefers to hand-written
/// code: smartpollctl links this module, and its whole-process time is the product's most
/// visible number. Measured on `make release` binaries (static smartpollctl), `smartpollctl
/// ping` against one supervisor on a loaded 2-core machine, this module on swift-system's
/// `Errno` against the same code on its own ``Errno``: 7 to 8 more page faults a run (130
/// against 123; perf stat -r 500), a per-call median 1.1 to 3.5 % slower (benchtime, 2,000
/// interleaved pairs, in both orders) and 0.6 MB more binary; on its own ``Errno`` smartpollctl
/// matches main's (123 page faults against 121, medians within 1.5 % either way, 306k
/// instructions against 311k under callgrind). 1,000 pings in a shell loop took 2.9 to 4.1 s
/// for each of the three, the fork of the shell and the machine's load hiding any difference.
/// The daemon alone would gain little: its descriptors are `Int32`s shared with the C shim and
/// the event loop, so a `FileDescriptor` would be unwrapped at every call.
public enum SystemCall {
    /// Calls `body`, a call that reports failure as -1 with `errno` set, again for as long as it
    /// fails with EINTR.
    ///
    /// - Returns: what `body` returned (not -1).
    /// - Throws: the `Errno` of a failure other than EINTR.
    /// - Important: Not for `close`, which must never be retried (see ``close(_:)``), nor for a
    ///   wait with a timeout (a retry restarts it).
    @inlinable
    public static func retrying<Value: BinaryInteger>(_ body: () -> Value) throws(Errno) -> Value {
        while true {
            let value = body()
            guard value == -1 else { return value }
            let error = Errno(rawValue: errno)
            guard error == .interrupted else { throw error }
        }
    }

    /// Calls `body` once: a call that reports failure as -1 with `errno` set and either cannot
    /// be interrupted or retries EINTR itself (every `CSmartPollPosix` function does).
    ///
    /// - Returns: what `body` returned (not -1).
    /// - Throws: the `Errno` of its failure.
    @inlinable
    public static func checking<Value: BinaryInteger>(_ body: () -> Value) throws(Errno) -> Value {
        let value = body()
        guard value == -1 else { return value }
        throw Errno(rawValue: errno)
    }

    /// Closes `descriptor`, which must not be used again, whatever close reports.
    ///
    /// Linux releases the number even when close fails, so a failure is never retried (after
    /// EINTR the number may already belong to another thread's new descriptor) and is not
    /// reported: what close can report (EIO, EINTR) is a write the file system deferred, and the
    /// descriptors closed this way (pipes, sockets, pidfds, epoll, timerfd, signalfd,
    /// directories) have none that matters. A file whose data must survive is closed by
    /// `sp_write_file_synced`, which fsyncs first and checks close.
    @inlinable
    public static func close(_ descriptor: Int32) {
        // See above: nothing to retry and nothing to report.
        #if hasFeature(Embedded)
        _ = CSmartPollPosix.close(descriptor)
        #else
        _ = Glibc.close(descriptor)
        #endif
    }
}
