import Glibc
import Testing

@testable import SmartPollSupervisor

/// The flat-keyed cgroupfs files a run reads (`cgroup.events`, `cpu.stat`), scanned as bytes.
@Suite struct RunCgroupTests {
    private func value(_ key: StaticString, _ text: String) -> UInt64? {
        Array(text.utf8).withUnsafeBytes { RunCgroup.value(of: key, in: $0) }
    }

    @Test func findsAKeyOnAnyLine() {
        #expect(value("populated", "populated 1\nfrozen 0\n") == 1)
        #expect(value("populated", "populated 0\nfrozen 0\n") == 0)
        #expect(value("frozen", "populated 1\nfrozen 0\n") == 0)
        let stat = "usage_usec 3309\nuser_usec 2201\nsystem_usec 1108\nnr_periods 0\n"
        #expect(value("user_usec", stat) == 2201)
        #expect(value("system_usec", stat) == 1108)
        // The last line may lack its newline.
        #expect(value("nr_periods", "usage_usec 1\nnr_periods 17") == 17)
    }

    @Test func aKeyMatchesWholeNotAsAPrefixOrSuffix() {
        // "user_usec" must not match "user_usec_extra 5" nor "xuser_usec 5".
        #expect(value("user_usec", "user_usec_extra 5\nxuser_usec 6\n") == nil)
        #expect(value("populated", "populate 1\n") == nil)
        #expect(value("populated", "") == nil)
    }

    @Test func aValueThatIsNoNumberOrOverflowsIsNil() {
        #expect(value("populated", "populated x\n") == nil)
        #expect(value("populated", "populated \n") == nil)
        #expect(value("user_usec", "user_usec 99999999999999999999999\n") == nil)
        #expect(value("user_usec", "user_usec 18446744073709551615\n") == UInt64.max)
    }

    @Test func readsAFileInOneGoAndALargerOneWhole() throws {
        let folder = try TemporaryDirectory()
        let small = try folder.createFile("small", contents: "populated 1\nfrozen 0\n")
        // Larger than the one-read buffer: the key is on the last line, beyond it.
        let large = try folder.createFile(
            "large", contents: String(repeating: "padding_key 1\n", count: 200) + "populated 1\n")
        /// One read through a descriptor of its own, closed after.
        func populated(_ file: String) -> UInt64?? {
            var descriptor: Int32 = -1
            defer { if descriptor >= 0 { close(descriptor) } }
            return RunCgroup.withContents(of: file, keeping: &descriptor) { RunCgroup.value(of: "populated", in: $0) }
        }
        #expect(populated(small) == 1)
        #expect(populated(large) == 1)
        #expect(populated(folder.path + "/missing") == nil)
        // A cgroup that cannot be read counts as empty, and reports no CPU time.
        let gone = RunCgroup(path: folder.path + "/no-such-cgroup")
        #expect(!gone.isPopulated)
        #expect(gone.takeCPUMilliseconds() == nil)
        #expect(!gone.isReusable, "a slot whose CPU time cannot be read is not used again")
    }

    /// A slot keeps its files open: each read starts at offset 0 of the same open file, so it
    /// sees the file as it is now; a failed read closes it, and the next read opens it again.
    @Test func aKeptDescriptorReadsTheFileAsItIsNow() throws {
        let folder = try TemporaryDirectory()
        let path = try folder.createFile("cgroup.events", contents: "populated 1\nfrozen 0\n")
        var descriptor: Int32 = -1
        defer { if descriptor >= 0 { close(descriptor) } }
        let read = { (descriptor: inout Int32) in
            RunCgroup.withContents(of: path, keeping: &descriptor) { RunCgroup.value(of: "populated", in: $0) }
        }
        #expect(read(&descriptor) == 1)
        let kept = descriptor
        #expect(kept >= 0)
        // Rewritten in place (the same file, shorter), as cgroupfs produces it afresh.
        let writer = open(path, O_WRONLY | O_TRUNC)
        #expect(writer >= 0)
        #expect(write(writer, "populated 0\n", 12) == 12)
        close(writer)
        #expect(read(&descriptor) == 0)
        #expect(descriptor == kept, "read through the same descriptor, not reopened")
        // A descriptor that can no longer be read (here: a directory's) is closed and reset.
        var broken = open(folder.path, O_RDONLY | O_DIRECTORY)
        #expect(broken >= 0)
        #expect(
            RunCgroup.withContents(of: folder.path + "/missing", keeping: &broken) { _ in true } == nil)
        #expect(broken == -1)
    }
}
