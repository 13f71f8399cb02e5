import SmartPollSupervisor

/// What every configuration file must satisfy, for the coverage-guided fuzzer (`make fuzz`,
/// which compiles this file into `contrib/fuzz/config` through a symbolic link) and for the
/// regression inputs it found. No Foundation and no test framework: a broken property is
/// returned as a sentence, which the fuzzer turns into a crash.
///
/// The reader either accepts a file, with a configuration that holds together, or rejects it
/// with one `FILE: KEY.PATH: reason` line per problem; it never crashes.
public enum ConfigurationFuzzOracle {
    public static func check(_ input: UnsafeRawBufferPointer) -> String? {
        let file = "fuzz.json"
        do {
            let configuration = try SupervisorConfiguration.parse(input, file: file)
            if configuration.tasks.isEmpty { return "accepted without a task" }
            for (name, task) in configuration.tasks {
                if task.command.isEmpty || task.command[0].isEmpty {
                    return "task \(name) accepted with an empty command"
                }
                for target in task.onChange + task.onSuccess where configuration.tasks[target] == nil {
                    return "task \(name) accepted naming the unknown task \(target)"
                }
                if task.backoff.maximum < task.backoff.initial {
                    return "task \(name) accepted with backoff max below initial"
                }
                if task.every.map({ $0 <= .zero }) == true || task.timeout.map({ $0 <= .zero }) == true {
                    return "task \(name) accepted with a duration out of range"
                }
            }
            return nil
        } catch {
            guard error.code == .invalidConfiguration else {
                return "rejected with \(error.code), not invalidConfiguration"
            }
            let lines = error.message.split(separator: "\n", omittingEmptySubsequences: false)
            guard !lines.isEmpty else { return "rejected without a reason" }
            for line in lines where !line.hasPrefix(file + ": ") || line.count <= file.count + 2 {
                return "a problem not in the form FILE: reason: \(line.prefix(200))"
            }
            return nil
        }
    }
}
