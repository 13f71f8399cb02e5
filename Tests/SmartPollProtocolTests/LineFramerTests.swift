import SmartPollProtocol
import Testing

@Suite("Line framing")
struct LineFramerTests {
    static func drain(_ framer: inout LineFramer) -> [LineFramer.Frame] {
        var frames: [LineFramer.Frame] = []
        while let frame = framer.next() { frames.append(frame) }
        return frames
    }

    static func lines(_ texts: [String]) -> [LineFramer.Frame] {
        texts.map { .line(Array($0.utf8)) }
    }

    @Test("a stream split at every byte boundary gives the same lines")
    func everySplitGivesSameLines() {
        let stream = Array("{\"id\":1}\r\n\n{\"cmd\":\"ping\"}\nx\r\n\r\nlast\n".utf8)
        let expected = Self.lines(["{\"id\":1}", "{\"cmd\":\"ping\"}", "x", "last"])
        for split in 0...stream.count {
            for second in split...stream.count {
                var framer = LineFramer()
                framer.append(stream[..<split])
                var frames = Self.drain(&framer)
                framer.append(stream[split..<second])
                frames += Self.drain(&framer)
                framer.append(stream[second...])
                frames += Self.drain(&framer)
                #expect(frames == expected, "split at \(split), \(second)")
                #expect(framer.bufferedByteCount == 0)
            }
        }
    }

    @Test("byte-at-a-time feeding gives the same lines")
    func byteAtATime() {
        var framer = LineFramer()
        var frames: [LineFramer.Frame] = []
        for byte in "a\nbb\r\nccc\n".utf8 {
            framer.append([byte])
            frames += Self.drain(&framer)
        }
        #expect(frames == Self.lines(["a", "bb", "ccc"]))
    }

    @Test("many lines in one chunk come out in order; a partial line waits")
    func manyLinesInOneChunk() {
        var framer = LineFramer()
        let texts = (0..<1000).map { "{\"id\":\($0)}" }
        framer.append(Array((texts.joined(separator: "\n") + "\npartial").utf8))
        #expect(Self.drain(&framer) == Self.lines(texts))
        #expect(framer.bufferedByteCount == 7)
        framer.append(Array("\n".utf8))
        #expect(Self.drain(&framer) == Self.lines(["partial"]))
    }

    @Test("empty lines and lone carriage returns are skipped; only a final \\r is stripped")
    func emptyLinesAreSkipped() {
        var framer = LineFramer()
        framer.append(Array("\n\n\r\n\r\r\n a \r\nb\rc\n".utf8))
        #expect(Self.drain(&framer) == Self.lines(["\r", " a ", "b\rc"]))
    }

    @Test("an oversized line arriving in pieces is reported once, not buffered, and the next line works")
    func oversizedLineInPiecesReportedOnce() {
        let maximum = 1000
        var framer = LineFramer(maximumLineLength: maximum)
        framer.append(Array("ok1\n".utf8))
        var frames = Self.drain(&framer)
        let chunk = [UInt8](repeating: UInt8(ascii: "a"), count: 97)
        for _ in 0..<10_000 {  // about 1 MB in total
            framer.append(chunk)
            #expect(framer.bufferedByteCount <= maximum + 1)
            frames += Self.drain(&framer)
        }
        #expect(framer.isDiscarding)
        framer.append(Array("tail\nok2\n".utf8))
        frames += Self.drain(&framer)
        #expect(frames.count == 3)
        #expect(frames.first == .line(Array("ok1".utf8)))
        guard case .tooLarge(let length) = frames[1] else {
            Issue.record("expected tooLarge, got \(frames[1])")
            return
        }
        #expect(length > maximum && length <= maximum + 97)
        #expect(frames.last == .line(Array("ok2".utf8)))
        #expect(!framer.isDiscarding)
    }

    @Test("an oversized line inside one chunk is reported with its length")
    func oversizedLineInOneChunk() {
        var framer = LineFramer(maximumLineLength: 10)
        framer.append(Array("0123456789\n01234567890\r\n0123456789\r\nz\n".utf8))
        #expect(
            Self.drain(&framer) == [
                .line(Array("0123456789".utf8)), .tooLarge(length: 11), .line(Array("0123456789".utf8)),
                .line([UInt8(ascii: "z")]),
            ])
    }

    @Test("a line of exactly the maximum split before its \\r\\n is accepted")
    func maximumLineWithSplitTerminator() {
        var framer = LineFramer(maximumLineLength: 4)
        framer.append(Array("abcd\r".utf8))
        #expect(framer.next() == nil)
        #expect(framer.bufferedByteCount == 5)
        framer.append(Array("\nabcd".utf8))
        #expect(Self.drain(&framer) == Self.lines(["abcd"]))
        framer.append(Array("e".utf8))
        #expect(Self.drain(&framer) == [.tooLarge(length: 5)])
        #expect(framer.bufferedByteCount == 0)
    }

    @Test("the protocol's default limit is 1 MiB")
    func defaultLimitIsOneMebibyte() {
        #expect(LineFramer().maximumLineLength == 1 << 20)
    }

    @Test("framing a large stream in small chunks is linear (no rescans)")
    func largeStreamInSmallChunksIsFast() {
        // A 1 MiB line in 1-byte chunks would take minutes if each append rescanned the buffer.
        var framer = LineFramer()
        let line = [UInt8](repeating: UInt8(ascii: "x"), count: 1 << 20)
        let clock = ContinuousClock()
        let elapsed = clock.measure {
            line.withUnsafeBytes { buffer in
                var index = 0
                while index < buffer.count {
                    framer.append(UnsafeRawBufferPointer(rebasing: buffer[index..<min(index + 3, buffer.count)]))
                    index += 3
                }
            }
            framer.append([UInt8(ascii: "\n")])
        }
        #expect(framer.next() == .line(line))
        #expect(elapsed < .seconds(10))
    }
}
