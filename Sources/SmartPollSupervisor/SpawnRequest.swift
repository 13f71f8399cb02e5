/// Everything needed to start one child process.
///
/// The child gets exactly `environment`, descriptors 0-3 as given here and no
/// other descriptor, a new session and process group, default signal
/// dispositions and an empty signal mask.
public struct SpawnRequest: Sendable {
    /// Where one of the child's standard descriptors comes from.
    public enum Descriptor: Hashable, Sendable {
        /// `/dev/null`, opened read-write.
        case nullDevice
        /// A descriptor of the caller, duplicated into the child. The caller
        /// keeps ownership: it stays open in the parent.
        case fileDescriptor(Int32)
    }

    /// The argument vector. `arguments[0]` names the program: a path when it
    /// contains a `/` (relative to `workingDirectory` when given), otherwise a
    /// name looked up in the `PATH` of `environment` (`/bin:/usr/bin` without one).
    /// - Important: must not be empty; no argument may contain a NUL byte.
    public var arguments: [String]
    /// The child's whole environment, as `KEY=VALUE` strings. Values may
    /// contain `=` and newlines, but no NUL byte.
    public var environment: [String]
    /// The child's working directory, or `nil` for the supervisor's.
    public var workingDirectory: String?
    /// Descriptor 0 of the child.
    public var standardInput: Descriptor
    /// Descriptor 1 of the child: the run's result.
    public var standardOutput: Descriptor
    /// Descriptor 2 of the child: its log.
    public var standardError: Descriptor
    /// The descriptor that becomes 3 in the child (the directive channel), or
    /// `nil` to leave 3 closed.
    public var directives: Int32?
    /// The user and group the child runs as, with no supplementary groups; `nil` keeps the
    /// supervisor's. Changing them needs root (the spawn fails with EPERM otherwise).
    public var credentials: Credentials?
    /// A descriptor of the `cgroup.procs` file of the cgroup the child is to be born in (the
    /// caller keeps it), or `nil` to leave the child in the supervisor's cgroup.
    public var cgroupProcesses: Int32?
    /// A descriptor of that cgroup's directory (the caller keeps it), or `nil`: with it, the
    /// child is born in the cgroup where the kernel allows it, rather than moved in through
    /// `cgroupProcesses` (see `sp_spawn_options.cgroup_fd`).
    public var cgroupDirectory: Int32?
    /// The nice value the child starts with (-20 to 19), or `nil` to keep the supervisor's. A
    /// value below the supervisor's needs CAP_SYS_NICE (the spawn fails with EACCES otherwise).
    public var nice: Int32?
    /// The resource limits the child starts with; those left `nil` are the supervisor's.
    public var resourceLimits = ResourceLimits()
    /// When set, the argument vector and environment as prepared C strings, used instead of
    /// `arguments` and `environment` (which still name the program in messages).
    var prepared: PreparedCommand?
    /// Entries added to the prepared environment for this spawn only.
    var preparedExtras: [String] = []

    public init(
        arguments: [String],
        environment: [String] = [],
        workingDirectory: String? = nil,
        standardInput: Descriptor = .nullDevice,
        standardOutput: Descriptor = .nullDevice,
        standardError: Descriptor = .nullDevice,
        directives: Int32? = nil
    ) {
        self.arguments = arguments
        self.environment = environment
        self.workingDirectory = workingDirectory
        self.standardInput = standardInput
        self.standardOutput = standardOutput
        self.standardError = standardError
        self.directives = directives
    }

    /// A user id and a group id for a child.
    public struct Credentials: Hashable, Sendable {
        public var userID: UInt32
        public var groupID: UInt32

        public init(userID: UInt32, groupID: UInt32) {
            self.userID = userID
            self.groupID = groupID
        }
    }

    /// Resource limits of a child (setrlimit(2)), each set as both its soft and its hard limit, as
    /// `ulimit -n N` does. Raising a hard limit above the supervisor's needs CAP_SYS_RESOURCE
    /// (the spawn fails with EPERM otherwise).
    public struct ResourceLimits: Hashable, Sendable {
        /// A value meaning no limit (RLIM_INFINITY).
        public static let infinity = UInt64.max

        /// `nofile`: the most open descriptors (RLIMIT_NOFILE).
        public var openFiles: UInt64?
        /// `as`: the most bytes of address space (RLIMIT_AS).
        public var addressSpace: UInt64?
        /// `cpu`: the most seconds of CPU time; SIGKILL at the limit (RLIMIT_CPU).
        public var cpuSeconds: UInt64?
        /// `core`: the largest core dump in bytes; 0 for none (RLIMIT_CORE).
        public var coreBytes: UInt64?

        public init(
            openFiles: UInt64? = nil, addressSpace: UInt64? = nil, cpuSeconds: UInt64? = nil, coreBytes: UInt64? = nil
        ) {
            self.openFiles = openFiles
            self.addressSpace = addressSpace
            self.cpuSeconds = cpuSeconds
            self.coreBytes = coreBytes
        }

        /// Whether no limit is set: the child then makes no system call for them.
        public var isEmpty: Bool { openFiles == nil && addressSpace == nil && cpuSeconds == nil && coreBytes == nil }
    }

    /// The program as named in the request, for messages.
    var programName: String { arguments.first ?? "" }
}
