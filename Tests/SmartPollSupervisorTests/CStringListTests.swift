import Glibc
import Testing

@testable import SmartPollSupervisor

@Suite struct CStringListTests {
    private func strings(_ list: CStringList, appending extra: [String] = []) -> [String] {
        list.withPointers(appending: extra) { pointers in
            var result: [String] = []
            var index = 0
            while let pointer = pointers[index] {
                result.append(String(cString: pointer))
                index += 1
            }
            return result
        }
    }

    @Test func keepsEveryStringInOrderWithATerminatingNull() {
        let list = CStringList(["A=1", "", "B=x=y\nz", "ünïcode"])
        #expect(list.count == 4)
        #expect(!list.containsNUL)
        #expect(strings(list) == ["A=1", "", "B=x=y\nz", "ünïcode"])
    }

    @Test func extrasAreAddedForOneCallOnly() {
        let list = CStringList(["A=1"])
        #expect(strings(list, appending: ["SMARTPOLL_RUN=7"]) == ["A=1", "SMARTPOLL_RUN=7"])
        #expect(strings(list, appending: ["SMARTPOLL_RUN=8"]) == ["A=1", "SMARTPOLL_RUN=8"])
        #expect(strings(list) == ["A=1"])
    }

    @Test func aNULByteIsReported() {
        #expect(CStringList(["A=1", "B=\u{0}"]).containsNUL)
        #expect(!CStringList([]).containsNUL)
    }

    @Test func aPreparedCommandRunsWithItsEnvironmentAndTheExtras() throws {
        let output = try Pipe(nonblockingReadEnd: false)
        var request = SpawnRequest(
            arguments: ["/bin/sh", "-c", "echo \"$A $SMARTPOLL_RUN\""],
            standardOutput: .fileDescriptor(output.writeEnd!))
        request.prepared = PreparedCommand(arguments: request.arguments, environment: ["A=prepared"])
        request.preparedExtras = ["SMARTPOLL_RUN=42"]
        var process = try ProcessSpawner.spawn(request)
        output.closeWriteEnd()
        var buffer = [UInt8](repeating: 0, count: 256)
        let count = buffer.withUnsafeMutableBytes { read(output.readEnd!, $0.baseAddress, $0.count) }
        #expect(try process.wait() == .exited(0))
        process.close()
        #expect(String(decoding: buffer[..<max(count, 0)], as: UTF8.self) == "prepared 42\n")
    }

    @Test func aPreparedCommandWithANULByteIsRefused() {
        var request = SpawnRequest(arguments: ["/bin/true"])
        request.prepared = PreparedCommand(arguments: ["/bin/true"], environment: ["A=\u{0}"])
        #expect(throws: SupervisorError.self) { try ProcessSpawner.spawn(request) }
    }
}
