import CSmartPollPosix
import Glibc
import SmartPollProtocol
import SmartPollSystem

/// The files of a `state_dir`:
///
/// - `state.json`: a snapshot of everything but the results' bytes (``SavedStateFormat``),
///   replaced atomically: written as `state.json.tmp`, fsynced, renamed over `state.json`, and
///   the directory fsynced, so a crash at any point leaves the old file or the new one.
/// - `journal`: what changed since the snapshot, one checksummed record a line
///   (``StateJournal``): each write appends the records of the tasks that changed and fsyncs,
///   so a write costs what changed. A torn last line is ignored and cut off at start. When the
///   journal outgrows the snapshot, a compaction writes a new snapshot (naming the next journal
///   generation), then a fresh journal (`journal.tmp` renamed over it): a crash between the two
///   leaves a snapshot whose generation the old journal does not have, so that journal is
///   ignored, and the snapshot holds all it said.
/// - `results/TASK.RUN`: one task's last successful output, raw, when it is larger than
///   ``largestInlineResult`` (a smaller one is inline in its task's record: a file would cost a
///   create, its flush and the folder's, and an unlink, for every run of a task that polls). A
///   result file is written (and fsynced) once, before the record that names it, and never
///   changed; a file no durable record names any more is deleted once the record that replaced
///   it is durable.
/// - `supervisor.lock`: an advisory lock held while a supervisor uses the directory.
///
/// Every file is opened with O_NOFOLLOW and read only when fstat says it is a regular file (a
/// FIFO must not block the supervisor); anything else at a state or result file's name is moved
/// aside like a corrupt file. Whatever sits at a temporary name is removed before writing.
///
/// - Important: Every call blocks on the file system. One thread uses a store at a time: the
///   loop's while it restores the state at start (the loop is not serving yet), then only the
///   ``StateWriter``'s thread, until it is stopped (hence `@unchecked Sendable`).
final class StateStore: @unchecked Sendable {
    let directory: String
    static let stateName = "state.json"
    static let temporaryName = "state.json.tmp"
    static let journalName = "journal"
    static let journalTemporaryName = "journal.tmp"
    static let resultsName = "results"
    static let lockName = "supervisor.lock"
    static let maximumStateSize = 64 << 20
    static let maximumJournalSize = 1 << 30
    static let maximumResultSize = (1 << 30) + 1
    /// A journal shorter than this is never compacted, however small the snapshot.
    static let smallestCompactedJournal = 1 << 20
    /// Results of at most this many bytes are inline in their task's record (Base64), larger
    /// ones in a file of their own.
    static let largestInlineResult = 4096
    /// ``largestInlineResult``, or another size for a test of result files.
    let inlineLimit: Int

    private var directoryDescriptor: Int32 = -1
    private var resultsDescriptor: Int32 = -1
    private var lockDescriptor: Int32 = -1
    private var journalDescriptor: Int32 = -1
    /// The result file each task's durable record names.
    private var durableFiles: [String: SavedStateFormat.ResultReference] = [:]
    /// Result files an earlier `state.json` named, deleted after the next complete write: until
    /// the folder has been flushed, a crash may bring that file back.
    private var obsoleteFiles: Set<String> = []
    /// What the files hold (tasks with their results' bytes, the run id mark): a compaction
    /// writes it whole.
    private(set) var mirror = SavedState()
    /// The journal generation `state.json` names, and the length of the journal's whole lines.
    private(set) var journalGeneration = 0
    private(set) var journalLength = 0
    private var snapshotLength = 0
    /// The journal must be started afresh (by a compaction) before records are appended: it is
    /// missing, older than `state.json`, or a failed append could not be cut off.
    private(set) var needsCompaction = true
    /// A compaction that failed is tried again only once the journal has grown this long.
    private var nextCompactionLength = 0
    /// Lines for the log from the writes since the last call of ``takeNotes()``.
    private var notes: [String] = []

    var statePath: String { directory + "/" + StateStore.stateName }

