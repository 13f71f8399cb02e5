#if hasFeature(Embedded)
import CSmartPollPosix
#else
import Glibc
#endif

#if hasFeature(Embedded)
/// The calling thread's errno (Glibc's overlay has it as a variable; Embedded Swift has no
/// overlay).
@usableFromInline var errno: Int32 { sp_errno() }
#endif

/// An errno value as a type, for ``SystemCall``'s typed throws: a failure is caught by name
/// (`catch .wouldBlock`) and described by `strerror`'s text (`No such file or directory`).
///
/// The names are swift-system's, whose `Errno` this stands in for: linked into smartpollctl,
/// swift-system cost 7 to 8 page faults and 1 to 3.5 % of a whole `smartpollctl ping` (see
/// ``SystemCall``), for a type of a few lines. Only the values this package branches on are
/// named.
public struct Errno: Error, Hashable, Sendable, RawRepresentable, CustomStringConvertible {
    public let rawValue: Int32

    @inlinable
    public init(rawValue: Int32) {
        self.rawValue = rawValue
    }

    /// The calling thread's `errno` now.
    @inlinable
    public static var current: Errno { Errno(rawValue: errno) }

    /// EINTR: a signal interrupted the call.
    @inlinable public static var interrupted: Errno { Errno(rawValue: EINTR) }
    /// EAGAIN (EWOULDBLOCK): a non-blocking call would have to wait, or a lock is held.
    @inlinable public static var wouldBlock: Errno { Errno(rawValue: EWOULDBLOCK) }
    /// ENOENT.
    @inlinable public static var noSuchFileOrDirectory: Errno { Errno(rawValue: ENOENT) }
    /// EBADF: the descriptor is not open (or not open for this use).
    @inlinable public static var badFileDescriptor: Errno { Errno(rawValue: EBADF) }
    /// ESRCH: the process, or every process of the group, has exited.
    @inlinable public static var noSuchProcess: Errno { Errno(rawValue: ESRCH) }
    /// EEXIST.
    @inlinable public static var fileExists: Errno { Errno(rawValue: EEXIST) }
    /// EINVAL.
    @inlinable public static var invalidArgument: Errno { Errno(rawValue: EINVAL) }
    /// ENOMEM.
    @inlinable public static var noMemory: Errno { Errno(rawValue: ENOMEM) }
    /// ERANGE.
    @inlinable public static var outOfRange: Errno { Errno(rawValue: ERANGE) }

    /// `strerror`'s text, such as `No such file or directory`.
    public var description: String {
        guard let text = strerror(rawValue) else { return "error \(rawValue)" }
        return String(cString: text)
    }
}
