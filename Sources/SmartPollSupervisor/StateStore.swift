import CSmartPollPosix
import Glibc
import SmartPollProtocol
import SmartPollSystem

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
            SystemCall.close(descriptor)
        }
    }

    /// Creates the directory (0700, parents too) and `results/` when missing, and opens them.
    /// Called again before each write until it succeeds.
    ///
    /// - Throws: `.systemCallFailed`, with the sentence the log and `status` show, such as
    ///   `cannot create /var/lib/smartpoll: Permission denied`.
    func prepare() throws(SupervisorError) {
        if directoryDescriptor < 0 {
            do throws(Errno) {
                _ = try SystemCall.checking { sp_make_directories(directory, 0o700) }
            } catch {
                throw Self.failed("cannot create \(directory): \(error)")
            }
            do throws(Errno) {
                directoryDescriptor = try SystemCall.checking { sp_open_directory(directory) }
            } catch {
                throw Self.failed("cannot open \(directory): \(error)")
            }
        }
        if resultsDescriptor < 0 {
            let folder = "\(directory)/\(StateStore.resultsName)"
            do throws(Errno) {
                _ = try SystemCall.checking { mkdirat(directoryDescriptor, StateStore.resultsName, 0o700) }
            } catch .fileExists {
                // Made by an earlier start, as wanted.
            } catch {
                throw Self.failed("cannot create \(folder): \(error)")
            }
            do throws(Errno) {
                resultsDescriptor = try SystemCall.retrying {
                    openat(directoryDescriptor, StateStore.resultsName, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
                }
            } catch {
                throw Self.failed("cannot open \(folder): \(error)")
            }
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
            do throws(Errno) {
                lockDescriptor = try SystemCall.checking { sp_lock_file(directoryDescriptor, StateStore.lockName) }
                return
            } catch .wouldBlock {
                // Held by another process: wait for it below.
            } catch {
                // A lock file we cannot create does not stop the supervisor; the state still is.
                return
            }
            if sp_monotonic_ns() >= deadline {
                throw SupervisorError(
                    code: .systemCallFailed,
                    message: "another supervisor uses the state directory \(directory) "
                        + "(\(directory)/\(StateStore.lockName) is locked)")
            }
            // An interrupted sleep only makes this wait shorter; the deadline bounds the loop.
            _ = usleep(20_000)
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
        let stateFile = readFile(StateStore.stateName, in: directoryDescriptor, limit: StateStore.maximumStateSize)
        if case .failure(.noSuchFileOrDirectory) = stateFile {
            loaded.notes.append((.info, "no saved state in \(directory) yet; starting afresh"))
            collectGarbage(keeping: [], notes: &loaded.notes)
            return loaded
        }
        let decoded: (SavedState, [String: SavedStateFormat.ResultReference])
        do throws(SavedStateFormat.Problem) {
            switch stateFile {
            case .success(let bytes): decoded = try SavedStateFormat.decode(bytes)
            case .failure(let error): throw SavedStateFormat.Problem(message: "cannot read it: \(error)")
            }
        } catch let problem {
            let stamp = Timestamp.now().formatted().replacingColons()
            var note = moveAside(
                StateStore.stateName, in: directoryDescriptor, folder: directory, because: problem.message,
                suffix: ".corrupt-" + stamp)
            // The result files it named go with it, kept for whoever looks into it.
            if resultsDescriptor >= 0 {
                SystemCall.close(resultsDescriptor)
                resultsDescriptor = -1
                let target = "\(StateStore.resultsName).corrupt-\(stamp)"
                do throws(Errno) {
                    _ = try SystemCall.checking { sp_renameat(directoryDescriptor, StateStore.resultsName, target) }
                    note += " and \(directory)/\(StateStore.resultsName) to \(directory)/\(target)"
                } catch {
                    note += "; \(directory)/\(StateStore.resultsName) could not be moved aside (\(error))"
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
        let bytes: [UInt8]
        switch readFile(reference.file, in: resultsDescriptor, limit: StateStore.maximumResultSize) {
        case .success(let read):
            bytes = read
        case .failure(.noSuchFileOrDirectory):
            return .failure(ResultProblem(message: "is missing", moveAside: false))
        case .failure(let error):
            return .failure(ResultProblem(message: "cannot be read: \(error)", moveAside: true))
        }
        guard bytes.count == reference.size, SavedStateFormat.checksum(bytes) == reference.checksum else {
            let sizes = "\(bytes.count) bytes, \(reference.size) expected"
            let message = "does not match the state file (\(sizes), or a different checksum)"
            return .failure(ResultProblem(message: message, moveAside: true))
        }
        return .success(bytes)
    }

    /// The whole of `name` in the folder `folder`, which is refused when larger than `limit`.
    private func readFile(_ name: String, in folder: Int32, limit: Int) -> Result<[UInt8], Errno> {
        var pointer: UnsafeMutableRawPointer?
        var length = 0
        do throws(Errno) {
            _ = try SystemCall.checking { sp_read_file(folder, name, limit, &pointer, &length) }
        } catch {
            return .failure(error)
        }
        // Never nil after success (sp_read_file's contract).
        guard let pointer else { return .success([]) }
        defer { free(pointer) }
        return .success(Array(UnsafeRawBufferPointer(start: pointer, count: length)))
    }

    /// Renames a file that cannot be used out of the way, and says so in one line.
    private func moveAside(
        _ name: String, in descriptor: Int32, folder: String, because reason: String, suffix: String? = nil
    ) -> String {
        let target = name + (suffix ?? ".corrupt-" + Timestamp.now().formatted().replacingColons())
        do throws(Errno) {
            _ = try SystemCall.checking { sp_renameat(descriptor, name, target) }
        } catch {
            return "\(folder)/\(name) is unusable (\(reason)) and could not be moved aside (\(error)); "
                + "it will be replaced"
        }
        return "\(folder)/\(name) is unusable (\(reason)); moved it aside to \(folder)/\(target)"
    }

    /// Deletes result files that no state file names (left by writes that were interrupted).
    private func collectGarbage(
        keeping kept: Set<String>, notes: inout [(level: SupervisorLog.Level, message: String)]
    ) {
        guard resultsDescriptor >= 0 else { return }
        // Unlisted files are only left behind, to be collected by a later start.
        guard let duplicate = try? SystemCall.checking({ dup(resultsDescriptor) }) else { return }
        guard let stream = fdopendir(duplicate) else {
            SystemCall.close(duplicate)
            return
        }
        // closedir reports only what close does (see SystemCall.close): nothing to act on.
        defer { _ = closedir(stream) }
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
            // Best effort: a result file no state file names is deleted at the next start.
            for file in written { _ = unlinkat(resultsDescriptor, file, 0) }
            return problem
        }
        for (name, task) in state.tasks {
            guard let result = task.result else { continue }
            let file = "\(name).\(result.run)"
            if let durable = durableFiles[name], durable.file == file {
                references[name] = durable
                continue
            }
            var step = SP_FILE_STEP_NONE
            do throws(Errno) {
                _ = try SystemCall.checking {
                    result.output.withUnsafeBytes {
                        sp_write_file_synced(resultsDescriptor, file, $0.baseAddress, $0.count, &step)
                    }
                }
            } catch {
                throw abandon(failure("\(StateStore.resultsName)/\(file)", step: step, error: error))
            }
            references[name] = SavedStateFormat.ResultReference(
                file: file, size: result.output.count, checksum: SavedStateFormat.checksum(result.output))
            written.append(file)
        }
        if !written.isEmpty {
            do throws(Errno) {
                _ = try SystemCall.checking { sp_fsync(resultsDescriptor) }
            } catch {
                throw abandon(failure(StateStore.resultsName, step: SP_FILE_STEP_FSYNC_DIRECTORY, error: error))
            }
        }
        let bytes = SavedStateFormat.encode(state, resultFiles: references, written: Timestamp.now(), pid: pid)
        var step = SP_FILE_STEP_NONE
        let kept = Set(references.values.map(\.file))
        do throws(Errno) {
            _ = try SystemCall.checking {
                bytes.withUnsafeBytes {
                    sp_replace_file(
                        directoryDescriptor, StateStore.temporaryName, StateStore.stateName,
                        $0.baseAddress, $0.count, &step)
                }
            }
        } catch {
            let renamed = step == SP_FILE_STEP_RENAME || step == SP_FILE_STEP_FSYNC_DIRECTORY
            let problem = failure(renamed ? StateStore.stateName : StateStore.temporaryName, step: step, error: error)
            guard step == SP_FILE_STEP_FSYNC_DIRECTORY else { throw abandon(problem) }
            // Renamed, but not flushed: the new state file names the new results (they must not
            // be written again), and the old one may come back after a crash (its results stay).
            obsoleteFiles.formUnion(durableFiles.values.map(\.file).filter { !kept.contains($0) })
            durableFiles = references
            throw problem
        }
        obsoleteFiles.formUnion(durableFiles.values.map(\.file))
        // Best effort: a result file no state file names is deleted at the next start.
        for file in obsoleteFiles.subtracting(kept) { _ = unlinkat(resultsDescriptor, file, 0) }
        obsoleteFiles = []
        durableFiles = references
    }

    /// `.systemCallFailed`, with the sentence the log and `status` show.
    private static func failed(_ message: String) -> SupervisorError {
        SupervisorError(code: .systemCallFailed, message: message)
    }

    private func failure(_ file: String, step: sp_file_step, error: Errno) -> SupervisorError {
        let action: String
        switch step {
        case SP_FILE_STEP_OPEN: action = "create"
        case SP_FILE_STEP_WRITE: action = "write"
        case SP_FILE_STEP_FSYNC: action = "flush (fsync)"
        case SP_FILE_STEP_CLOSE: action = "close"
        case SP_FILE_STEP_RENAME: action = "rename \(StateStore.temporaryName) to"
        case SP_FILE_STEP_FSYNC_DIRECTORY: action = "flush (fsync) the folder of"
        default: action = "write"
        }
        return Self.failed("cannot \(action) \(directory)/\(file): \(error)")
    }
}

extension String {
    /// `2026-11-30T01:44:32.123Z` as `2026-11-30T01-44-32.123Z`, for a file name.
    fileprivate func replacingColons() -> String {
        String(map { $0 == ":" ? "-" : $0 })
    }
}
