/// A tiny seeded generator (SplitMix64), so that randomized tests and fuzz runs reproduce.
///
/// - Important: The sequence for a seed is part of the contract: tests and the fuzz targets
///   that print or keep a seed replay exactly the same inputs from it, so this algorithm and
///   its constants never change. Not for anything that needs unpredictable numbers.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    /// - Complexity: O(1), no allocation.
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
