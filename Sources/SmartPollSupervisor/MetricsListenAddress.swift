import Glibc

/// Where the metrics endpoint listens (the top-level `metrics_listen`): `HOST:PORT` with an IPv4
/// address (`127.0.0.1:9464`) or a bracketed IPv6 address (`[::1]:9464`). Host names are not
/// looked up (a name that resolves differently later would move the endpoint). Port 0 takes a
/// free port the system picks; the log names it.
public struct MetricsListenAddress: Sendable, Hashable, CustomStringConvertible {
    /// The address as written, without brackets.
    public var host: String
    public var port: UInt16
    public var isIPv6: Bool

    /// Why a text is no address: a reason for the configuration's message.
    public struct ParseError: Error, Sendable {
        public var reason: String
        init(_ reason: String) { self.reason = reason }
    }

    /// `127.0.0.1:9464` or `[::1]:9464`.
    public var description: String { (isIPv6 ? "[\(host)]" : host) + ":\(port)" }

    /// Parses `HOST:PORT`; the error is a reason for the configuration's message.
    public static func parse(_ text: String) -> Result<MetricsListenAddress, ParseError> {
        let form =
            "must be HOST:PORT, an IPv4 address or a bracketed IPv6 address and a port, "
            + "such as \"127.0.0.1:9464\" or \"[::1]:9464\""
        let host: Substring
        let portText: Substring
        let isIPv6: Bool
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return .failure(ParseError(form)) }
            let afterClose = text[text.index(after: close)...]
            guard afterClose.hasPrefix(":") else { return .failure(ParseError(form)) }
            host = text[text.index(after: text.startIndex)..<close]
            portText = afterClose.dropFirst()
            isIPv6 = true
        } else {
            guard let colon = text.lastIndex(of: ":") else { return .failure(ParseError(form)) }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
            if host.contains(":") {
                return .failure(ParseError("an IPv6 address goes in brackets: \"[\(host)]:\(portText)\""))
            }
            isIPv6 = false
        }
        guard !host.isEmpty else { return .failure(ParseError(form)) }
        guard !portText.isEmpty, portText.utf8.count <= 5, portText.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }),
            let port = Int(portText), port <= 65_535
        else {
            return .failure(ParseError("the port must be a number from 0 to 65535, not \"\(portText)\""))
        }
        let address = MetricsListenAddress(host: String(host), port: UInt16(port), isIPv6: isIPv6)
        guard address.withSocketAddress({ _, _ in true }) != nil else {
            return .failure(
                ParseError(
                    isIPv6
                        ? "\"\(host)\" is not an IPv6 address"
                        : "\"\(host)\" is not an IPv4 address (host names are not looked up: 127.0.0.1, 0.0.0.0, [::1])"
                ))
        }
        return .success(address)
    }

    /// Calls `body` with the address as a `sockaddr_in` or `sockaddr_in6`; nil when the host is
    /// not an address of its family.
    func withSocketAddress<Result>(
        _ body: (UnsafePointer<sockaddr>, socklen_t) -> Result
    ) -> Result? {
        if isIPv6 {
            var address = sockaddr_in6()
            address.sin6_family = sa_family_t(AF_INET6)
            address.sin6_port = port.bigEndian
            guard inet_pton(AF_INET6, host, &address.sin6_addr) == 1 else { return nil }
            return withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    body($0, socklen_t(MemoryLayout<sockaddr_in6>.size))
                }
            }
        }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else { return nil }
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
    }
}
