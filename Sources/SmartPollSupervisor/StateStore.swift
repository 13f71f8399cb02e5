import CSmartPollPosix
import SmartPollProtocol
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The files of a `state_dir`:
///
/// - `state.json`: everything but the results' bytes (``SavedStateFormat``), replaced
///   atomically: written as `state.json.tmp`, fsynced, renamed over `state.json`, and the
///   directory fsynced, so a crash at any point leaves the old file or the new one.
/// - `results/TASK.RUN`: one task's last successful output, raw. A result file is written (and
///   fsynced) once, before the `state.json` that names it, and never changed; files no
///   `state.json` names any more are deleted after the rename. So a large result is written
///   once, not with every change of any task, and the two files always agree.
/// - `supervisor.lock`: an advisory lock held while a supervisor uses the directory.
///
/// - Important: Every call blocks on the file system; the supervisor calls them from its loop,
///   coalesced (see `Supervisor+Persistence`).
final class StateStore {
    let directory: String
    static let stateName = "state.json"
    static let temporaryName = "state.json.tmp"
    static let resultsName = "results"
    static let lockName = "supervisor.lock"
    static let maximumStateSize = 64 << 20
    static let maximumResultSize = (1 << 30) + 1

    private var directoryDescriptor: Int32 = -1
    private var resultsDescriptor: Int32 = -1
    private var lockDescriptor: Int32 = -1
    /// The result file each task's `state.json` names.
    private var durableFiles: [String: SavedStateFormat.ResultReference] = [:]
    /// Result files an earlier `state.json` named, deleted after the next complete write: until
    /// the folder has been flushed, a crash may bring that file back.
    private var obsoleteFiles: Set<String> = []

    var statePath: String { directory + "/" + StateStore.stateName }

    init(directory: String) {
        self.directory = directory
    }

    deinit {
        for descriptor in [resultsDescriptor, directoryDescriptor, lockDescriptor] where descriptor >= 0 {
            close(descriptor)
        }
    }

