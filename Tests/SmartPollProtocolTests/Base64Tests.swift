import SmartPollProtocol
import SmartPollTestSupport
import Testing

@Suite("Base64")
struct Base64Tests {
    @Test(
        "RFC 4648 test vectors",
        arguments: [
            ("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ])
    func vectors(plain: String, encoded: String) {
        #expect(Base64.encode(Array(plain.utf8)) == encoded)
        #expect(Base64.decode(encoded) == Array(plain.utf8))
    }

    @Test("random bytes round-trip")
    func randomBytesRoundTrip() {
        var random = SplitMix64(seed: 3)
        for length in 0..<200 {
            let bytes = (0..<length).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            #expect(Base64.decode(Base64.encode(bytes)) == bytes)
        }
    }

    @Test(
        "malformed text is rejected",
        arguments: ["Zg", "Zg=", "Z===", "Zg==Zg==", "Zh==", "Zm9=", "Zm9v!", "Zm 9", "=Zm9", "Zm=v"])
    func malformedIsRejected(text: String) {
        #expect(Base64.decode(text) == nil)
    }
}
