import CSmartPollPosix
import SmartPollProtocol
import SmartPollSystem

#if !hasFeature(Embedded)
import Glibc
#endif

/// A blocking client of the control socket, for `smartpollctl` and tests: one connection,
/// requests written as lines, replies read line by line with an optional deadline.
public final class ControlClient {
    /// Why a call failed before a reply arrived.
    public enum Failure: Error, Equatable, CustomStringConvertible {
        /// Nothing listens at the path (no socket, connection refused): exit status 69.
        case unreachable(String)
        /// No reply within the deadline: exit status 75.
        case timedOut(String)
        /// The connection broke, or the reply was not a protocol line.
        case broken(String)

        public var description: String {
            switch self {
            case .unreachable(let text), .timedOut(let text), .broken(let text): return text
            }
        }
    }

    public let path: String
    private let descriptor: Int32
    private var framer = LineFramer(maximumLineLength: 64 << 20)
    /// What each read(2) fills: allocated once and never zeroed, so that only the pages a
    /// reply reaches are touched (a zeroed 64 KiB array cost smartpollctl 16 page faults and
    /// 65k instructions a run).
    private let readBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 65_536, alignment: 16)
    /// Absolute CLOCK_MONOTONIC deadline in nanoseconds for every read; nil waits forever.
    public var deadline: Int64?

    public init(path: String) throws(Failure) {
        self.path = path
        do throws(Errno) {
            descriptor = try SystemCall.checking { sp_connect_unix(path) }
        } catch {
            throw .unreachable("cannot reach the supervisor at \(path): \(error)")
        }
    }

    deinit {
        SystemCall.close(descriptor)
        readBuffer.deallocate()
    }

    /// Sets ``deadline`` to `timeout` from now.
    public func setTimeout(_ timeout: Duration?) {
        deadline = timeout.map { sp_monotonic_ns() &+ (DurationFormat.nanoseconds(of: $0) ?? Int64.max / 2) }
    }

    /// Sends one request and reads its reply.
    public func call(_ request: Request) throws(Failure) -> (Reply, line: [UInt8]) {
        do {
            try send(request)
        } catch {
            // A supervisor that refuses a connection (busy, permission_denied) writes one error
            // line and closes before reading: that line is the answer, if it is there.
            guard let line = try? readLine(), let reply = try? Reply.decode(line, for: request.command) else {
                throw error
            }
            return (reply, line)
        }
        let line = try readLine()
        do {
            return (try Reply.decode(line, for: request.command), line)
        } catch {
            throw .broken("the supervisor sent a reply this client cannot read: \(error.message)")
        }
    }

    public func send(_ request: Request) throws(Failure) {
        let bytes = Array(request.encoded().utf8) + [10]
        var offset = 0
        while offset < bytes.count {
            let sent: Int
            do throws(Errno) {
                sent = try SystemCall.checking {
                    bytes.withUnsafeBytes { sp_send(descriptor, $0.baseAddress! + offset, $0.count - offset) }
                }
            } catch {
                throw .broken("cannot send to the supervisor: \(error)")
            }
            offset += sent
        }
    }

    /// The next line from the supervisor (a reply or, after `watch`, an event); nil at end of
    /// stream.
    public func readLine() throws(Failure) -> [UInt8] {
        let buffer = readBuffer
        while true {
            if let frame = framer.next() {
                switch frame {
                case .line(let line): return line
                case .tooLarge: throw .broken("the supervisor sent a line longer than 64 MiB")
                }
            }
            try waitReadable()
            let count: Int
            do throws(Errno) {
                count = try SystemCall.retrying { read(descriptor, buffer.baseAddress, buffer.count) }
            } catch {
                throw .broken("cannot read from the supervisor: \(error)")
            }
            if count == 0 { throw .broken("the supervisor closed the connection") }
            framer.append(UnsafeRawBufferPointer(rebasing: buffer[..<count]))
        }
    }

    private func waitReadable() throws(Failure) {
        while true {
            var timeout: Int32 = -1
            if let deadline {
                let remaining = deadline - sp_monotonic_ns()
                if remaining <= 0 { throw .timedOut("no reply from the supervisor in time") }
                timeout = Int32(min((remaining + 999_999) / 1_000_000, Int64(Int32.max)))
            }
            var entry = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            do throws(Errno) {
                // Not retried in place: the next round waits for what is left of the deadline.
                if try SystemCall.checking({ poll(&entry, 1, timeout) }) > 0 { return }
            } catch .interrupted {
                // A signal: go round again.
            } catch {
                throw .broken("cannot wait for the supervisor: \(error)")
            }
        }
    }
}
