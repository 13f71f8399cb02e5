import SmartPollProtocol
import SmartPollSystem

#if hasFeature(Embedded)
import CSmartPollPosix
#else
import Glibc
#endif

/// `smartpollctl hook ...`: a directive line written to the run's descriptor 3, applied by the
/// supervisor after the run exits 0 (SPEC section 3).
enum HookDirective {
    /// write(2), which this enum's `write` hides.
    private static func writeBytes(_ descriptor: Int32, _ start: UnsafeRawPointer, _ count: Int) -> Int {
        #if hasFeature(Embedded)
        CSmartPollPosix.write(descriptor, start, count)
        #else
        Glibc.write(descriptor, start, count)
        #endif
    }

    static func write(_ directive: Command, environment: (String) -> String?) -> Int32 {
        guard let text = environment("SMARTPOLL_HOOK_FD"), let descriptor = Int32(text), descriptor >= 0 else {
            standardError(
                "smartpollctl: usage: hook commands work only inside a task run ($SMARTPOLL_HOOK_FD is not set)\n")
            return 2
        }
        let line = Array(Request(command: directive).encoded().utf8) + [10]
        var offset = 0
        while offset < line.count {
            do throws(Errno) {
                offset += try SystemCall.retrying {
                    line.withUnsafeBytes { writeBytes(descriptor, $0.baseAddress! + offset, $0.count - offset) }
                }
            } catch .badFileDescriptor {
                // The usual cause: a worker started smartpollctl with its descriptors closed
                // (Python's subprocess does by default), so the run's descriptor never reached it.
                standardError(
                    "smartpollctl: hook: descriptor \(descriptor) ($SMARTPOLL_HOOK_FD) is not open in this process: "
                        + "the program that started smartpollctl closed it; pass it on "
                        + "(Python: subprocess.run(..., pass_fds=(\(descriptor),)); a shell passes it unless told "
                        + "\(descriptor)>&-)\n")
                return 1
            } catch {
                standardError("smartpollctl: hook: cannot write to descriptor \(descriptor): \(error)\n")
                return 1
            }
        }
        return 0
    }
}
