import SmartPollProtocol

#if hasFeature(Embedded)
import CSmartPollPosix
#else
import Glibc
#endif

/// Wall-clock times for people: local time as `TZ` (or /etc/localtime) says, as systemctl and
/// journalctl show them, or UTC with `--utc`. `--json` output keeps the protocol's RFC 3339 UTC
/// strings untouched.
struct TimeDisplay {
    var utc: Bool

    /// `17:05:03.123`.
    func clock(_ time: Timestamp) -> String {
        let (parts, milliseconds) = broken(time)
        return "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)).\(three(milliseconds))"
    }

    /// `2026-12-02 17:05:03.123 CET`, or `... UTC` with `--utc`.
    func full(_ time: Timestamp) -> String {
        let (parts, _) = broken(time)
        let date = "\(Int(parts.tm_year) + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))"
        let zone = utc ? "UTC" : parts.tm_zone.map { String(cString: $0) } ?? ""
        return "\(date) \(clock(time))" + (zone.isEmpty ? "" : " \(zone)")
    }

    private func broken(_ time: Timestamp) -> (tm, Int32) {
        let nanoseconds = time.nanosecondsSinceEpoch
        // Floor division, so that a time before 1970 keeps a positive fraction.
        var seconds = nanoseconds / 1_000_000_000
        var remainder = nanoseconds % 1_000_000_000
        if remainder < 0 {
            seconds -= 1
            remainder += 1_000_000_000
        }
        var clock = time_t(seconds)
        var parts = tm()
        if utc || localtime_r(&clock, &parts) == nil {
            _ = gmtime_r(&clock, &parts)
        }
        return (parts, Int32(remainder / 1_000_000))
    }

    private func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
    private func three(_ value: Int32) -> String { value < 10 ? "00\(value)" : value < 100 ? "0\(value)" : "\(value)" }
}
