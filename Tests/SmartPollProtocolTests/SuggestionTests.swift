import SmartPollProtocol
import Testing

@Suite struct SuggestionTests {
    @Test func closeWordsAreSuggestedAndFarOnesAreNot() {
        let commands = ["status", "schedule", "unschedule", "stop-timer", "start", "stop", "restart", "results"]
        #expect(Suggestion.closest(to: "stauts", among: commands) == "status")
        #expect(Suggestion.closest(to: "shedule", among: commands) == "schedule")
        #expect(Suggestion.closest(to: "stopp", among: commands) == "stop")
        #expect(Suggestion.closest(to: "STATUS", among: commands) == "status")
        #expect(Suggestion.closest(to: "frobnicate", among: commands) == nil)
        #expect(Suggestion.closest(to: "x", among: ["y"]) == "y", "one edit for a one-letter word")
        #expect(Suggestion.closest(to: "ab", among: ["xy"]) == nil)
        #expect(Suggestion.closest(to: "status", among: ["status"]) == nil, "an exact name is no typo")
        #expect(Suggestion.closest(to: "", among: ["a"]) == nil)
    }
}
