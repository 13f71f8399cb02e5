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
        .target(name: "CSmartPollPosix"),
        .target(name: "SmartPoll"),
        .target(name: "SmartPollProtocol", dependencies: ["CJSONC"]),
        .target(
            name: "SmartPollSupervisor",
            dependencies: ["SmartPoll", "SmartPollProtocol", "CSmartPollPosix"]
        ),
        .target(name: "SmartPollClient", dependencies: ["SmartPollProtocol", "CSmartPollPosix"]),
        .executableTarget(name: "smartpoll-supervisor", dependencies: ["SmartPollSupervisor", "SmartPollProtocol"]),
        .executableTarget(name: "smartpollctl", dependencies: ["SmartPollClient", "SmartPollProtocol"]),
        .executableTarget(
            name: "smartpoll-bench",
            dependencies: ["SmartPoll", "SmartPollProtocol"]
        ),
        .testTarget(name: "SmartPollTests", dependencies: ["SmartPoll"]),
        .testTarget(
            name: "SmartPollProtocolTests",
            dependencies: ["SmartPollProtocol"],
            exclude: ["Fixtures"]
        ),
        .testTarget(
            name: "SmartPollSupervisorTests",
            // The C module too, for pidfd_open on a grandchild.
            dependencies: ["SmartPollSupervisor", "CSmartPollPosix"]
        ),
        .testTarget(
            name: "SmartPollCtlTests",
            // End to end: the real binaries, driven through their command lines and the socket.
            dependencies: ["SmartPollClient", "SmartPollProtocol", "smartpoll-supervisor", "smartpollctl"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