    /// Creates the directory (0700, parents too) and `results/` when missing, and opens them.
    /// Called again before each write until it succeeds.
    ///
    /// - Throws: `.systemCallFailed`, with the sentence the log and `status` show, such as
    ///   `cannot create /var/lib/smartpoll: Permission denied`.
    func prepare() throws(SupervisorError) {
        if directoryDescriptor < 0 {
            let made = sp_make_directories(directory, 0o700)
            guard made == 0 else { throw Self.failed("cannot create", directory, errno: made) }
            let descriptor = sp_open_directory(directory)
            guard descriptor >= 0 else { throw Self.failed("cannot open", directory, errno: errno) }
            directoryDescriptor = descriptor
        }
        if resultsDescriptor < 0 {
            let results = directory + "/" + StateStore.resultsName
            if mkdirat(directoryDescriptor, StateStore.resultsName, 0o700) != 0 && errno != EEXIST {
                throw Self.failed("cannot create", results, errno: errno)
            }
            let descriptor = openat(directoryDescriptor, StateStore.resultsName, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            guard descriptor >= 0 else { throw Self.failed("cannot open", results, errno: errno) }
            resultsDescriptor = descriptor
        }
    }

    /// Takes the directory's lock, waiting up to `patience` for a supervisor that is exiting.
    ///
    /// - Throws: when another live process holds it: two supervisors must not share a
    ///   `state_dir`.
    func lock(patience: Duration = .seconds(1)) throws(SupervisorError) {
        guard directoryDescriptor >= 0, lockDescriptor < 0 else { return }
        let deadline = sp_monotonic_ns() + (DurationFormat.nanoseconds(of: patience) ?? 0)
        while true {
            let descriptor = sp_lock_file(directoryDescriptor, StateStore.lockName)
            if descriptor >= 0 {
                lockDescriptor = descriptor
                return
            }
            let error = errno
            guard error == EWOULDBLOCK else {
                // A lock file we cannot create does not stop the supervisor; the state still is.
                return
            }
            if sp_monotonic_ns() >= deadline {
                throw SupervisorError(
                    code: .systemCallFailed,
                    message: "another supervisor uses the state directory \(directory) "
                        + "(\(directory)/\(StateStore.lockName) is locked)")
            }
            usleep(20_000)
        }
    }

    // MARK: Loading

    /// What ``load()`` found.
    struct Loaded {
        var state: SavedState?
        /// Lines for the log: what was restored, moved aside or cleaned up.
        var notes: [(level: SupervisorLog.Level, message: String)] = []
    }

    /// Reads `state.json` and the result files it names. A state file that cannot be read or
    /// parsed is renamed to `state.json.corrupt-TIME` (never deleted) and the supervisor
    /// starts without it; a result file that is missing or does not match its checksum is
    /// renamed to `FILE.corrupt` and that task starts without a result. Leftovers of an
    /// interrupted write are removed.
    func load() -> Loaded {
        var loaded = Loaded()
        guard directoryDescriptor >= 0 else { return loaded }
        if unlinkat(directoryDescriptor, StateStore.temporaryName, 0) == 0 {
            let file = directory + "/" + StateStore.temporaryName
            loaded.notes.append((.info, "removed \(file), left by a write that was interrupted"))
        }
        var pointer: UnsafeMutableRawPointer?
        var length = 0
        let error = sp_read_file(
            directoryDescriptor, StateStore.stateName, StateStore.maximumStateSize, &pointer, &length)
        if error == ENOENT {
            loaded.notes.append((.info, "no saved state in \(directory) yet; starting afresh"))
            collectGarbage(keeping: [], notes: &loaded.notes)
            return loaded
        }
        var bytes: [UInt8] = []
        if error == 0, let pointer {
            bytes = Array(UnsafeRawBufferPointer(start: pointer, count: length))
            free(pointer)
        }
        let decoded: (SavedState, [String: SavedStateFormat.ResultReference])
        do throws(SavedStateFormat.Problem) {
            guard error == 0 else {
                throw SavedStateFormat.Problem(message: "cannot read it: \(SupervisorError.errorText(error))")
            }
            decoded = try SavedStateFormat.decode(bytes)
        } catch let problem {
            let stamp = Timestamp.now().formatted().replacingColons()
            var note = moveAside(
                StateStore.stateName, in: directoryDescriptor, folder: directory, because: problem.message,
                suffix: ".corrupt-" + stamp)
            // The result files it named go with it, kept for whoever looks into it.
            if resultsDescriptor >= 0 {
                close(resultsDescriptor)
                resultsDescriptor = -1
                let target = "\(StateStore.resultsName).corrupt-\(stamp)"
                if sp_renameat(directoryDescriptor, StateStore.resultsName, target) == 0 {
                    note += " and \(directory)/\(StateStore.resultsName) to \(directory)/\(target)"
                }
                do throws(SupervisorError) {
                    try prepare()
                } catch {
                    loaded.notes.append((.error, error.message))
                }
            }
            loaded.notes.append((.error, note + "; starting without saved state"))
            return loaded
        }
        var (state, references) = decoded
        for (name, reference) in references.sorted(by: { $0.key < $1.key }) {
            switch readResult(reference) {
            case .success(let output):
                state.tasks[name]?.result?.output = output
                durableFiles[name] = reference
            case .failure(let problem):
                state.tasks[name]?.result = nil
                references[name] = nil
                let folder = directory + "/" + StateStore.resultsName
                if problem.moveAside {
                    let note = moveAside(
                        reference.file, in: resultsDescriptor, folder: folder, because: problem.message,
                        suffix: ".corrupt")
                    loaded.notes.append((.error, note + "; task \(name) starts without its result"))
                } else {
                    let file = folder + "/" + reference.file
                    loaded.notes.append((.error, "the result of task \(name) is lost: \(file) \(problem.message)"))
                }
            }
        }
        collectGarbage(keeping: Set(references.values.map(\.file)), notes: &loaded.notes)
        loaded.state = state
        return loaded
    }

    private struct ResultProblem: Error {
        var message: String
        var moveAside: Bool
    }

    private func readResult(_ reference: SavedStateFormat.ResultReference) -> Result<[UInt8], ResultProblem> {
        guard resultsDescriptor >= 0 else {
            return .failure(ResultProblem(message: "cannot be opened", moveAside: false))
        }
        var pointer: UnsafeMutableRawPointer?
        var length = 0
        let error = sp_read_file(resultsDescriptor, reference.file, StateStore.maximumResultSize, &pointer, &length)
        guard error == 0, let pointer else {
            let message = error == ENOENT ? "is missing" : "cannot be read: \(SupervisorError.errorText(error))"
            return .failure(ResultProblem(message: message, moveAside: error != ENOENT))
        }
        let bytes = Array(UnsafeRawBufferPointer(start: pointer, count: length))
        free(pointer)
        guard bytes.count == reference.size, SavedStateFormat.checksum(bytes) == reference.checksum else {
            let sizes = "\(bytes.count) bytes, \(reference.size) expected"
            let message = "does not match the state file (\(sizes), or a different checksum)"
            return .failure(ResultProblem(message: message, moveAside: true))
        }
        return .success(bytes)
    }

    /// Renames a file that cannot be used out of the way, and says so in one line.
    private func moveAside(
        _ name: String, in descriptor: Int32, folder: String, because reason: String, suffix: String? = nil
    ) -> String {
        let target = name + (suffix ?? ".corrupt-" + Timestamp.now().formatted().replacingColons())
        let renamed = sp_renameat(descriptor, name, target)
        guard renamed == 0 else {
            let why = SupervisorError.errorText(renamed)
            return "\(folder)/\(name) is unusable (\(reason)) and could not be moved aside (\(why)); "
                + "it will be replaced"
        }
        return "\(folder)/\(name) is unusable (\(reason)); moved it aside to \(folder)/\(target)"
    }

    /// Deletes result files that no state file names (left by writes that were interrupted).
    private func collectGarbage(
        keeping kept: Set<String>, notes: inout [(level: SupervisorLog.Level, message: String)]
    ) {
        guard resultsDescriptor >= 0 else { return }
        let duplicate = dup(resultsDescriptor)
        guard duplicate >= 0, let stream = fdopendir(duplicate) else {
            if duplicate >= 0 { close(duplicate) }
            return
        }
        defer { closedir(stream) }
        rewinddir(stream)
        var removed = 0
        while let entry = readdir(stream) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name == "." || name == ".." || kept.contains(name) || name.hasSuffix(".corrupt") { continue }
            if unlinkat(resultsDescriptor, name, 0) == 0 { removed += 1 }
        }
        if removed > 0 {
            let files = "\(removed) result file\(removed == 1 ? "" : "s")"
            notes.append((.info, "removed \(files) no state file names (left by interrupted writes)"))
        }
    }

