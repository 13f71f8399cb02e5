/// "Did you mean ...?": the candidate closest to a misspelled word, for the errors of both
/// programs (an unknown command, option, task or hook).
public enum Suggestion {
    /// The candidate with the fewest edits (insertions, deletions, substitutions, and swaps of
    /// two neighbours) from `word`, when that is few enough to be a typo: at most 1 edit for
    /// words of up to 4 characters, 2 up to 8, 3 beyond; ties go to the earlier candidate. A
    /// candidate that differs only in case wins at once.
    ///
    /// - Complexity: O(n * m) a candidate, on the words' bytes; meant for short names (a
    ///   word over 64 bytes gets no suggestion).
    public static func closest(to word: String, among candidates: some Sequence<String>) -> String? {
        let typed = Array(word.utf8)
        guard !typed.isEmpty, typed.count <= 64 else { return nil }
        let allowed = typed.count <= 4 ? 1 : typed.count <= 8 ? 2 : 3
        var best: (name: String, distance: Int)?
        for candidate in candidates where candidate != word {
            if candidate.lowercased() == word.lowercased() { return candidate }
            let bytes = Array(candidate.utf8)
            guard abs(bytes.count - typed.count) <= allowed else { continue }
            let distance = editDistance(typed, bytes)
            if distance <= allowed && distance < (best?.distance ?? .max) { best = (candidate, distance) }
        }
        return best?.name
    }

    /// Optimal string alignment distance (Damerau-Levenshtein without repeated edits of a
    /// substring), in three rolling rows.
    static func editDistance(_ left: [UInt8], _ right: [UInt8]) -> Int {
        if left.isEmpty { return right.count }
        if right.isEmpty { return left.count }
        var previous2 = [Int](repeating: 0, count: right.count + 1)
        var previous = Array(0...right.count)
        var current = [Int](repeating: 0, count: right.count + 1)
        for i in 1...left.count {
            current[0] = i
            for j in 1...right.count {
                let cost = left[i - 1] == right[j - 1] ? 0 : 1
                var value = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
                if i > 1 && j > 1 && left[i - 1] == right[j - 2] && left[i - 2] == right[j - 1] {
                    value = min(value, previous2[j - 2] + 1)
                }
                current[j] = value
            }
            (previous2, previous, current) = (previous, current, previous2)
        }
        return previous[right.count]
    }
}
