import Glibc

/// The command line, parsed once.
let options = BenchOptions(arguments: Array(CommandLine.arguments.dropFirst()))

struct BenchOptions: Sendable {
    var quick = false
    var repeats = 5
    var only: String?
    /// `--tasks N,N...`: the task counts of the cycles scenario (default: 1 to 100,000).
    var taskCounts: [Int]?
    /// `--count NAME`: one fixed workload for `make bench-check` (CountScenarios.swift).
    var count: String?
    /// `--fixture NAME`: prints a fixed reply (CountScenarios.swift).
    var fixture: String?

    init(arguments: [String]) {
        var rest = arguments[...]
        while let argument = rest.popFirst() {
            switch argument {
            case "--quick": quick = true; repeats = 3
            case "--repeat": repeats = Int(rest.popFirst() ?? "") ?? repeats
            case "--only": only = rest.popFirst()
            case "--tasks": taskCounts = (rest.popFirst() ?? "").split(separator: ",").compactMap { Int($0) }
            case "--count": count = rest.popFirst() ?? ""
            case "--fixture": fixture = rest.popFirst() ?? ""
            // How long contrib/bench/run's load scenarios measure; make bench passes BENCH_ARGS to both.
            case "--seconds": _ = rest.popFirst()
            default:
                let usage = """
                    usage: smartpoll-bench [--quick] [--repeat N] [--seconds N] [--only cycles|schedule_call|cadence|idle|protocol]
                           [--tasks N,N... (the cycles scenario's task counts)]
                           smartpoll-bench --count protocol_ping|protocol_status100|state_machine
                           smartpoll-bench --fixture status100

                    """
                _ = usage.utf8CString.withUnsafeBufferPointer { write(2, $0.baseAddress, $0.count - 1) }
                exit(2)
            }
        }
    }
}

/// One JSON line, keys in the given order.
func emit(_ fields: [(String, Any)]) {
    let body = fields.map { key, value -> String in
        let text: String
        switch value {
        case let string as String: text = "\"\(string)\""
        case let double as Double: text = double.isFinite ? String(Double(Int64(double * 1000)) / 1000) : "null"
        case let array as [Double]:
            text = "[" + array.map { String(Double(Int64($0 * 1000)) / 1000) }.joined(separator: ",") + "]"
        default: text = "\(value)"
        }
        return "\"\(key)\":\(text)"
    }
    print("{" + body.joined(separator: ",") + "}")
    fflush(nil)
}

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    guard !sorted.isEmpty else { return .nan }
    return sorted.count % 2 == 1
        ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
}

func percentile(_ sorted: [Double], _ p: Double) -> Double {
    guard !sorted.isEmpty else { return .nan }
    let index = min(sorted.count - 1, Int((Double(sorted.count) * p).rounded(.up)) - 1)
    return sorted[max(0, index)]
}

func seconds(_ duration: Duration) -> Double {
    let (s, atto) = duration.components
    return Double(s) + Double(atto) / 1e18
}

/// CPU time (user + system) of this process, in seconds.
func cpuSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
        + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
}

/// Resident set size of this process, in KiB (the second field of /proc/self/statm, in pages).
func residentKiB() -> Double {
    let fd = open("/proc/self/statm", O_RDONLY)
    guard fd >= 0 else { return .nan }
    defer { close(fd) }
    var buffer = [UInt8](repeating: 0, count: 256)
    let length = read(fd, &buffer, buffer.count)
    guard length > 0 else { return .nan }
    let fields = String(decoding: buffer[..<length], as: UTF8.self).split(separator: " ")
    guard fields.count >= 2, let pages = Double(fields[1]) else { return .nan }
    return pages * Double(sysconf(Int32(_SC_PAGESIZE))) / 1024
}

struct Finished: Error {}

/// glibc's malloc_trim (malloc.h is not in the Glibc module): hands freed heap back to the
/// kernel so that RSS shows live memory only.
@_silgen_name("malloc_trim")
func mallocTrim(_ pad: Int) -> Int32
