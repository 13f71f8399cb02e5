/// Standard Base64 (RFC 4648 section 4: `A-Z a-z 0-9 + /`, `=` padding), for
/// results that are not valid UTF-8 (`"output_base64"`).
public enum Base64 {
    private static let alphabet: [UInt8] = Array(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    private static let decodeTable: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (index, byte) in alphabet.enumerated() { table[Int(byte)] = UInt8(index) }
        return table
    }()

    /// The padded Base64 text of `bytes`.
    public static func encode(_ bytes: some Collection<UInt8>) -> String {
        var output: [UInt8] = []
        let input = Array(bytes)
        input.withUnsafeBufferPointer { encode($0, appendingTo: &output) }
        return String(decoding: output, as: UTF8.self)
    }

    /// Appends the padded Base64 text of `bytes` to `output`. Input cut at multiples of 3 bytes
    /// and encoded piece by piece gives the same text as encoded whole (sliced replies rely on
    /// it): only the last piece is padded.
    public static func encode(_ bytes: UnsafeBufferPointer<UInt8>, appendingTo output: inout [UInt8]) {
        guard let input = bytes.baseAddress, bytes.count > 0 else { return }
        let length = bytes.count
        // Through raw pointers into a buffer of the final size, then one copy: per-byte array
        // appends (or a repeated element) cost tens of times more in a debug build.
        let encoded = [UInt8](unsafeUninitializedCapacity: (length + 2) / 3 * 4) { buffer, initialized in
            let target = buffer.baseAddress!
            let table = encodeTable.utf8Start
            var at = 0
            var index = 0
            while index + 3 <= length {
                let group = UInt32(input[index]) << 16 | UInt32(input[index + 1]) << 8 | UInt32(input[index + 2])
                target[at] = table[Int(group >> 18)]
                target[at + 1] = table[Int(group >> 12 & 0x3F)]
                target[at + 2] = table[Int(group >> 6 & 0x3F)]
                target[at + 3] = table[Int(group & 0x3F)]
                at += 4
                index += 3
            }
            if index < length {
                let second = index + 1 < length ? UInt32(input[index + 1]) : 0
                let group = UInt32(input[index]) << 16 | second << 8
                target[at] = table[Int(group >> 18)]
                target[at + 1] = table[Int(group >> 12 & 0x3F)]
                target[at + 2] = index + 1 < length ? table[Int(group >> 6 & 0x3F)] : UInt8(ascii: "=")
                target[at + 3] = UInt8(ascii: "=")
                at += 4
            }
            initialized = at
        }
        output.append(contentsOf: encoded)
    }

    private static let encodeTable: StaticString = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

    /// The bytes of padded Base64 text, or `nil` when `text` is not canonical
    /// padded Base64 (wrong length, a character outside the alphabet, misplaced
    /// padding, or non-zero bits in the padding).
    public static func decode(_ text: String) -> [UInt8]? {
        let input = Array(text.utf8)
        guard input.count % 4 == 0 else { return nil }
        var output: [UInt8] = []
        output.reserveCapacity(input.count / 4 * 3)
        var index = 0
        while index < input.count {
            let isLast = index + 4 == input.count
            let padding =
                isLast
                ? (input[index + 3] == UInt8(ascii: "=") ? (input[index + 2] == UInt8(ascii: "=") ? 2 : 1) : 0) : 0
            var group: UInt32 = 0
            for offset in 0..<4 {
                let byte = input[index + offset]
                if offset >= 4 - padding {
                    group <<= 6
                    continue
                }
                let value = decodeTable[Int(byte)]
                guard value != 0xFF else { return nil }
                group = group << 6 | UInt32(value)
            }
            output.append(UInt8(group >> 16 & 0xFF))
            if padding < 2 { output.append(UInt8(group >> 8 & 0xFF)) } else if group & 0xFFFF != 0 { return nil }
            if padding < 1 { output.append(UInt8(group & 0xFF)) } else if group & 0xFF != 0 { return nil }
            index += 4
        }
        return output
    }
}
