import CSmartPollPosix
import Glibc
import SmartPollSupervisor
import Testing

@Suite struct ProcessSpawnerTests {
    // MARK: Termination status

    @Test func exitCodesAreReportedAsExited() throws {
        #expect(try runShell("exit 0").status == .exited(0))
        #expect(try runShell("exit 3").status == .exited(3))
    }

    @Test func deathBySignalIsReportedAsSignaled() throws {
        #expect(try runShell("kill -KILL $$").status == .signaled(SIGKILL))
        #expect(try runShell("kill -SEGV $$").status == .signaled(SIGSEGV))
    }

    @Test func nonblockingWaitReturnsNilWhileTheChildRuns() throws {
        let input = try Pipe()
        var process = try ProcessSpawner.spawn(
            SpawnRequest(
                arguments: ["/bin/cat"],
                environment: standardEnvironment,
                standardInput: .fileDescriptor(input.readEnd!)
            ))
        defer { process.close() }
        input.closeReadEnd()
        #expect(try process.wait(nonblocking: true) == nil)
        input.closeWriteEnd()  // cat sees end-of-file and exits
        #expect(try waitForExit(process) == .exited(0))
    }

    // MARK: Descriptors

    @Test func outputErrorAndDirectivesArriveOnTheirOwnPipes() throws {
        let result = try runShell("echo out; echo err >&2; echo '{\"schedule\":\"x\"}' >&3")
        #expect(result.status == .exited(0))
        #expect(result.output == "out\n")
        #expect(result.errorOutput == "err\n")
        #expect(result.directives == "{\"schedule\":\"x\"}\n")
    }

    @Test func descriptorThreeIsClosedWithoutDirectives() throws {
        // Make this process's descriptor 3 inheritable, so that only the
        // spawner's close stands between it and the child: take 3 if it is
        // free, or else clear close-on-exec on whatever holds it (the test
        // runner does) until the child has started. Only this spawner execs
        // in the test process, and it always replaces or closes 3.
        // open returns the lowest free number: 3 when it is free (then this test holds it),
        // above 3 when something else does (libdispatch's epoll, once it has started). Other
        // tests open and close descriptors at the same time, so 3 may be freed between the
        // two steps: then try again, and take it.
        var held: Int32 = -1
        var flags: Int32 = -1
        for _ in 0..<100 where flags < 0 {
            var below: [Int32] = []
            while true {
                let descriptor = open("/dev/null", O_RDONLY | O_CLOEXEC)
                try #require(descriptor >= 0)
                if descriptor == 3 { held = descriptor; break }
                if descriptor > 3 { close(descriptor); break }
                below.append(descriptor)
            }
            for descriptor in below { close(descriptor) }
            flags = fcntl(3, F_GETFD)
        }
        defer { if held >= 0 { close(held) } }
        try #require(flags >= 0)
        #expect(fcntl(3, F_SETFD, flags & ~FD_CLOEXEC) == 0)
        defer { _ = fcntl(3, F_SETFD, flags) }
        let output = try Pipe()
        var process = try ProcessSpawner.spawn(
            SpawnRequest(
                arguments: ["/bin/sh", "-c", "if { true >&3; } 2>/dev/null; then echo open; else echo closed; fi"],
                environment: standardEnvironment,
                standardOutput: .fileDescriptor(output.writeEnd!)
            ))
        defer { process.close() }
        output.closeWriteEnd()
        #expect(try readUntilEndOfFile([output.readEnd!]) == ["closed\n"])
        #expect(try waitForExit(process) == .exited(0))
    }

    @Test func standardInputIsTheNullDeviceByDefault() throws {
        let result = try runShell("cat; readlink /proc/self/fd/0")
        #expect(result.status == .exited(0))
        #expect(result.output == "/dev/null\n")
    }

    @Test func standardInputCanBeAPipe() throws {
        let input = try Pipe()
        let bytes = Array("event data\n".utf8)
        #expect(write(input.writeEnd!, bytes, bytes.count) == bytes.count)
        input.closeWriteEnd()
        let result = try runShell("cat", standardInput: .fileDescriptor(input.readEnd!))
        #expect(result.output == "event data\n")
    }