    init(directory: String, inlineLimit: Int = StateStore.largestInlineResult) {
        self.directory = directory
        self.inlineLimit = inlineLimit
    }

    deinit {
        for descriptor in [journalDescriptor, resultsDescriptor, directoryDescriptor, lockDescriptor]
        where descriptor >= 0 {
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
            do throws(SupervisorError) {
                try checkOwnership()
            } catch {
                SystemCall.close(directoryDescriptor)
                directoryDescriptor = -1
                throw error
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

    /// Refuses a state directory that someone else could write (SPEC section 8, as the socket's
    /// folder): it must be owned by `userID` or root and writable by neither its group nor
    /// others (a shared sticky folder such as /tmp is refused too).
    ///
    /// - Throws: `.systemCallFailed` with the path and the reason; the supervisor does not start.
    ///   A directory that does not exist yet passes: ``prepare()`` creates it 0700.
    func checkOwnership(userID: uid_t = geteuid()) throws(SupervisorError) {
        var info = stat()
        do throws(Errno) {
            _ = try SystemCall.checking {
                directoryDescriptor >= 0 ? fstat(directoryDescriptor, &info) : stat(directory, &info)
            }
        } catch .noSuchFileOrDirectory {
            return
        } catch {
            throw Self.failed("cannot use the state directory \(directory): \(error)")
        }
        try SocketFolder.check(
            info, of: directory, userID: userID, role: "the state directory",
            risk: "who could replace the state files")
    }

    // MARK: Loading

    /// What ``load()`` found.
    struct Loaded {
        var state: SavedState?
        /// Lines for the log: what was restored, moved aside or cleaned up.
        var notes: [(level: SupervisorLog.Level, message: String)] = []
        /// Journal records applied on top of `state.json`.
        var journalRecords = 0
    }

    /// Reads `state.json`, the journal that continues it and the result files they name. A state
    /// file that cannot be read or parsed, is not a regular file, or whose counters contradict
    /// each other is renamed to `state.json.corrupt-TIME` (never deleted), with the journal and
    /// the results, and the supervisor starts without it; a torn journal line (a crash in the
    /// middle of an append) and what follows it are ignored and cut off; a result file that is
    /// missing or does not match its checksum is renamed to `FILE.corrupt` and that task starts
    /// without a result. Leftovers of an interrupted write are removed.
    func load() -> Loaded {
        var loaded = Loaded()
        guard directoryDescriptor >= 0 else { return loaded }
        for name in [StateStore.temporaryName, StateStore.journalTemporaryName] {
            var kind: mode_t = 0
            if sp_remove_stale(directoryDescriptor, name, &kind) == 1 {
                let file = directory + "/" + name
                let what = kind == S_IFREG ? "left by a write that was interrupted" : "it was \(Self.describe(kind))"
                loaded.notes.append((.info, "removed \(file), \(what)"))
            }
        }
        let stateFile = readFile(StateStore.stateName, in: directoryDescriptor, limit: StateStore.maximumStateSize)
        let journalFile = readFile(
            StateStore.journalName, in: directoryDescriptor, limit: StateStore.maximumJournalSize)
        if case .failure(.noSuchFileOrDirectory) = stateFile, case .failure(.noSuchFileOrDirectory) = journalFile {
            loaded.notes.append((.info, "no saved state in \(directory) yet; starting afresh"))
            collectGarbage(keeping: [], notes: &loaded.notes)
            return loaded
        }
        var decoded = SavedStateFormat.Decoded(state: SavedState(), references: [:], journal: 0)
        do throws(SavedStateFormat.Problem) {
            switch stateFile {
            case .success(let bytes):
                decoded = try SavedStateFormat.decode(bytes)
                snapshotLength = bytes.count
            case .failure(.noSuchFileOrDirectory):
                // A journal without a snapshot: generation 0 (the first compaction never finished).
                break
            case .failure(let error):
                throw SavedStateFormat.Problem(message: "cannot read it: \(describe(error, StateStore.stateName))")
            }
            journalGeneration = decoded.journal
            switch journalFile {
            case .success(let bytes):
                let journal = StateJournal.decode(bytes)
                if journal.generation == decoded.journal {
                    for record in journal.records { apply(record, to: &decoded) }
                    loaded.journalRecords = journal.records.count
                    journalLength = journal.validLength
                    needsCompaction = false
                    if let problem = journal.problem {
                        let cut = bytes.count - journal.validLength
                        loaded.notes.append(
                            (
                                .warning,
                                "\(directory)/\(StateStore.journalName): \(problem); ignored the last "
                                    + "\(cut) bytes (a write cut short by a crash) and cut them off"
                            ))
                    }
                } else if journal.generation != nil {
                    loaded.notes.append(
                        (
                            .info,
                            "\(directory)/\(StateStore.journalName) is older than \(StateStore.stateName) "
                                + "(a compaction was interrupted); ignored it"
                        ))
                }
            case .failure(.noSuchFileOrDirectory):
                break
            case .failure(let error):
                let note = moveAside(
                    StateStore.journalName, in: directoryDescriptor, folder: directory,
                    because: describe(error, StateStore.journalName))
                loaded.notes.append((.error, note))
            }
            if let contradiction = decoded.state.contradiction() {
                throw SavedStateFormat.Problem(message: "its counters contradict each other: \(contradiction)")
            }
        } catch let problem {
            loaded.notes.append((.error, moveAsideEverything(because: problem.message)))
            decoded = SavedStateFormat.Decoded(state: SavedState(), references: [:], journal: 0)
            journalGeneration = 0
            needsCompaction = true
            return loaded
        }
        var (state, references) = (decoded.state, decoded.references)
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
        mirror = state
        loaded.state = state
        return loaded
    }

    private func apply(_ record: StateJournal.Record, to decoded: inout SavedStateFormat.Decoded) {
        switch record {
        case .task(let name, let task, let reference):
            decoded.state.tasks[name] = task
            decoded.references[name] = reference
        case .removed(let name):
            decoded.state.tasks[name] = nil
            decoded.state.histories[name] = nil
            decoded.references[name] = nil
        case .history(let name, let keep, let entry):
            decoded.state.histories[name, default: RunHistory(capacity: keep)].append(entry, keeping: keep)
        case .lastRun(let run):
            decoded.state.lastRunID = max(decoded.state.lastRunID, run)
        }
    }

    /// Moves `state.json`, the journal and `results/` aside with one time stamp; the line for the log.
    private func moveAsideEverything(because reason: String) -> String {
        let stamp = Timestamp.now().formatted().replacingColons()
        var note = moveAside(
            StateStore.stateName, in: directoryDescriptor, folder: directory, because: reason,
            suffix: ".corrupt-" + stamp)
        let journalTarget = "\(StateStore.journalName).corrupt-\(stamp)"
        if sp_renameat(directoryDescriptor, StateStore.journalName, journalTarget) == 0 {
            note += ", \(directory)/\(StateStore.journalName) to \(directory)/\(journalTarget)"
        }
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
                note += "; \(error.message)"
            }
        }
        return note + "; starting without saved state"
    }

    /// A read error as a reason: a file that is not a regular file says what it is.
    private func describe(_ error: Errno, _ name: String, in folder: Int32? = nil) -> String {
        var info = stat()
        guard [EINVAL, EISDIR, ELOOP].contains(error.rawValue),
            fstatat(folder ?? directoryDescriptor, name, &info, AT_SYMLINK_NOFOLLOW) == 0,
            info.st_mode & S_IFMT != S_IFREG
        else { return "\(error)" }
        return "it is \(Self.describe(info.st_mode & S_IFMT)), not a regular file"
    }

    static func describe(_ kind: mode_t) -> String {
        switch kind {
        case S_IFIFO: "a FIFO"
        case S_IFLNK: "a symbolic link"
        case S_IFDIR: "a folder"
        case S_IFSOCK: "a socket"
        case S_IFCHR: "a character device"
        case S_IFBLK: "a block device"
        case S_IFREG: "a regular file"
        default: "a file of an unknown type"
        }
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
            let reason = describe(error, reference.file, in: resultsDescriptor)
            return .failure(ResultProblem(message: "cannot be read: \(reason)", moveAside: true))
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

    /// What changed since the last write, as the loop hands it over.
    struct Changes: Sendable {
        /// The changed tasks' whole saved state, results with their bytes.
        var tasks: [(name: String, task: SavedTask)] = []
        /// `tasks` is every task there is: the others were removed.
        var complete = false
        /// A new run id high-water mark to make durable.
        var lastRunID: Int?
        /// Runs that ended, for their tasks' `history`, in order: one journal record each.
        var historyAppends: [HistoryAppend] = []
    }

    /// One run's `history` entry, for task `name`, whose ring then keeps the newest `keep`.
    typealias HistoryAppend = (name: String, keep: Int, entry: HistoryReply.Entry)

    /// Makes `changes` durable: the new result files first (each fsynced, then the folder), then
    /// their records appended to the journal in one write and fsynced; then deletes the result
    /// files no record names any more, and compacts when the journal has outgrown the snapshot.
    /// A journal that must be started afresh makes this a compaction of the whole state.
    ///
    /// - Complexity: O(changed tasks) and their new results' bytes, but for a compaction.
    /// - Throws: `.systemCallFailed`, with the sentence the log and `status` show. What the
    ///   files held before is then still whole (a partial append is cut off).
    func write(_ changes: Changes, pid: Int32) throws(SupervisorError) {
        try prepare()
        let lastRunID = max(mirror.lastRunID, changes.lastRunID ?? 0)
        var removed: [String] = []
        if changes.complete {
            let kept = Set(changes.tasks.map(\.name))
            removed = mirror.tasks.keys.filter { !kept.contains($0) }.sorted()
        }
        // Entries of a task removed by this write go with it.
        let gone = Set(removed)
        let appends = changes.historyAppends.filter { !gone.contains($0.name) }
        // A task handed over as it already is on disk (every task, after a reload or the loop
        // starting) needs no record: only what changed is appended.
        let changed = changes.tasks.filter { mirror.tasks[$0.name] != $0.task }
        // What the files hold once this write is durable. Applied to the mirror in place, after
        // the append: a copy of it would cost every task's state at each write.
        func apply(to state: inout SavedState) {
            state.lastRunID = lastRunID
            for name in removed {
                state.tasks[name] = nil
                state.histories[name] = nil
            }
            for append in appends {
                state.histories[append.name, default: RunHistory(capacity: append.keep)].append(
                    append.entry, keeping: append.keep)
            }
            for (name, task) in changed { state.tasks[name] = task }
        }
        if needsCompaction || journalDescriptor < 0 {
            var next = mirror
            apply(to: &next)
            return try save(next, pid: pid)
        }
        if changed.isEmpty && removed.isEmpty && appends.isEmpty && lastRunID == mirror.lastRunID { return }
        var written: [String] = []
        func abandon(_ problem: SupervisorError) -> SupervisorError {
            // Best effort: a result file no record names is deleted at the next start.
            for file in written { _ = unlinkat(resultsDescriptor, file, 0) }
            return problem
        }
        var references: [String: SavedStateFormat.ResultReference?] = [:]
        for (name, task) in changed {
            guard let result = task.result else {
                references[name] = .some(nil)
                continue
            }
            do throws(SupervisorError) {
                references[name] = .some(try resultFile(of: name, result, written: &written))
            } catch {
                throw abandon(error)
            }
        }
        do throws(SupervisorError) {
            try flushResults(written)
        } catch {
            throw abandon(error)
        }
        // The mark first: a torn tail may cut the batch anywhere, and a task's record must
        // never survive without the mark that covers its run (the counters would contradict).
        var bytes: [UInt8] = []
        if lastRunID != mirror.lastRunID { bytes += StateJournal.encode(.lastRun(lastRunID)) }
        for (name, task) in changed {
            bytes += StateJournal.encode(.task(name, task, references[name] ?? nil))
        }
        for name in removed { bytes += StateJournal.encode(.removed(name)) }
        for append in appends { bytes += StateJournal.encode(.history(append.name, keep: append.keep, append.entry)) }
        var step = SP_FILE_STEP_NONE
        do throws(Errno) {
            _ = try SystemCall.checking {
                bytes.withUnsafeBytes {
                    sp_append_synced(journalDescriptor, off_t(journalLength), $0.baseAddress, $0.count, &step)
                }
            }
        } catch {
            // A partial line that could not be cut off would hide every later record: the
            // next write starts the journal afresh instead of appending.
            if step == SP_FILE_STEP_TRUNCATE { needsCompaction = true }
            throw abandon(failure(StateStore.journalName, step: step, error: error))
        }
        journalLength += bytes.count
        var obsolete: [String] = []
        for (name, reference) in references {
            if let old = durableFiles[name], old.file != reference?.file { obsolete.append(old.file) }
            durableFiles[name] = reference ?? nil
        }
        for name in removed {
            if let old = durableFiles.removeValue(forKey: name) { obsolete.append(old.file) }
        }
        // Best effort: a result file no record names is deleted at the next start.
        for file in obsolete { _ = unlinkat(resultsDescriptor, file, 0) }
        apply(to: &mirror)
    }

    /// Compacts (a new snapshot, then a fresh journal) when the journal has outgrown the
    /// snapshot. Called by the writer thread after it has reported a write done, so that the
    /// replies that waited for that write do not wait for the compaction too.
    func compactIfDue(pid: Int32) {
        guard journalDescriptor >= 0, !needsCompaction else { return }
        if journalLength > max(snapshotLength, StateStore.smallestCompactedJournal, nextCompactionLength) {
            do throws(SupervisorError) {
                try save(mirror, pid: pid)
            } catch {
                // What was appended is durable; the journal just keeps growing until a
                // compaction succeeds.
                nextCompactionLength = journalLength + max(snapshotLength, StateStore.smallestCompactedJournal)
                notes.append("compaction failed (\(error.message)); the journal keeps growing meanwhile")
            }
        }
    }

    /// Lines for the log from the writes since the last call.
    func takeNotes() -> [String] {
        defer { notes = [] }
        return notes
    }

    private func writeResult(
        _ output: [UInt8], file: String
    ) throws(SupervisorError) -> SavedStateFormat.ResultReference {
        var step = SP_FILE_STEP_NONE
        do throws(Errno) {
            _ = try SystemCall.checking {
                output.withUnsafeBytes {
                    sp_write_file_synced(resultsDescriptor, file, $0.baseAddress, $0.count, &step)
                }
            }
        } catch {
            throw failure("\(StateStore.resultsName)/\(file)", step: step, error: error)
        }
        return SavedStateFormat.ResultReference(
            file: file, size: output.count, checksum: SavedStateFormat.checksum(output))
    }

    /// Removes what sits at a temporary name before it is written (a leftover, or a link or FIFO
    /// someone planted there, which would make every write fail), and says so once.
    private func clearTemporary(_ name: String) {
        var kind: mode_t = 0
        guard sp_remove_stale(directoryDescriptor, name, &kind) == 1, kind != S_IFREG else { return }
        notes.append("removed \(directory)/\(name), \(Self.describe(kind)) in the way of the next write")
    }

    /// A compaction: writes `state` whole, durably, as a new snapshot, and starts a fresh journal.
    /// New result files first (each fsynced, then the folder), then `state.json` atomically
    /// (naming the next journal generation), then an empty journal of that generation
    /// atomically; then deletes the result files it no longer names.
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
            do throws(SupervisorError) {
                // Nil: inline.
                references[name] = try resultFile(of: name, result, written: &written)
            } catch {
                throw abandon(error)
            }
        }
        do throws(SupervisorError) {
            try flushResults(written)
        } catch {
            throw abandon(error)
        }
        let generation = journalGeneration + 1
        let bytes = SavedStateFormat.encode(
            state, resultFiles: references, written: Timestamp.now(), pid: pid, journal: generation)
        var step = SP_FILE_STEP_NONE
        let kept = Set(references.values.map(\.file))
        clearTemporary(StateStore.temporaryName)
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
            // Which state.json a crash leaves is unknown: the old journal stays (it continues the
            // old one and is ignored with the new one), and the next write compacts again, with
            // a generation above both.
            journalGeneration = generation
            mirror = state
            needsCompaction = true
            if journalDescriptor >= 0 {
                SystemCall.close(journalDescriptor)
                journalDescriptor = -1
            }
            throw problem
        }
        snapshotLength = bytes.count
        obsoleteFiles.formUnion(durableFiles.values.map(\.file))
        // Best effort: a result file no state file names is deleted at the next start.
        for file in obsoleteFiles.subtracting(kept) { _ = unlinkat(resultsDescriptor, file, 0) }
        obsoleteFiles = []
        durableFiles = references
        try startJournalAfresh(generation: generation, after: state)
    }

    /// After `state.json` naming `generation` is in place: the journal of that generation,
    /// empty. Until it is written, the old journal (older than the snapshot, so ignored at
    /// start) must not be appended to.
    private func startJournalAfresh(generation: Int, after state: SavedState) throws(SupervisorError) {
        journalGeneration = generation
        mirror = state
        needsCompaction = true
        if journalDescriptor >= 0 {
            SystemCall.close(journalDescriptor)
            journalDescriptor = -1
        }
        let header = StateJournal.header(generation: generation)
        var step = SP_FILE_STEP_NONE
        clearTemporary(StateStore.journalTemporaryName)
        do throws(Errno) {
            _ = try SystemCall.checking {
                header.withUnsafeBytes {
                    sp_replace_file(
                        directoryDescriptor, StateStore.journalTemporaryName, StateStore.journalName,
                        $0.baseAddress, $0.count, &step)
                }
            }
            journalDescriptor = try SystemCall.checking {
                sp_open_journal(directoryDescriptor, StateStore.journalName, off_t(header.count))
            }
        } catch {
            // The snapshot holds everything; the next write compacts again.
            throw failure(StateStore.journalName, step: step, error: error)
        }
        journalLength = header.count
        nextCompactionLength = 0
        needsCompaction = false
    }

    /// After ``load()``: appends go to the journal that was read (cut to its whole lines), when
    /// it continues `state.json`; otherwise the first write compacts.
    func openJournal() {
        guard !needsCompaction, journalDescriptor < 0, directoryDescriptor >= 0 else { return }
        do throws(Errno) {
            journalDescriptor = try SystemCall.checking {
                sp_open_journal(directoryDescriptor, StateStore.journalName, off_t(journalLength))
            }
        } catch {
            needsCompaction = true
        }
    }

    /// `.systemCallFailed`, with the sentence the log and `status` show.
    private static func failed(_ message: String) -> SupervisorError {
        SupervisorError(code: .systemCallFailed, message: message)
    }

    /// The file that holds `result`: nil when the result is small enough to be inline in its
    /// record; the durable one when it is the same run's; else a new one written (and fsynced)
    /// now and added to `written`.
    private func resultFile(
        of name: String, _ result: TaskResult, written: inout [String]
    ) throws(SupervisorError) -> SavedStateFormat.ResultReference? {
        guard result.output.count > inlineLimit else { return nil }
        let file = "\(name).\(result.run)"
        if let durable = durableFiles[name], durable.file == file { return durable }
        let reference = try writeResult(result.output, file: file)
        written.append(file)
        return reference
    }

    /// Flushes the results folder once new result files are in it, so that their names
    /// survive a crash before any record names them.
    private func flushResults(_ written: [String]) throws(SupervisorError) {
        guard !written.isEmpty else { return }
        do throws(Errno) {
            _ = try SystemCall.checking { sp_fsync(resultsDescriptor) }
        } catch {
            throw failure(StateStore.resultsName, step: SP_FILE_STEP_FSYNC_DIRECTORY, error: error)
        }
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
        case SP_FILE_STEP_TRUNCATE: action = "cut off a failed append to"
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
