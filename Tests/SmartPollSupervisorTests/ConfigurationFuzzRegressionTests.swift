import Glibc
import Testing

/// The properties the configuration fuzzer checks (`make fuzz`: ConfigurationFuzzOracle), held
/// on every input it found failing (`Fixtures/fuzz-config`) and on the example configurations.
@Suite struct ConfigurationFuzzRegressionTests {
    static let folder = String(#filePath.dropLast("ConfigurationFuzzRegressionTests.swift".count))

    @Test func everyInputTheFuzzerFoundFailingPassesNow() throws {
        let findings = Self.folder + "Fixtures/fuzz-config"
        for name in try files(in: findings) {
            let failure = try contents(of: findings + "/" + name).withUnsafeBytes { ConfigurationFuzzOracle.check($0) }
            #expect(failure == nil, "\(name): \(failure ?? "")")
        }
    }

    @Test func theFuzzerSeedsPassAndSoDoTheirTruncations() throws {
        let seeds = Self.folder + "../../contrib/fuzz/seeds-config"
        let weather = Self.folder + "../../contrib/examples/weather/smartpoll.json"
        var inputs = try files(in: seeds).map { try contents(of: seeds + "/" + $0) }
        inputs.append(try contents(of: weather))
        #expect(inputs.count >= 3)
        for input in inputs {
            // Whole, and cut at every 7th byte: accepted or rejected, never broken.
            for end in stride(from: input.count, through: 0, by: -7) {
                let failure = Array(input[..<end]).withUnsafeBytes { ConfigurationFuzzOracle.check($0) }
                #expect(failure == nil, "cut at \(end): \(failure ?? "")")
            }
        }
    }

    private func files(in folder: String) throws -> [String] {
        guard let directory = opendir(folder) else { return [] }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) {
                String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self)
            }
            if !name.hasPrefix(".") { names.append(name) }
        }
        return names.sorted()
    }

    private func contents(of path: String) throws -> [UInt8] {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw HarnessFailure("cannot open \(path)") }
        defer { close(descriptor) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            guard count > 0 else { break }
            bytes += chunk[..<count]
        }
        return bytes
    }
}