    @Test func noDescriptorAboveThreeLeaksEvenWithoutCloseOnExec() throws {
        // Deliberately inheritable descriptors, numbered well above 3.
        let plain = open("/dev/null", O_RDONLY)
        try #require(plain >= 0)
        let high = fcntl(plain, F_DUPFD, 40)
        var plainPipe: [Int32] = [-1, -1]
        try #require(pipe(&plainPipe) == 0)
        defer { for descriptor in [plain, high, plainPipe[0], plainPipe[1]] { _ = close(descriptor) } }
        try #require(high >= 40)
        try #require(fcntl(high, F_GETFD) & FD_CLOEXEC == 0)

        // `ls` lists the descriptors of the shell, not its own; `exit` keeps
        // the shell from exec'ing `ls` in its place.
        let result = try runShell("ls /proc/$$/fd; exit 0")
        #expect(result.status == .exited(0))
        #expect(result.output.split(separator: "\n").sorted() == ["0", "1", "2", "3"])
    }

    @Test func sourceDescriptorsNumberedZeroToThreeLandOnTheRightTargets() throws {
        // Our own 1 and 2 become the child's 2 and 3 while a pipe becomes its
        // 1: copied in order without care, the child's 2 and 3 would both be
        // the pipe. Nothing is written to them; the child reports identities.
        func identity(_ fd: Int32) -> String {
            var status = stat()
            return fstat(fd, &status) == 0 ? "\(status.st_dev):\(status.st_ino)" : "none"
        }
        let output = try Pipe()
        var process = try ProcessSpawner.spawn(
            SpawnRequest(
                arguments: [
                    "/usr/bin/stat", "-L", "-c", "%d:%i", "/proc/self/fd/1", "/proc/self/fd/2", "/proc/self/fd/3",
                ],
                environment: standardEnvironment,
                standardOutput: .fileDescriptor(output.writeEnd!),
                standardError: .fileDescriptor(1),
                directives: 2
            ))
        defer { process.close() }
        let pipeIdentity = identity(output.writeEnd!)
        output.closeWriteEnd()
        let text = try readUntilEndOfFile([output.readEnd!])[0]
        #expect(try waitForExit(process) == .exited(0))
        #expect(text.split(separator: "\n") == [pipeIdentity, identity(1), identity(2)].map { Substring($0) })
    }

    // MARK: Process group, session, signals

    @Test func childLeadsItsOwnSessionAndProcessGroup() throws {
        let output = try Pipe()
        var process = try ProcessSpawner.spawn(
            SpawnRequest(
                arguments: [
                    "/bin/sh", "-c", "read -r pid comm state ppid pgrp sid rest < /proc/$$/stat; echo $pid $pgrp $sid",
                ],
                environment: standardEnvironment,
                standardOutput: .fileDescriptor(output.writeEnd!)
            ))
        defer { process.close() }
        output.closeWriteEnd()
        let text = try readUntilEndOfFile([output.readEnd!])[0]
        #expect(try waitForExit(process) == .exited(0))
        let ids = text.split(separator: " ").compactMap { Int32($0.filter(\.isNumber)) }
        #expect(ids == [process.pid, process.pid, process.pid])
        #expect(getpgrp() != process.pid)
    }

    @Test func childStartsWithDefaultSignalDispositionsAndAnEmptyMask() throws {
        // Ignore SIGUSR2 in the process and block SIGUSR1 in this thread.
        // A process that changes a disposition after its first spawn says so (the spawner reads
        // them once); a signal reset needlessly in a child is harmless.
        let previous = signal(SIGUSR2, SIG_IGN)
        sp_spawn_dispositions_changed()
        defer {
            signal(SIGUSR2, previous)
            sp_spawn_dispositions_changed()
        }
        var blocked = sigset_t()
        var old = sigset_t()
        sigemptyset(&blocked)
        sigaddset(&blocked, SIGUSR1)
        pthread_sigmask(SIG_BLOCK, &blocked, &old)
        defer { pthread_sigmask(SIG_SETMASK, &old, nil) }

        func masks(_ status: String) -> [String: String] {
            var found: [String: String] = [:]
            for line in status.split(separator: "\n") where line.hasPrefix("SigBlk:") || line.hasPrefix("SigIgn:") {
                let parts = line.split(separator: ":")
                found[String(parts[0])] = parts[1].filter { !$0.isWhitespace }
            }
            return found
        }
        let fd = open("/proc/thread-self/status", O_RDONLY | O_CLOEXEC)
        try #require(fd >= 0)
        let ours = masks(try readUntilEndOfFile([fd])[0])
        close(fd)
        try #require(ours["SigBlk"] != "0000000000000000" && ours["SigIgn"] != "0000000000000000")

        let result = try runChild(["/bin/cat", "/proc/self/status"])
        #expect(result.status == .exited(0))
        #expect(masks(result.output) == ["SigBlk": "0000000000000000", "SigIgn": "0000000000000000"])
    }

