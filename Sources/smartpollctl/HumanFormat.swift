import SmartPollProtocol

/// How times and outcomes read in tables and event lines.
enum HumanFormat {
    /// `7.8s`, `3m12s`, `2h05m`, `3d04h`.
    static func span(_ nanoseconds: Int64) -> String {
        let magnitude = nanoseconds.magnitude
        let tenths = magnitude / 100_000_000
        let seconds = magnitude / 1_000_000_000
        if seconds < 60 { return "\(tenths / 10).\(tenths % 10)s" }
        if seconds < 3_600 { return "\(seconds / 60)m\(pad(seconds % 60))s" }
        if seconds < 86_400 { return "\(seconds / 3_600)h\(pad(seconds / 60 % 60))m" }
        return "\(seconds / 86_400)d\(pad(seconds / 3_600 % 24))h"
    }

    /// A short duration with microseconds: `0.213ms`, `12.500ms`, `-0.004ms`.
    static func milliseconds(_ value: Double) -> String {
        let micros = Int64((value * 1000).rounded())
        let magnitude = micros.magnitude
        let fraction = magnitude % 1000
        let digits = fraction < 10 ? "00\(fraction)" : fraction < 100 ? "0\(fraction)" : "\(fraction)"
        return "\(micros < 0 ? "-" : "")\(magnitude / 1000).\(digits)ms"
    }

    /// `in 7.8s` for the future, `3.2s ago` for the past, `now` within 50 ms.
    static func relative(_ time: Timestamp, now: Timestamp) -> String {
        let (delta, overflow) = time.nanosecondsSinceEpoch.subtractingReportingOverflow(now.nanosecondsSinceEpoch)
        if overflow { return time > now ? "in centuries" : "centuries ago" }
        if delta.magnitude < 50_000_000 { return "now" }
        return delta > 0 ? "in \(span(delta))" : "\(span(delta)) ago"
    }

    /// `0`, `3`, `SIGKILL`, `timeout`.
    static func outcome(exitCode: Int?, signal: Int?, timedOut: Bool) -> String {
        if timedOut { return "timeout" }
        if let signal { return signalName(signal) }
        return exitCode.map(String.init) ?? "-"
    }

    static func signalName(_ number: Int) -> String {
        let names = [
            1: "HUP", 2: "INT", 3: "QUIT", 4: "ILL", 5: "TRAP", 6: "ABRT", 7: "BUS", 8: "FPE", 9: "KILL",
            10: "USR1", 11: "SEGV", 12: "USR2", 13: "PIPE", 14: "ALRM", 15: "TERM",
        ]
        return names[number].map { "SIG" + $0 } ?? "signal \(number)"
    }

    private static func pad(_ value: UInt64) -> String { value < 10 ? "0\(value)" : "\(value)" }

    /// Left-aligned columns, two spaces apart.
    static func table(_ rows: [[String]]) -> String {
        var widths = [Int](repeating: 0, count: rows.map(\.count).max() ?? 0)
        for row in rows { for (column, cell) in row.enumerated() { widths[column] = max(widths[column], cell.count) } }
        return rows.map { row in
            var line = ""
            for (column, cell) in row.enumerated() {
                line +=
                    column == row.count - 1
                    ? cell : cell + String(repeating: " ", count: widths[column] - cell.count + 2)
            }
            return line
        }.joined(separator: "\n")
    }
}
