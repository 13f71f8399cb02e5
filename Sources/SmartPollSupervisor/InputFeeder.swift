import CSmartPollPosix
import Glibc
import SmartPollSystem

/// Writes a run's input (a command hook's DATA) to its stdin without blocking the loop, then
/// closes it.
final class InputFeeder {
    private var descriptor: Int32?
    private let bytes: [UInt8]
    private var offset = 0
    private let loop: EventLoop

    /// Takes `descriptor` (a pipe's write end) and writes what it takes now; the rest when the
    /// loop says it is writable. - Throws: when the descriptor cannot be made non-blocking or
    /// watched; the caller still owns it then.
    init(descriptor: Int32, bytes: [UInt8], loop: EventLoop) throws(SupervisorError) {
        self.bytes = bytes
        self.loop = loop
        do throws(Errno) {
            _ = try SystemCall.checking { sp_set_nonblocking(descriptor) }
        } catch {
            throw SupervisorError(code: .systemCallFailed, message: "cannot make the input pipe non-blocking: \(error)")
        }
        self.descriptor = descriptor
        guard writeSome() else { return }
        do throws(SupervisorError) {
            try loop.register(descriptor, for: .writable) { [weak self] _ in _ = self?.writeSome() }
        } catch {
            self.descriptor = nil
            throw error
        }
    }

    /// Writes what the pipe takes; returns whether more remains.
    private func writeSome() -> Bool {
        guard let descriptor else { return false }
        while offset < bytes.count {
            do throws(Errno) {
                offset += try SystemCall.retrying {
                    bytes.withUnsafeBytes { write(descriptor, $0.baseAddress! + offset, $0.count - offset) }
                }
            } catch .wouldBlock {
                return true
            } catch {
                break  // EPIPE: the process does not read its input
            }
        }
        close()
        return false
    }

    func close() {
        guard let descriptor else { return }
        loop.deregister(descriptor)
        SystemCall.close(descriptor)
        self.descriptor = nil
    }
}
