import SmartPollProtocol
import SmartPollTestSupport
import Testing

@Suite("Randomized decoding")
struct RandomizedDecodingTests {
    /// Every fixture line: the seeds for mutation.
    static func seedLines() throws -> [[UInt8]] {
        var lines: [[UInt8]] = []
        for folder in ["requests", "replies", "events"] {
            for name in Fixtures.names(in: folder, suffix: "json") { lines.append(try Fixtures.line(folder, name)) }
        }
        for (file, _) in Fixtures.invalidCases() { lines.append(try Fixtures.bytes("invalid", file)) }
        return lines
    }

    static func mutate(_ line: [UInt8], seeds: [[UInt8]], random: inout SplitMix64) -> [UInt8] {
        var bytes = line
        let interesting: [[UInt8]] = [
            Array("\\u0000".utf8), Array("99999999999999999999".utf8), Array("\"".utf8), Array("{".utf8),
            Array("]".utf8),
            Array("null".utf8), Array("/*".utf8), Array("\\".utf8), [0xFF], [0xC3], [0x00], [0x0D], Array("1e999".utf8),
            Array(",".utf8), Array(":".utf8), Array("\"after\":\"1x\"".utf8), Array("\"at\":null".utf8),
        ]
        for _ in 0..<Int(random.next() % 4 + 1) {
            let position = bytes.isEmpty ? 0 : Int(random.next() % UInt64(bytes.count + 1))
            switch random.next() % 6 {
            case 0 where !bytes.isEmpty:  // flip bits of one byte
                let index = min(position, bytes.count - 1)
                bytes[index] ^= UInt8(truncatingIfNeeded: 1 << (random.next() % 8))
            case 1:  // truncate
                bytes.removeSubrange(position...)
            case 2:  // insert an interesting token
                bytes.insert(contentsOf: interesting[Int(random.next() % UInt64(interesting.count))], at: position)
            case 3:  // splice with another line
                let other = seeds[Int(random.next() % UInt64(seeds.count))]
                let cut = Int(random.next() % UInt64(other.count + 1))
                bytes = Array(bytes[..<position]) + other[cut...]
            case 4 where !bytes.isEmpty:  // delete a range
                let end = min(bytes.count, position + Int(random.next() % 8))
                if position < end { bytes.removeSubrange(position..<end) }
            default:  // insert a random byte
                bytes.insert(UInt8(truncatingIfNeeded: random.next()), at: position)
            }
        }
        return bytes
    }

    @Test("100,000 random and mutated lines through the framer and decoder never crash and always give a result")
    func randomLinesNeverCrash() throws {
        let seeds = try Self.seedLines()
        #expect(seeds.count > 50)
        var random = SplitMix64(seed: 0x5EED_2026)
        var framer = LineFramer(maximumLineLength: 4096)
        var decoded = 0
        var failed = 0
        var tooLarge = 0
        var stream: [UInt8] = []
        for iteration in 0..<100_000 {
            let line: [UInt8]
            switch random.next() % 10 {
            case 0:
                line = (0..<Int(random.next() % 64)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            case 1:
                line = seeds[Int(random.next() % UInt64(seeds.count))]
            default:
                line = Self.mutate(seeds[Int(random.next() % UInt64(seeds.count))], seeds: seeds, random: &random)
            }
            stream.append(contentsOf: line)
            stream.append(UInt8(ascii: "\n"))
            if iteration % 7 == 6 || stream.count > 2048 {
                // Deliver the stream in random-sized chunks.
                var index = 0
                while index < stream.count {
                    let end = min(stream.count, index + Int(random.next() % 300) + 1)
                    framer.append(stream[index..<end])
                    index = end
                    while let frame = framer.next() {
                        switch frame {
                        case .tooLarge: tooLarge += 1
                        case .line(let bytes):
                            switch Request.decode(bytes) {
                            case .success(let request):
                                decoded += 1
                                // Anything accepted must re-encode to something accepted as the same request.
                                #expect(try Request.decode(request.encoded()).get() == request)
                            case .failure(let failure):
                                failed += 1
                                #expect(!failure.error.message.isEmpty)
                            }
                        }
                    }
                }
                stream.removeAll(keepingCapacity: true)
            }
        }
        #expect(decoded > 1000)
        #expect(failed > 10_000)
        #expect(decoded + failed + tooLarge >= 95_000)
    }
}
