// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "smartpoll",
    products: [
        .library(name: "SmartPoll", targets: ["SmartPoll"]),
        .library(name: "SmartPollProtocol", targets: ["SmartPollProtocol"]),
        .executable(name: "smartpoll-supervisor", targets: ["smartpoll-supervisor"]),
        .executable(name: "smartpollctl", targets: ["smartpollctl"]),
        .executable(name: "smartpoll-bench", targets: ["smartpoll-bench"]),
    ],
    targets: [
        .systemLibrary(
            name: "CJSONC",
            path: "Sources/CJSONC",
            pkgConfig: "json-c",
            providers: [.apt(["libjson-c-dev"])]
        ),
        // libcurl (the etcd client's HTTP to etcd's JSON gateway) and libmicrohttpd (the metrics
        // endpoint's server), loaded with dlopen when a cluster or metrics_listen needs them, never
        // linked: with what they link (OpenSSL, GnuTLS, Kerberos, ...) they would be about 6 MiB
        // of every supervisor's resident memory. Their headers only: libcurl4-openssl-dev and
        // libmicrohttpd-dev. The supervisor's only (smartpollctl must not load either).
        .target(name: "CSmartPollOptional"),
        .target(name: "CSmartPollPosix"),
        // SystemCall and Errno, for the supervisor and smartpollctl's client alike; swift-system was
        // measured in their place and left out (Sources/SmartPollSystem/SystemCall.swift says why).
        .target(name: "SmartPollSystem", dependencies: ["CSmartPollPosix"]),
        .target(name: "SmartPoll"),
        .target(name: "SmartPollProtocol", dependencies: ["CJSONC", "CSmartPollPosix"]),
        .target(
            name: "SmartPollSupervisor",
            dependencies: [
                "SmartPoll", "SmartPollProtocol", "CSmartPollPosix", "SmartPollSystem", "CSmartPollOptional",
            ]
        ),
        .target(name: "SmartPollClient", dependencies: ["SmartPollProtocol", "CSmartPollPosix", "SmartPollSystem"]),
        .executableTarget(name: "smartpoll-supervisor", dependencies: ["SmartPollSupervisor", "SmartPollProtocol"]),
        .executableTarget(
            name: "smartpollctl",
            dependencies: ["SmartPollClient", "SmartPollProtocol", "SmartPollSystem", "CSmartPollPosix"]
        ),
        .executableTarget(
            name: "smartpoll-bench",
            // The seeded generator: the instruction counts replay the same calls every run.
            dependencies: ["SmartPoll", "SmartPollProtocol", "SmartPollTestSupport"]
        ),
        // What the test targets, the fuzz targets and the bench share (a seeded generator); a plain
        // target because a test target cannot be depended on. No library product names it.
        .target(name: "SmartPollTestSupport", path: "Tests/SmartPollTestSupport"),
        // A real etcd (Debian's etcd-server) for the tests of the cluster: one member or three.
        .target(name: "SmartPollEtcdSupport", path: "Tests/SmartPollEtcdSupport"),
        .testTarget(name: "SmartPollTests", dependencies: ["SmartPoll", "SmartPollTestSupport"]),
        .testTarget(
            name: "SmartPollProtocolTests",
            dependencies: ["SmartPollProtocol", "SmartPollTestSupport"],
            exclude: ["Fixtures"]
        ),
        .testTarget(
            name: "SmartPollSupervisorTests",
            // The C module too, for pidfd_open on a grandchild.
            dependencies: ["SmartPollSupervisor", "CSmartPollPosix", "SmartPollEtcdSupport"],
            exclude: ["Fixtures"]
        ),
        .testTarget(
            name: "SmartPollCtlTests",
            // End to end: the real binaries, driven through their command lines and the socket.
            dependencies: [
                "SmartPollClient", "SmartPollProtocol", "SmartPollTestSupport", "SmartPollEtcdSupport",
                "smartpoll-supervisor", "smartpollctl",
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)

// `make fuzz` only (SMARTPOLL_FUZZ=1): libFuzzer targets, which link only when built with
// -sanitize=fuzzer. Their properties are in the test targets (linked into contrib/fuzz).
if Context.environment["SMARTPOLL_FUZZ"] == "1" {
    package.targets += [
        .executableTarget(
            name: "smartpoll-fuzz-protocol",
            dependencies: ["SmartPollProtocol", "SmartPollTestSupport"],
            path: "contrib/fuzz/protocol"
        ),
        .executableTarget(
            name: "smartpoll-fuzz-config", dependencies: ["SmartPollSupervisor"], path: "contrib/fuzz/config"),
    ]
}
