extension JSONValue {
    /// Compact JSON text for this value: no whitespace, object keys in stored
    /// order, strings escaped (`"`, `\`, control characters and DEL), numbers in
    /// the shortest form that reads back as the same value.
    ///
    /// - Important: JSON cannot express non-finite numbers: a NaN or infinite
    ///   ``double(_:)`` is written as `null`. Everything else round-trips through
    ///   ``JSONParser`` in either mode.
    public func serialized() -> String {
        var writer = JSONWriter()
        writer.value(self)
        return writer.text
    }
}
