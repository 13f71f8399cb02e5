import Testing

/// The properties the coverage-guided fuzzer checks (`make fuzz`: ProtocolFuzzOracle), held on
/// every input it ever found failing (`Fixtures/fuzz`, each with the two control bytes the
/// fuzzer's inputs start with) and on the golden fixtures, cut in pieces several ways.
@Suite("Fuzz regressions")
struct FuzzRegressionTests {
    @Test("every input the fuzzer found failing passes now")
    func fuzzerFindingsPass() throws {
        for name in Fixtures.names(in: "fuzz", suffix: "bin") {
            let input = try Fixtures.bytes("fuzz", name)
            let failure = input.withUnsafeBytes { ProtocolFuzzOracle.check($0) }
            #expect(failure == nil, "\(name): \(failure ?? "")")
        }
    }

    @Test("the golden fixtures pass the fuzzer's properties, whatever the line limit and the cuts")
    func goldenFixturesPass() throws {
        var stream: [UInt8] = []
        for folder in ["requests", "replies", "events"] {
            for name in Fixtures.names(in: folder, suffix: "json") { stream += try Fixtures.bytes(folder, name) }
        }
        for (file, _) in Fixtures.invalidCases() { stream += try Fixtures.bytes("invalid", file) + [10] }
        for control in [(0, 0), (0, 7), (127, 200), (128, 1), (200, 99), (255, 255)] as [(UInt8, UInt8)] {
            let input = [control.0, control.1] + stream
            let failure = input.withUnsafeBytes { ProtocolFuzzOracle.check($0) }
            #expect(failure == nil, "control bytes \(control): \(failure ?? "")")
        }
    }
}
