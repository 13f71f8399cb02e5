import CSmartPollPosix
import Glibc
import SmartPollProtocol
import SmartPollSystem

/// Starts child processes through the `CSmartPollPosix` shim.
///
/// Each child runs in a new session and process group (its pid is the group
/// id), receives SIGKILL when the spawning thread dies, starts with default
/// signal dispositions and an empty mask, and has exactly descriptors 0-3 open;
/// with ``SpawnRequest/credentials``, it runs as that user and group, without
/// supplementary groups; with ``SpawnRequest/nice`` and ``SpawnRequest/resourceLimits``, it
/// starts with that nice value and those limits.
public enum ProcessSpawner {
    /// Starts the program of `request` and returns at once.
    ///
    /// - Throws: `.spawnFailed` when the request is malformed or the program
    ///   cannot be started, with a message such as
    ///   `cannot run "/nonexistent": No such file or directory`; a step of the
    ///   child's set-up names itself (`cannot run "sh": cannot set its nice value
    ///   to -5: Permission denied`). No child is left behind then.
    /// - Important: the parent-death signal is tied to the calling *thread*:
    ///   spawn from a thread that lives as long as the supervisor, not from a
    ///   pool thread that may be retired.
    public static func spawn(_ request: SpawnRequest) throws(SupervisorError) -> SpawnedProcess {
        let name = request.programName
        func failure(_ reason: String) -> SupervisorError {
            SupervisorError(code: .spawnFailed, message: "cannot run \(JSONValue.string(name).serialized()): \(reason)")
        }

        guard !request.arguments.isEmpty else {
            throw SupervisorError(code: .spawnFailed, message: "cannot run an empty command")
        }
        if let prepared = request.prepared {
            if prepared.arguments.containsNUL { throw failure("an argument contains a NUL byte") }
            if prepared.environment.containsNUL { throw failure("an environment entry contains a NUL byte") }
        } else {
            if request.arguments.contains(where: containsNUL) {
                throw failure("an argument contains a NUL byte")
            }
            if request.environment.contains(where: containsNUL) {
                throw failure("an environment entry contains a NUL byte")
            }
        }
        if let directory = request.workingDirectory, containsNUL(directory) {
            throw failure("the working directory contains a NUL byte")
        }
        let descriptors = [request.standardInput, request.standardOutput, request.standardError]
        guard descriptors.allSatisfy(isValid), request.directives.map({ $0 >= 0 }) ?? true else {
            throw failure("a descriptor is negative")
        }

        var pid: pid_t = -1
        var pidfd: Int32 = -1
        var failedStep = SP_SPAWN_STEP_OTHER
        let limits = request.resourceLimits
        var limitBits: UInt32 = 0
        if !limits.isEmpty {
            if limits.openFiles != nil { limitBits |= UInt32(SP_LIMIT_NOFILE) }
            if limits.addressSpace != nil { limitBits |= UInt32(SP_LIMIT_AS) }
            if limits.cpuSeconds != nil { limitBits |= UInt32(SP_LIMIT_CPU) }
            if limits.coreBytes != nil { limitBits |= UInt32(SP_LIMIT_CORE) }
        }
        /// Why the child could not be started, or nil when it was.
        func spawn(
            _ argv: UnsafePointer<UnsafeMutablePointer<CChar>?>,
            _ envp: UnsafePointer<UnsafeMutablePointer<CChar>?>
        ) -> Errno? {
            // Not empty: checked above.
            guard let file = argv[0] else { return .invalidArgument }
            return withOptionalCString(request.workingDirectory) { cwd in
                var options = sp_spawn_options(
                    file: file,
                    argv: argv,
                    envp: envp,
                    cwd: cwd,
                    stdin_fd: number(request.standardInput),
                    stdout_fd: number(request.standardOutput),
                    stderr_fd: number(request.standardError),
                    directive_fd: request.directives ?? -1,
                    cgroup_procs_fd: request.cgroupProcesses ?? -1,
                    cgroup_fd: request.cgroupDirectory ?? -1,
                    set_credentials: request.credentials == nil ? 0 : 1,
                    uid: request.credentials?.userID ?? 0,
                    gid: request.credentials?.groupID ?? 0,
                    set_nice: request.nice == nil ? 0 : 1,
                    nice: request.nice ?? 0,
                    set_limits: limitBits,
                    limit_nofile: limits.openFiles ?? 0,
                    limit_as: limits.addressSpace ?? 0,
                    limit_cpu: limits.cpuSeconds ?? 0,
                    limit_core: limits.coreBytes ?? 0,
                    failed_step: SP_SPAWN_STEP_OTHER
                )
                do throws(Errno) {
                    _ = try SystemCall.checking { sp_spawn(&options, &pid, &pidfd) }
                    return nil
                } catch {
                    failedStep = options.failed_step
                    return error
                }
            }
        }
        let result: Errno?
        if let prepared = request.prepared {
            result = prepared.arguments.withPointers { argv in
                prepared.environment.withPointers(appending: request.preparedExtras) { envp in spawn(argv, envp) }
            }
        } else {
            result = withCStringArray(request.arguments) { argv in
                withCStringArray(request.environment) { envp in
                    guard let argv, let envp else { return .noMemory }
                    return spawn(argv, envp)
                }
            }
        }
        if let result {
            switch failedStep {
            case SP_SPAWN_STEP_NICE:
                throw failure("cannot set its nice value to \(request.nice ?? 0): \(result)")
            case SP_SPAWN_STEP_LIMIT_NOFILE:
                throw failure(limitFailure("nofile", limits.openFiles, result))
            case SP_SPAWN_STEP_LIMIT_AS:
                throw failure(limitFailure("as", limits.addressSpace, result))
            case SP_SPAWN_STEP_LIMIT_CPU:
                throw failure(limitFailure("cpu", limits.cpuSeconds, result))
            case SP_SPAWN_STEP_LIMIT_CORE:
                throw failure(limitFailure("core", limits.coreBytes, result))
            default:
                break
            }
            if let directory = request.workingDirectory,
                failedStep == SP_SPAWN_STEP_CWD || cannotEnter(directory, because: result)
            {
                throw failure("cannot enter its working directory \(directory): \(result)")
            }
            throw failure(result.description)
        }
        return SpawnedProcess(pid: pid, pidfd: pidfd >= 0 ? pidfd : nil)
    }

