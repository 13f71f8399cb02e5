import Glibc
import SmartPollProtocol

/// The supervisor's log: one line per event on stderr, `text` for people or `json` for
/// collectors, with task, run and pid where they apply (SPEC section 7).
struct SupervisorLog {
    enum Format: String { case text, json }
    enum Level: Int, Comparable {
        case debug, info, warning, error

        init?(name: String) {
            switch name {
            case "debug": self = .debug
            case "info": self = .info
            case "warning", "warn": self = .warning
            case "error": self = .error
            default: return nil
            }
        }

        var name: String {
            switch self {
            case .debug: return "debug"
            case .info: return "info"
            case .warning: return "warning"
            case .error: return "error"
            }
        }

        static func < (left: Level, right: Level) -> Bool { left.rawValue < right.rawValue }
    }

    var format: Format = .text
    var level: Level = .info
    /// Where lines go: copies of this log share it, and its bounded buffer.
    var writer: LogWriter = .standardError

    /// The message of the line that reports lines the log's destination did not take in time.
    static func droppedMessage(_ count: Int) -> String {
        "\(count) log lines dropped (the log's destination was not reading)"
    }

    /// Whether a line of `level` would be written: callers with costly messages ask first.
    func accepts(_ level: Level) -> Bool { level >= self.level }

    /// Writes one line: `message` plus `fields` (`task=w1 run=3 pid=42`). Never waits for the
    /// log's destination: the line is queued in ``writer``, or dropped and counted when its
    /// buffer is full (see ``LogWriter``).
    func write(_ level: Level, _ message: String, _ fields: [(String, String)] = []) {
        guard level >= self.level else { return }
        writer.append(line(level, message, fields))
    }

    /// One formatted line, its newline included.
    func line(_ level: Level, _ message: String, _ fields: [(String, String)] = []) -> [UInt8] {
        var line: String
        switch format {
        case .text:
            // One line an event, whatever the message quotes (a program name, a task's stderr):
            // a line break in it is written as \n or \r.
            var oneLine = message
            if message.utf8.contains(where: { $0 == 10 || $0 == 13 }) {
                oneLine = ""
                for scalar in message.unicodeScalars {
                    switch scalar {
                    case "\n": oneLine += "\\n"
                    case "\r": oneLine += "\\r"
                    default: oneLine.unicodeScalars.append(scalar)
                    }
                }
            }
            line = "\(Timestamp.now().formatted()) \(level.name) \(oneLine)"
            for (key, value) in fields {
                let plain =
                    !value.isEmpty && !value.contains(where: { $0 == " " || $0 == "\"" || $0 == "=" || $0.isNewline })
                line += " \(key)=" + (plain ? value : JSONValue.string(value).serialized())
            }
        case .json:
            var object = JSONObject()
            object["time"] = .string(Timestamp.now().formatted())
            object["level"] = .string(level.name)
            object["message"] = .string(message)
            for (key, value) in fields { object[key] = .string(value) }
            line = JSONValue.object(object).serialized()
        }
        line += "\n"
        return Array(line.utf8)
    }
}