    @Test func signalGroupReachesGrandchildren() throws {
        let output = try Pipe()
        var process = try ProcessSpawner.spawn(
            SpawnRequest(
                arguments: ["/bin/sh", "-c", "sleep 100 & echo $!; wait"],
                environment: standardEnvironment,
                standardOutput: .fileDescriptor(output.writeEnd!)
            ))
        defer { process.close() }
        output.closeWriteEnd()
        var reaped = false
        defer { if !reaped { killAndReap(process) } }

        let line = try readLine(from: output.readEnd!)
        let grandchild = try #require(Int32(line.filter(\.isNumber)))
        let grandchildFD = sp_pidfd_open(grandchild)
        try #require(grandchildFD >= 0)
        // Only a safety net: the test ends the grandchild itself, so ESRCH is the usual result.
        defer { _ = sp_pidfd_send_signal(grandchildFD, SIGKILL); close(grandchildFD) }
        #expect(getpgid(grandchild) == process.pid)
        #expect(!pidfdBecomesReadable(grandchildFD, timeout: .zero), "the grandchild runs")

        #expect(try process.signalGroup(SIGTERM))
        #expect(try waitForExit(process) == .signaled(SIGTERM))
        reaped = true
        #expect(pidfdBecomesReadable(grandchildFD, timeout: .seconds(2)), "the grandchild exited")
    }

    @Test func signalGroupReportsAnEmptyGroup() throws {
        var process = try ProcessSpawner.spawn(SpawnRequest(arguments: ["/bin/true"]))
        defer { process.close() }
        #expect(try waitForExit(process) == .exited(0))
        #expect(try process.signalGroup(SIGTERM) == false)
    }

    @Test func pidfdIsCloseOnExecAndClosedByClose() throws {
        var process = try ProcessSpawner.spawn(SpawnRequest(arguments: ["/bin/true"]))
        let pidfd = try #require(process.pidfd)
        #expect(fcntl(pidfd, F_GETFD) & FD_CLOEXEC != 0)
        #expect(try waitForExit(process) == .exited(0))
        process.close()
        #expect(process.pidfd == nil)
    }

    @Test func signalReachesTheChildThroughItsPidfd() throws {
        var process = try ProcessSpawner.spawn(SpawnRequest(arguments: ["/bin/sleep", "100"]))
        defer { process.close() }
        #expect(try process.signal(SIGKILL))
        #expect(try waitForExit(process) == .signaled(SIGKILL))
        #expect(try process.signal(SIGKILL) == false)
    }

    /// Spawns `request` from a thread that then ends, and returns how the child ended (nil when
    /// it was still running after 2 s: then it is killed and reaped).
    private func statusAfterTheSpawningThreadEnds(_ request: SpawnRequest) throws -> TerminationStatus? {
        final class Spawn: @unchecked Sendable {
            let request: SpawnRequest
            var result: Result<SpawnedProcess, SupervisorError>?
            init(_ request: SpawnRequest) { self.request = request }
        }
        let spawn = Spawn(request)
        var thread = pthread_t()
        let created = pthread_create(
            &thread, nil,
            { context in
                let spawn = Unmanaged<Spawn>.fromOpaque(context!).takeRetainedValue()
                spawn.result = Result { () throws(SupervisorError) in try ProcessSpawner.spawn(spawn.request) }
                return nil
            }, Unmanaged.passRetained(spawn).toOpaque())
        try #require(created == 0)
        pthread_join(thread, nil)

        var process = try #require(try spawn.result?.get())
        defer { process.close() }
        let status = try? waitForExit(process, timeout: .seconds(2))
        if status == nil { killAndReap(process) }
        return status
    }

