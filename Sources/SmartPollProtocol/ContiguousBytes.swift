/// Calls `body` with the bytes of `bytes` in contiguous memory: without a copy
/// when the collection has contiguous storage (`[UInt8]`, `ArraySlice`,
/// `UnsafeBufferPointer`, a native string's `utf8`), through a temporary array otherwise.
///
/// Exists because `withContiguousStorageIfAvailable` and `withUnsafeBytes` are
/// `rethrows`, which loses the typed error. Inlinable, as are the public generic entry points
/// that use it, so that a caller in another module gets a specialized copy instead of generic
/// code that instantiates type metadata at run time (measured: a third of `smartpollctl`'s
/// instructions, and a cost on every request line in the supervisor).
@inlinable
func withContiguousBytes<Result>(
    _ bytes: some Collection<UInt8>,
    _ body: (UnsafeRawBufferPointer) throws(ProtocolError) -> Result
) throws(ProtocolError) -> Result {
    let direct = bytes.withContiguousStorageIfAvailable { buffer in
        Swift.Result { () throws(ProtocolError) -> Result in try body(UnsafeRawBufferPointer(buffer)) }
    }
    if let direct { return try direct.get() }
    let copy = Array(bytes)
    return try copy.withUnsafeBytes { buffer in
        Swift.Result { () throws(ProtocolError) -> Result in try body(buffer) }
    }.get()
}

/// Calls `body` with the UTF-8 bytes of `text`, without a copy for native strings.
@inlinable
func withContiguousBytes<Result>(
    of text: String,
    _ body: (UnsafeRawBufferPointer) throws(ProtocolError) -> Result
) throws(ProtocolError) -> Result {
    var text = text
    return try text.withUTF8 { buffer in
        Swift.Result { () throws(ProtocolError) -> Result in try body(UnsafeRawBufferPointer(buffer)) }
    }.get()
}