    // MARK: Saving

    /// Writes `state` durably: new result files first (each fsynced, then the folder), then
    /// `state.json` atomically; then deletes the result files it no longer names.
    ///
    /// - Throws: `.systemCallFailed`, with the sentence the log and `status` show, such as
    ///   `cannot create /var/lib/smartpoll/state.json.tmp: No space left on device`. The
    ///   previous state file is then still in place and whole.
    func save(_ state: SavedState, pid: Int32) throws(SupervisorError) {
        try prepare()
        var references: [String: SavedStateFormat.ResultReference] = [:]
        // Result files written by this call: no state file names them until the rename, so a
        // failure deletes them again.
        var written: [String] = []
        func abandon(_ problem: SupervisorError) -> SupervisorError {
            for file in written { unlinkat(resultsDescriptor, file, 0) }
            return problem
        }
        for (name, task) in state.tasks {
            guard let result = task.result else { continue }
            let file = "\(name).\(result.run)"
            if let durable = durableFiles[name], durable.file == file {
                references[name] = durable
                continue
            }
            var step: Int32 = 0
            let error = result.output.withUnsafeBytes { buffer in
                sp_write_file_synced(resultsDescriptor, file, buffer.baseAddress, buffer.count, &step)
            }
            guard error == 0 else {
                throw abandon(failure("\(StateStore.resultsName)/\(file)", step: step, error: error))
            }
            references[name] = SavedStateFormat.ResultReference(
                file: file, size: result.output.count, checksum: SavedStateFormat.checksum(result.output))
            written.append(file)
        }
        if !written.isEmpty {
            let error = sp_fsync(resultsDescriptor)
            guard error == 0 else {
                throw abandon(failure(StateStore.resultsName, step: Int32(SP_FILE_STEP_FSYNC_DIRECTORY), error: error))
            }
        }
        let bytes = SavedStateFormat.encode(state, resultFiles: references, written: Timestamp.now(), pid: pid)
        var step: Int32 = 0
        let error = bytes.withUnsafeBytes { buffer in
            sp_replace_file(
                directoryDescriptor, StateStore.temporaryName, StateStore.stateName, buffer.baseAddress, buffer.count,
                &step)
        }
        let kept = Set(references.values.map(\.file))
        guard error == 0 else {
            let namesStateFile = step == Int32(SP_FILE_STEP_RENAME) || step == Int32(SP_FILE_STEP_FSYNC_DIRECTORY)
            let file = namesStateFile ? StateStore.stateName : StateStore.temporaryName
            let problem = failure(file, step: step, error: error)
            guard step == Int32(SP_FILE_STEP_FSYNC_DIRECTORY) else { throw abandon(problem) }
            // Renamed, but not flushed: the new state file names the new results (they must not
            // be written again), and the old one may come back after a crash (its results stay).
            obsoleteFiles.formUnion(durableFiles.values.map(\.file).filter { !kept.contains($0) })
            durableFiles = references
            throw problem
        }
        obsoleteFiles.formUnion(durableFiles.values.map(\.file))
        for file in obsoleteFiles.subtracting(kept) { unlinkat(resultsDescriptor, file, 0) }
        obsoleteFiles = []
        durableFiles = references
    }

    /// `.systemCallFailed`, as `cannot open PATH: strerror(errno)`.
    private static func failed(_ action: String, _ path: String, errno code: Int32) -> SupervisorError {
        SupervisorError(code: .systemCallFailed, message: "\(action) \(path): \(SupervisorError.errorText(code))")
    }

    private func failure(_ file: String, step: Int32, error: Int32) -> SupervisorError {
        let action: String
        switch Int(step) {
        case Int(SP_FILE_STEP_OPEN): action = "create"
        case Int(SP_FILE_STEP_WRITE): action = "write"
        case Int(SP_FILE_STEP_FSYNC): action = "flush (fsync)"
        case Int(SP_FILE_STEP_CLOSE): action = "close"
        case Int(SP_FILE_STEP_RENAME): action = "rename \(StateStore.temporaryName) to"
        case Int(SP_FILE_STEP_FSYNC_DIRECTORY): action = "flush (fsync) the folder of"
        default: action = "write"
        }
        return Self.failed("cannot \(action)", directory + "/" + file, errno: error)
    }
}

extension String {
    /// `2026-11-30T01:44:32.123Z` as `2026-11-30T01-44-32.123Z`, for a file name.
    fileprivate func replacingColons() -> String {
        String(map { $0 == ":" ? "-" : $0 })
    }
}
