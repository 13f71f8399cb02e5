import Glibc

/// Signal names as operators write them in a configuration (`"TERM"`, `"SIGTERM"`, `"sigterm"`)
/// and as they are printed back.
enum SignalName {
    static let table: [(name: String, number: Int32)] = [
        ("HUP", SIGHUP), ("INT", SIGINT), ("QUIT", SIGQUIT), ("ILL", SIGILL), ("TRAP", SIGTRAP),
        ("ABRT", SIGABRT), ("BUS", SIGBUS), ("FPE", SIGFPE), ("KILL", SIGKILL), ("USR1", SIGUSR1),
        ("SEGV", SIGSEGV), ("USR2", SIGUSR2), ("PIPE", SIGPIPE), ("ALRM", SIGALRM), ("TERM", SIGTERM),
        ("CHLD", SIGCHLD), ("CONT", SIGCONT), ("STOP", SIGSTOP), ("TSTP", SIGTSTP), ("TTIN", SIGTTIN),
        ("TTOU", SIGTTOU), ("URG", SIGURG), ("XCPU", SIGXCPU), ("XFSZ", SIGXFSZ), ("VTALRM", SIGVTALRM),
        ("PROF", SIGPROF), ("WINCH", SIGWINCH), ("IO", SIGIO), ("PWR", SIGPWR), ("SYS", SIGSYS),
    ]

    /// The number of a signal given by name, with or without `SIG`, in any case.
    static func number(_ name: String) -> Int32? {
        var upper = name.uppercased()
        if upper.hasPrefix("SIG") { upper.removeFirst(3) }
        return table.first { $0.name == upper }?.number
    }

    /// `SIGTERM` for 15; `signal 42` for a number without a name.
    static func name(_ number: Int32) -> String {
        table.first { $0.number == number }.map { "SIG" + $0.name } ?? "signal \(number)"
    }
}
