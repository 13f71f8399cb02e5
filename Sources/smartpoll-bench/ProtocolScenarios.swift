/// Placeholder until the protocol module lands: reports nothing.
func benchProtocol() async throws {}
