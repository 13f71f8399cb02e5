import Glibc
import Testing

@testable import SmartPollSupervisor

/// Slots of a real cgroup subtree (root and a cgroup2 mount, as the end-to-end containment
/// tests need).
@Suite(.enabled(if: RealCgroups.usable, "needs root and a cgroup2 mount"))
struct CgroupTreeSlotTests {
    /// A `slot-N` that the start-up could not remove (a process of a previous life that would not
    /// die) is no slot for a run: the run would share it with that process, wait for it, and
    /// count its CPU time as its own.
    @Test func aLeftoverSlotOfAPreviousLifeIsNotTaken() throws {
        let tree = try Self.tree("cgroup-slot-test")
        let leftover = tree.path + "/slot-0"
        defer {
            rmdir(tree.path + "/slot-1")
            rmdir(leftover)
            rmdir(tree.path)
        }
        #expect(mkdir(leftover, 0o755) == 0)
        let slot = try tree.takeSlot()
        slot.closeFiles()
        #expect(slot.path == tree.path + "/slot-1", "a run was given the leftover \(slot.path)")
        #expect(access(leftover, F_OK) == 0, "the leftover is left for the next start-up to end")
    }

    /// An empty slot given back is kept for the next run (the same directory, no mkdir); one
    /// retired (it may still hold dying processes) is removed instead.
    @Test func aSlotGivenBackIsReusedUnlessRetired() throws {
        let tree = try Self.tree("cgroup-slot-reuse-test")
        defer { tree.removeSubtree() }
        let first = try tree.takeSlot()
        #expect(first.processesDescriptor >= 0, "a slot keeps its cgroup.procs open")
        #expect(tree.giveBack(first) == nil)
        let again = try tree.takeSlot()
        #expect(again === first, "an empty slot given back is taken again")
        again.retire()
        #expect(tree.giveBack(again) == nil)
        #expect(access(first.path, F_OK) != 0, "a retired slot is removed when given back")
        let fresh = try tree.takeSlot()
        #expect(fresh !== first && fresh.path != first.path)
        #expect(tree.giveBack(fresh) == nil)
    }
}

extension CgroupTreeSlotTests {
    /// A slot that was killed (`cgroup.kill`, even empty) is no slot for a later run: Linux 6.14
    /// on kills every child later born in it (sp_spawn_options.cgroup_fd).
    @Test func aKilledSlotIsRemovedWhenGivenBack() throws {
        let tree = try Self.tree("cgroup-slot-kill-test")
        defer { tree.removeSubtree() }
        let slot = try tree.takeSlot()
        defer { rmdir(slot.path) }
        #expect(slot.directoryDescriptor >= 0, "a slot keeps its directory open for births")
        slot.killAll()
        #expect(tree.giveBack(slot) == nil)
        #expect(access(slot.path, F_OK) != 0, "a killed slot is removed, not kept")
        let next = try tree.takeSlot()
        #expect(next.path != slot.path)
        #expect(tree.giveBack(next) == nil)
    }

    /// A child spawned into a cgroup that was killed once still runs, in that cgroup: where the
    /// kernel kills it as it is born there, the spawn notices (the child never ran) and retries
    /// through `cgroup.procs` (and births stay off for this test process, which the other
    /// tests here do not depend on: either way in is correct).
    @Test func aChildSpawnedIntoACgroupKilledOnceRunsThere() throws {
        let tree = try Self.tree("cgroup-born-dead-test")
        defer { tree.removeSubtree() }
        let slot = try tree.takeSlot()
        defer {
            slot.closeFiles()
            rmdir(slot.path)
        }
        let kill = open(slot.path + "/cgroup.kill", O_WRONLY | O_CLOEXEC)
        #expect(kill >= 0)
        #expect(Glibc.write(kill, "1", 1) == 1)
        close(kill)
        let name = String(slot.path.split(separator: "/").last!)
        var request = SpawnRequest(arguments: ["/bin/sh", "-c", "grep -q '/\(name)$' /proc/self/cgroup"])
        request.cgroupProcesses = slot.processesDescriptor
        request.cgroupDirectory = slot.directoryDescriptor
        var process = try ProcessSpawner.spawn(request)
        defer { process.close() }
        let status = try process.wait()
        #expect(status == .exited(0), "the child did not run in its cgroup: \(String(describing: status))")
    }
}

extension CgroupTreeSlotTests {
    /// A subtree of its own for a test, named by `label`, the test process and a random number.
    static func tree(_ label: String) throws -> CgroupTree {
        let identity = "/\(label)/\(getpid())/\(UInt64.random(in: 0...UInt64.max))"
        return try CgroupTree(root: nil, identity: identity, loop: try EventLoop())
    }
}

enum RealCgroups {
    static var usable: Bool {
        getuid() == 0 && (CgroupTree.readSmallFile("/proc/self/mountinfo")?.contains(" - cgroup2 ") ?? false)
    }
}
