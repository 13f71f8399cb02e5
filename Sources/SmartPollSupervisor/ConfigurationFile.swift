import Glibc
import SmartPollSystem

/// Finding and reading the configuration file (SPEC section 7).
public enum ConfigurationFile {
    /// The largest configuration file read; anything bigger is surely a mistake.
    static let maximumSize = 16 << 20

    /// The places searched, in order, when no `--config` is given: `$SMARTPOLL_CONFIG`,
    /// `./smartpoll.json`, `$XDG_CONFIG_HOME/smartpoll/smartpoll.json` (or
    /// `~/.config/smartpoll/smartpoll.json`), `/etc/smartpoll/smartpoll.json`.
    public static func candidates(environment: [String: String]) -> [String] {
        var places: [String] = []
        if let path = environment["SMARTPOLL_CONFIG"], !path.isEmpty { places.append(path) }
        places.append("./smartpoll.json")
        if let config = environment["XDG_CONFIG_HOME"], config.hasPrefix("/") {
            places.append(config + "/smartpoll/smartpoll.json")
        } else if let home = environment["HOME"], home.hasPrefix("/") {
            places.append(home + "/.config/smartpoll/smartpoll.json")
        }
        places.append("/etc/smartpoll/smartpoll.json")
        return places
    }

    /// The file to use: `explicit` (`--config`) when given, else `$SMARTPOLL_CONFIG` when set
    /// (whether or not it exists), else the first candidate that exists.
    ///
    /// - Throws: ``SupervisorError/Code/configurationNotFound`` naming every place tried.
    public static func locate(explicit: String?, environment: [String: String]) throws(SupervisorError) -> String {
        if let explicit { return explicit }
        // A configuration named in the environment is used as given, like --config: a typo
        // there must not silently fall through to another file.
        if let named = environment["SMARTPOLL_CONFIG"], !named.isEmpty { return named }
        let places = candidates(environment: environment)
        if let found = places.first(where: { access($0, F_OK) == 0 }) { return found }
        throw SupervisorError(
            code: .configurationNotFound,
            message:
                "no configuration file found; tried \(places.joined(separator: ", ")) (give one with --config FILE)")
    }

    /// Reads and parses `path`.
    ///
    /// - Throws: ``SupervisorError/Code/invalidConfiguration`` when the file cannot be read or
    ///   is invalid.
    public static func load(_ path: String) throws(SupervisorError) -> SupervisorConfiguration {
        try SupervisorConfiguration.parse(try readFile(path), file: path)
    }

    /// The whole of the regular file at `path`.
    ///
    /// - Important: Never blocks: the file is opened with `O_NONBLOCK` (a FIFO nobody writes to
    ///   would hold `open` for ever, and the loop with it, on a reload) and checked with `fstat`
    ///   to be a regular file before it is read; anything else (a FIFO, a folder, a device, a
    ///   socket) is refused with the path and what it is. A symbolic link to a regular file is
    ///   followed: operators link configurations from /etc or a checkout. (`O_NOFOLLOW` is for
    ///   the supervisor's own files in `state_dir`, which nobody should replace by a link.)
    static func readFile(_ path: String) throws(SupervisorError) -> [UInt8] {
        let descriptor: Int32
        do throws(Errno) {
            descriptor = try SystemCall.retrying { open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY) }
        } catch {
            throw SupervisorError(code: .invalidConfiguration, message: "\(path): cannot open: \(error)")
        }
        defer { SystemCall.close(descriptor) }
        var info = stat()
        do throws(Errno) {
            _ = try SystemCall.checking { fstat(descriptor, &info) }
        } catch {
            throw SupervisorError(code: .invalidConfiguration, message: "\(path): cannot stat: \(error)")
        }
        guard info.st_mode & S_IFMT == S_IFREG else {
            throw SupervisorError(
                code: .invalidConfiguration, message: "\(path): not a regular file (\(kind(of: info.st_mode)))")
        }
        if info.st_size > maximumSize { throw tooLarge(path) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count: Int
            do throws(Errno) {
                count = try SystemCall.retrying {
                    chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
                }
            } catch {
                throw SupervisorError(code: .invalidConfiguration, message: "\(path): cannot read: \(error)")
            }
            if count == 0 { return bytes }
            bytes.append(contentsOf: chunk[..<count])
            // The file may grow while it is read.
            if bytes.count > maximumSize { throw tooLarge(path) }
        }
    }

    private static func tooLarge(_ path: String) -> SupervisorError {
        SupervisorError(
            code: .invalidConfiguration, message: "\(path): larger than \(maximumSize >> 20) MiB; is it the right file?"
        )
    }

    /// What a file that is not a regular file is, in words, from its `st_mode`.
    private static func kind(of mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFIFO: return "a FIFO"
        case S_IFDIR: return "a folder"
        case S_IFCHR: return "a character device"
        case S_IFBLK: return "a block device"
        case S_IFSOCK: return "a socket"
        default: return "file type 0" + String(mode & S_IFMT, radix: 8)
        }
    }
}
