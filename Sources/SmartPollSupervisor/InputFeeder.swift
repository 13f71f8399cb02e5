import Glibc

/// Writes a run's input (a command hook's DATA) to its stdin without blocking the loop, then closes it.
final class InputFeeder {
    private var descriptor: Int32?
    private let bytes: [UInt8]
    private var offset = 0
    private let loop: EventLoop

    init(descriptor: Int32, bytes: [UInt8], loop: EventLoop) throws(SupervisorError) {
        self.descriptor = descriptor
        self.bytes = bytes
        self.loop = loop
        _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) | O_NONBLOCK)
        if !writeSome() { return }
        try loop.register(descriptor, for: .writable) { [weak self] _ in _ = self?.writeSome() }
    }

    /// Writes what the pipe takes; returns whether more remains.
    private func writeSome() -> Bool {
        guard let descriptor else { return false }
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress! + offset, $0.count - offset) }
            if written < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN { return true }
                break  // EPIPE: the hook does not read its input
            }
            offset += written
        }
        close()
        return false
    }

    func close() {
        guard let descriptor else { return }
        loop.deregister(descriptor)
        Glibc.close(descriptor)
        self.descriptor = nil
    }
}