    /// `cannot set its rlimit nofile to 64: Operation not permitted`.
    private static func limitFailure(_ name: String, _ value: UInt64?, _ error: Errno) -> String {
        let shown = value == SpawnRequest.ResourceLimits.infinity ? "infinity" : "\(value ?? 0)"
        return "cannot set its rlimit \(name) to \(shown): \(error)"
    }

    /// Whether a spawn that failed with `error` before the child ran (looking for the program
    /// relative to `directory`) failed because `directory` is missing or no folder: then the
    /// error names the folder, not the program. Only called on failure.
    private static func cannotEnter(_ directory: String, because error: Errno) -> Bool {
        guard error.rawValue == ENOENT || error.rawValue == ENOTDIR else { return false }
        var information = stat()
        return stat(directory, &information) != 0 || (information.st_mode & S_IFMT) != S_IFDIR
    }

    private static func containsNUL(_ string: String) -> Bool {
        string.utf8.contains(0)
    }

    private static func isValid(_ descriptor: SpawnRequest.Descriptor) -> Bool {
        if case .fileDescriptor(let fd) = descriptor { return fd >= 0 }
        return true
    }

    private static func number(_ descriptor: SpawnRequest.Descriptor) -> Int32 {
        switch descriptor {
        case .nullDevice: -1
        case .fileDescriptor(let fd): fd
        }
    }

    /// Calls `body` with a NULL-terminated array of C strings copied from
    /// `strings`, or with `nil` when memory ran out; frees them afterwards.
    private static func withCStringArray<Result>(
        _ strings: [String],
        _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>?) -> Result
    ) -> Result {
        var pointers = strings.map { strdup($0) }
        defer { for pointer in pointers { free(pointer) } }
        if pointers.contains(where: { $0 == nil }) { return body(nil) }
        pointers.append(nil)
        return pointers.withUnsafeBufferPointer { body($0.baseAddress) }
    }

    private static func withOptionalCString<Result>(
        _ string: String?,
        _ body: (UnsafePointer<CChar>?) -> Result
    ) -> Result {
        guard let string else { return body(nil) }
        return string.withCString(body)
    }
}
