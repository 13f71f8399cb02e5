import Glibc

// The configuration reader's coverage-guided fuzz target: SupervisorConfiguration.parse
// under libFuzzer (`make fuzz`). The properties are ConfigurationFuzzOracle's, shared with the tests.

typealias FuzzCallback = @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32

/// libFuzzer's entry point for a program with a main of its own (SwiftPM gives every executable
/// one): parses libFuzzer's options from argv and fuzzes `callback`.
@_silgen_name("LLVMFuzzerRunDriver")
func runFuzzerDriver(
    _ argc: UnsafeMutablePointer<Int32>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: FuzzCallback
) -> Int32

var argc = CommandLine.argc
var argv = Optional(CommandLine.unsafeArgv)
exit(
    runFuzzerDriver(&argc, &argv) { data, count in
        if let failure = ConfigurationFuzzOracle.check(
            UnsafeRawBufferPointer(start: data, count: data == nil ? 0 : count))
        {
            fatalError(failure)
        }
        return 0
    })
