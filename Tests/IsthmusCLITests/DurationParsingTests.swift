@testable import IsthmusCLI
import Testing

@Suite("Duration parsing")
struct DurationParsingTests {
    @Test("durations operators write", arguments: [
        ("90s", 90), ("15m", 900), ("1h", 3600), ("1h30m", 5400), ("7d", 604_800), ("1d12h", 129_600), ("0s", 0),
    ] as [(String, Int64)])
    func parses(_ text: String, _ seconds: Int64) {
        #expect(parseDurationSeconds(text) == seconds)
    }

    @Test("ambiguous or malformed durations are refused", arguments: [
        "", "60", "m", "1x", "1.5h", "-1h", "1h ", "h1", "1hh", "99999999999999999999s", "9223372036854775807d",
    ])
    func refuses(_ text: String) {
        #expect(parseDurationSeconds(text) == nil)
    }
}