    @Test func childIsKilledWhenTheSpawningThreadEnds() throws {
        // PR_SET_PDEATHSIG fires when the thread that spawned the child exits,
        // which is observable without killing this process.
        #expect(
            try statusAfterTheSpawningThreadEnds(SpawnRequest(arguments: ["/bin/sleep", "100"])) == .signaled(SIGKILL))
    }

    // MARK: Environment and working directory

    @Test func credentialsSetUserAndGroupAndClearSupplementaryGroups() throws {
        var request = SpawnRequest(
            arguments: ["/bin/sh", "-c", "grep -E '^(Uid|Gid|Groups):' /proc/self/status"],
            environment: standardEnvironment)
        request.credentials = SpawnRequest.Credentials(userID: 65534, groupID: 65534)
        guard getuid() == 0 else {
            // Only root may change them: the spawn fails, and says why.
            #expect(throws: SupervisorError.self) { try ProcessSpawner.spawn(request) }
            do {
                _ = try ProcessSpawner.spawn(request)
            } catch {
                #expect(error.message.contains("Operation not permitted"), "\(error.message)")
            }
            return
        }
        let output = try Pipe()
        request.standardOutput = .fileDescriptor(output.writeEnd!)
        var process = try ProcessSpawner.spawn(request)
        defer { process.close() }
        output.closeWriteEnd()
        let text = try readUntilEndOfFile([output.readEnd!])[0]
        #expect(try waitForExit(process) == .exited(0))
        let fields = Dictionary(
            uniqueKeysWithValues: text.split(separator: "\n").map { line in
                let parts = line.split(separator: ":", maxSplits: 1)
                return (
                    String(parts[0]),
                    parts.count > 1 ? parts[1].split(whereSeparator: \.isWhitespace).map(String.init) : []
                )
            })
        #expect(fields["Uid"] == ["65534", "65534", "65534", "65534"], "\(text)")
        #expect(fields["Gid"] == ["65534", "65534", "65534", "65534"], "\(text)")
        #expect(fields["Groups"] == [], "\(text)")
    }

    @Test func aChildWithCredentialsIsStillKilledWhenTheSpawningThreadEnds() throws {
        // Changing credentials clears the parent-death signal, so the shim sets it afterwards.
        guard getuid() == 0 else { return #expect(getuid() != 0, "changing credentials needs root") }
        var request = SpawnRequest(arguments: ["/bin/sleep", "100"])
        request.credentials = SpawnRequest.Credentials(userID: 65534, groupID: 65534)
        #expect(try statusAfterTheSpawningThreadEnds(request) == .signaled(SIGKILL))
    }

    // MARK: Nice value and resource limits

    /// What `script` printed on stdout with `request`'s other settings, and how it ended.
    private func runLimited(
        _ script: String, _ configure: (inout SpawnRequest) -> Void
    ) throws -> (
        TerminationStatus, String
    ) {
        var request = SpawnRequest(arguments: ["/bin/sh", "-c", script], environment: standardEnvironment)
        configure(&request)
        let output = try Pipe()
        request.standardOutput = .fileDescriptor(output.writeEnd!)
        var process = try ProcessSpawner.spawn(request)
        defer { process.close() }
        output.closeWriteEnd()
        let text = try readUntilEndOfFile([output.readEnd!])[0]
        return (try waitForExit(process), text)
    }

    private static let limitsScript = "echo $(nice) $(ulimit -Sn) $(ulimit -Hn) $(ulimit -c) $(ulimit -t) $(ulimit -v)"

    @Test func niceValueAndResourceLimitsAreSetBeforeExec() throws {
        let (status, text) = try runLimited(Self.limitsScript) { request in
            // 19 is allowed to anyone: a higher nice value needs no privilege.
            request.nice = 19
            request.resourceLimits = SpawnRequest.ResourceLimits(
                openFiles: 64, addressSpace: SpawnRequest.ResourceLimits.infinity, cpuSeconds: 100, coreBytes: 0)
        }
        #expect(status == .exited(0))
        #expect(text == "19 64 64 0 100 unlimited\n")
    }

    @Test func withoutThemTheChildKeepsTheSupervisorsNiceValueAndLimits() throws {
        var limit = rlimit()
        #expect(getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0)
        let (status, text) = try runLimited("echo $(nice) $(ulimit -Sn)") { _ in }
        #expect(status == .exited(0))
        #expect(text == "\(Glibc.nice(0)) \(limit.rlim_cur)\n")
    }

    @Test func aRootSupervisorLowersNiceAndRaisesHardLimitsForATaskOfAnotherUser() throws {
        // Both need privilege the task's user lacks: the shim sets them before dropping it.
        guard getuid() == 0 else { return #expect(getuid() != 0, "needs root") }
        var limit = rlimit()
        #expect(getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0)
        // A container's root may lack CAP_SYS_RESOURCE: then only the nice value is checked.
        let capabilities =
            try runShell("grep CapEff: /proc/self/status").output.split(whereSeparator: \.isWhitespace).last
            .flatMap { UInt64($0, radix: 16) } ?? 0
        let canRaise = capabilities & (1 << 24) != 0
        let raised = canRaise ? min(UInt64(limit.rlim_max) + 1_000, 1 << 20) : UInt64(limit.rlim_max)
        let (status, text) = try runLimited("echo $(id -u) $(nice) $(ulimit -Hn)") { request in
            request.credentials = SpawnRequest.Credentials(userID: 65534, groupID: 65534)
            request.nice = -5
            request.resourceLimits.openFiles = raised
        }
        #expect(status == .exited(0))
        #expect(text == "65534 -5 \(raised)\n")
    }

    @Test func aRefusedLimitFailsTheSpawnNamingTheStep() throws {
        // Above /proc/sys/fs/nr_open: refused even to root.
        var request = SpawnRequest(arguments: ["/bin/true"])
        request.resourceLimits.openFiles = 1 << 40
        let before = try childrenOfThisThread()
        #expect(
            throws: SupervisorError(
                code: .spawnFailed,
                message:
                    "cannot run \"/bin/true\": cannot set its rlimit nofile to 1099511627776: Operation not permitted"
            )
        ) { try ProcessSpawner.spawn(request) }
        #expect(try childrenOfThisThread() == before, "no child is left behind")

        guard getuid() != 0 else { return }
        // A lower nice value than ours needs CAP_SYS_NICE.
        var lower = SpawnRequest(arguments: ["/bin/true"])
        lower.nice = -20
        #expect(
            throws: SupervisorError(
                code: .spawnFailed,
                message: "cannot run \"/bin/true\": cannot set its nice value to -20: Permission denied")
        ) { try ProcessSpawner.spawn(lower) }
    }

    @Test func environmentPassesThroughExactly() throws {
        let environment = ["PLAIN=1", "EQUALS=a=b==c", "NEWLINES=line 1\nline 2\n", "EMPTY=", "PATH=/bin:/usr/bin"]
        let result = try runChild(["/usr/bin/env", "-0"], environment: environment)
        #expect(result.status == .exited(0))
        #expect(
            result.output.split(separator: "\0", omittingEmptySubsequences: false).dropLast().map(String.init)
                == environment)
    }

    @Test func emptyEnvironmentStaysEmpty() throws {
        let result = try runChild(["/usr/bin/env"], environment: [])
        #expect(result.status == .exited(0))
        #expect(result.output == "")
    }

    @Test func workingDirectoryIsApplied() throws {
        let directory = try TemporaryDirectory()
        let result = try runShell("pwd", workingDirectory: directory.path)
        #expect(result.output == directory.path + "\n")
    }

    @Test func relativeProgramPathIsResolvedAgainstTheWorkingDirectory() throws {
        let directory = try TemporaryDirectory()
        try directory.createFile("tool", contents: "#!/bin/sh\necho relative\n", mode: 0o755)
        let result = try runChild(["./tool"], workingDirectory: directory.path)
        #expect(result.status == .exited(0))
        #expect(result.output == "relative\n")
    }

    @Test func missingWorkingDirectoryFailsToSpawnNamingTheFolder() throws {
        #expect(
            throws: SupervisorError(
                code: .spawnFailed,
                message:
                    "cannot run \"/bin/true\": cannot enter its working directory /nonexistent-smartpoll: "
                    + "No such file or directory"
            )
        ) {
            try ProcessSpawner.spawn(SpawnRequest(arguments: ["/bin/true"], workingDirectory: "/nonexistent-smartpoll"))
        }
    }

    @Test func aCgroupThatCannotBeEnteredFailsTheSpawnWithTheWritesError() throws {
        // Not open for writing: the child's write fails with EBADF, and so does the spawn.
        let readOnly = open("/dev/null", O_RDONLY | O_CLOEXEC)
        #expect(readOnly >= 0)
        defer { close(readOnly) }
        var request = SpawnRequest(arguments: ["/bin/true"])
        request.cgroupProcesses = readOnly
        #expect(
            throws: SupervisorError(code: .spawnFailed, message: "cannot run \"/bin/true\": Bad file descriptor")
        ) {
            try ProcessSpawner.spawn(request)
        }
    }

    // MARK: Program lookup and spawn failures

    @Test func bareNameIsFoundThroughThePathOfTheGivenEnvironment() throws {
        #expect(try runChild(["sh", "-c", "exit 7"], environment: ["PATH=/bin:/usr/bin"]).status == .exited(7))
        // Without PATH, the default /bin:/usr/bin, as for execvpe.
        #expect(try runChild(["sh", "-c", "exit 4"], environment: []).status == .exited(4))
    }

    @Test func pathLookupSkipsNonExecutableFiles() throws {
        let directory = try TemporaryDirectory()
        try directory.createFile("first/smartpoll-tool", contents: "#!/bin/sh\necho first\n", mode: 0o644)
        try directory.createFile("second/smartpoll-tool", contents: "#!/bin/sh\necho second\n", mode: 0o755)
        let path = "PATH=\(directory.path)/first:\(directory.path)/second"
        let result = try runChild(["smartpoll-tool"], environment: [path])
        #expect(result.status == .exited(0))
        #expect(result.output == "second\n")

        #expect(
            throws: SupervisorError(
                code: .spawnFailed,
                message: "cannot run \"smartpoll-tool\": Permission denied"
            )
        ) {
            try ProcessSpawner.spawn(
                SpawnRequest(
                    arguments: ["smartpoll-tool"],
                    environment: ["PATH=\(directory.path)/first"]
                ))
        }
    }

    @Test func unknownBareNameFailsWithNoSuchFile() throws {
        #expect(
            throws: SupervisorError(
                code: .spawnFailed,
                message: "cannot run \"smartpoll-no-such-program\": No such file or directory"
            )
        ) {
            try ProcessSpawner.spawn(
                SpawnRequest(arguments: ["smartpoll-no-such-program"], environment: standardEnvironment))
        }
    }

    @Test func missingProgramFailsWithNoSuchFileAndLeavesNoZombie() throws {
        // A child that exited but was not reaped shows up in the list.
        var exited = try ProcessSpawner.spawn(SpawnRequest(arguments: ["/bin/true"]))
        defer { exited.close() }
        try #require(pidfdBecomesReadable(exited.pidfd!, timeout: .seconds(2)))
        #expect(try childrenOfThisThread().contains(exited.pid))
        #expect(try exited.wait() == .exited(0))

        let before = try childrenOfThisThread()
        #expect(
            throws: SupervisorError(
                code: .spawnFailed,
                message: "cannot run \"/nonexistent\": No such file or directory"
            )
        ) {
            try ProcessSpawner.spawn(SpawnRequest(arguments: ["/nonexistent"]))
        }
        #expect(try childrenOfThisThread() == before)
    }

    @Test func nonExecutableFileFailsWithPermissionDeniedAndLeavesNoZombie() throws {
        let directory = try TemporaryDirectory()
        let file = try directory.createFile("data", contents: "not a program\n", mode: 0o644)
        let before = try childrenOfThisThread()
        #expect(
            throws: SupervisorError(
                code: .spawnFailed,
                message: "cannot run \"\(file)\": Permission denied"
            )
        ) {
            try ProcessSpawner.spawn(SpawnRequest(arguments: [file]))
        }
        #expect(try childrenOfThisThread() == before)
    }

    @Test func malformedRequestsFailWithoutSpawning() throws {
        #expect(throws: SupervisorError(code: .spawnFailed, message: "cannot run an empty command")) {
            try ProcessSpawner.spawn(SpawnRequest(arguments: []))
        }
        #expect(
            throws: SupervisorError(
                code: .spawnFailed,
                message: "cannot run \"/bin/echo\": an argument contains a NUL byte"
            )
        ) {
            try ProcessSpawner.spawn(SpawnRequest(arguments: ["/bin/echo", "a\0b"]))
        }
        #expect(
            throws: SupervisorError(
                code: .spawnFailed,
                message: "cannot run \"/bin/echo\": an environment entry contains a NUL byte"
            )
        ) {
            try ProcessSpawner.spawn(SpawnRequest(arguments: ["/bin/echo"], environment: ["A=\0"]))
        }
    }

    // MARK: Pipe

    @Test func pipeEndsAreCloseOnExecAndOnlyTheReadEndIsNonblocking() throws {
        let pipe = try Pipe(nonblockingReadEnd: true)
        let readEnd = try #require(pipe.readEnd)
        let writeEnd = try #require(pipe.writeEnd)
        #expect(fcntl(readEnd, F_GETFD) & FD_CLOEXEC != 0)
        #expect(fcntl(writeEnd, F_GETFD) & FD_CLOEXEC != 0)
        #expect(fcntl(readEnd, F_GETFL) & O_NONBLOCK != 0)
        #expect(fcntl(writeEnd, F_GETFL) & O_NONBLOCK == 0)
        pipe.closeWriteEnd()
        #expect(pipe.writeEnd == nil)
        var byte: UInt8 = 0
        #expect(read(readEnd, &byte, 1) == 0, "end-of-file: the write end is closed")
        pipe.close()
        #expect(pipe.readEnd == nil)
    }
}
