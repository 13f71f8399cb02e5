import Glibc
import SmartPollProtocol
import Testing

@Suite struct SocketPathTests {
    @Test func environmentDefaultFollowsTheSpecOrder() {
        #expect(
            SocketPath.fromEnvironment(
                ["SMARTPOLL_SOCKET": "/s.sock", "XDG_RUNTIME_DIR": "/run/user/1000"], userID: 1000) == "/s.sock")
        #expect(
            SocketPath.fromEnvironment(["XDG_RUNTIME_DIR": "/run/user/1000"], userID: 1000)
                == "/run/user/1000/smartpoll/supervisor.sock")
        #expect(
            SocketPath.fromEnvironment(["XDG_RUNTIME_DIR": "/run/user/1000/"], userID: 1000)
                == "/run/user/1000/smartpoll/supervisor.sock")
        #expect(SocketPath.fromEnvironment([:], userID: 0) == "/run/smartpoll/supervisor.sock")
        #expect(SocketPath.fromEnvironment([:], userID: 1000) == "/tmp/smartpoll-1000/supervisor.sock")
    }

    @Test func emptyAndRelativeVariablesCountAsUnset() {
        #expect(
            SocketPath.fromEnvironment(["SMARTPOLL_SOCKET": "", "XDG_RUNTIME_DIR": "relative"], userID: 7)
                == "/tmp/smartpoll-7/supervisor.sock")
    }

    @Test func explicitWinsOverConfiguredWhichWinsOverEnvironment() {
        let environment = ["SMARTPOLL_SOCKET": "/env.sock"]
        #expect(
            SocketPath.resolve(explicit: "/flag.sock", configured: "/conf.sock", environment: environment, userID: 1)
                == "/flag.sock")
        #expect(
            SocketPath.resolve(explicit: nil, configured: "/conf.sock", environment: environment, userID: 1)
                == "/conf.sock")
        #expect(SocketPath.resolve(explicit: nil, configured: nil, environment: environment, userID: 1) == "/env.sock")
    }

    @Test func processEnvironmentReadsThisProcess() {
        let environment = ProcessEnvironment.current()
        #expect(environment["PATH"]?.isEmpty == false)
    }
}

@Suite struct ProcessEnvironmentTests {
    @Test func oneVariableIsReadWithoutCopyingTheEnvironment() {
        setenv("SMARTPOLL_TEST_VALUE", "a=b\nc", 1)
        defer { unsetenv("SMARTPOLL_TEST_VALUE") }
        #expect(ProcessEnvironment.value("SMARTPOLL_TEST_VALUE") == "a=b\nc")
        #expect(ProcessEnvironment.value("SMARTPOLL_TEST_UNSET_VALUE") == nil)
        #expect(ProcessEnvironment.current()["SMARTPOLL_TEST_VALUE"] == "a=b\nc")
    }

    @Test func socketPathTakesALookupFunction() {
        let variables = ["XDG_RUNTIME_DIR": "/run/user/5"]
        #expect(SocketPath.fromEnvironment({ variables[$0] }, userID: 5) == "/run/user/5/smartpoll/supervisor.sock")
    }
}
