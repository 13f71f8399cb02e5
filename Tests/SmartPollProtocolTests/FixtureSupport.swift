import Foundation

/// Golden files under `Fixtures/`, found next to this source file (not bundle resources).
enum Fixtures {
    static let directory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()
        .appendingPathComponent("Fixtures")

    /// File names (sorted) in `Fixtures/<folder>` ending in `.<suffix>`.
    static func names(in folder: String, suffix: String) -> [String] {
        let url = directory.appendingPathComponent(folder)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: url.path)) ?? []
        return names.filter { $0.hasSuffix("." + suffix) }.sorted()
    }

    static func bytes(_ folder: String, _ name: String) throws -> [UInt8] {
        let url = directory.appendingPathComponent(folder).appendingPathComponent(name)
        return [UInt8](try Data(contentsOf: url))
    }

    /// The single line of a golden file: its bytes without the final newline.
    static func line(_ folder: String, _ name: String) throws -> [UInt8] {
        var bytes = try bytes(folder, name)
        if bytes.last == UInt8(ascii: "\n") { bytes.removeLast() }
        return bytes
    }

    /// `Fixtures/invalid/manifest.txt`: `file code` per line.
    static func invalidCases() -> [(file: String, code: String)] {
        guard
            let text = try? String(
                contentsOf: directory.appendingPathComponent("invalid/manifest.txt"), encoding: .utf8)
        else {
            return []
        }
        return text.split(separator: "\n").compactMap { line in
            if line.hasPrefix("#") { return nil }
            let parts = line.split(separator: " ")
            guard parts.count == 2 else { return nil }
            return (String(parts[0]), String(parts[1]))
        }
    }
}
