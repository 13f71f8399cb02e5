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

    /// Left-aligned columns, two spaces apart. Built as bytes, without `joined` (not specialized
    /// for this module: it instantiated generic metadata and scanned the conformances, 97k of
    /// smartpollctl status's instructions) and without counting Characters for ASCII cells.
    static func table(_ rows: [[String]]) -> String {
        var widths: [Int] = []
        var size = 0
        for row in rows {
            for (column, cell) in row.enumerated() {
                let width = displayWidth(cell)
                if column == widths.count { widths.append(width) } else { widths[column] = max(widths[column], width) }
                size += cell.utf8.count
            }
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(size + rows.count * (widths.count * 2 + widths.reduce(0, +)))
        for (index, row) in rows.enumerated() {
            if index > 0 { bytes.append(UInt8(ascii: "\n")) }
            for (column, cell) in row.enumerated() {
                bytes.append(contentsOf: cell.utf8)
                if column < row.count - 1 {
                    for _ in 0..<(widths[column] - displayWidth(cell) + 2) { bytes.append(UInt8(ascii: " ")) }
                }
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Columns a cell takes: its Characters (grapheme clusters), which for ASCII are its bytes.
    static func displayWidth(_ text: String) -> Int {
        let utf8 = text.utf8
        for byte in utf8 where byte >= 0x80 { return text.count }
        return utf8.count
    }
}
