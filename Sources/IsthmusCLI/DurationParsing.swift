import Foundation
/// Parses a duration as operators write it for token lifetimes: one or more
/// `<integer><unit>` terms with units `s`, `m`, `h` and `d` (`90s`, `15m`,
/// `1h30m`, `7d`). A bare number is refused: `--ttl 60` would be ambiguous
/// between seconds and minutes, and a wrong guess mints a token that lives
/// sixty times too long.
func parseDurationSeconds(_ text: String) -> Int64? {
    var total: Int64 = 0
    var number: Int64? = nil
    var sawTerm = false
    for byte in text.utf8 {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"):
            let (times10, o1) = (number ?? 0).multipliedReportingOverflow(by: 10)
            let (next, o2) = times10.addingReportingOverflow(Int64(byte - UInt8(ascii: "0")))
            if o1 || o2 { return nil }
            number = next
        case UInt8(ascii: "s"), UInt8(ascii: "m"), UInt8(ascii: "h"), UInt8(ascii: "d"):
            guard let value = number else { return nil }
            let unit: Int64 = switch byte {
            case UInt8(ascii: "s"): 1
            case UInt8(ascii: "m"): 60
            case UInt8(ascii: "h"): 3600
            default: 86400
            }
            let (seconds, o1) = value.multipliedReportingOverflow(by: unit)
            let (sum, o2) = total.addingReportingOverflow(seconds)
            if o1 || o2 { return nil }
            total = sum
            number = nil
            sawTerm = true
        default:
            return nil
        }
    }
    guard sawTerm, number == nil else { return nil }
    return total
}

/// `d8-istio,other` → the set of accepted token issuers; nil when it names none
/// or has an empty entry (`a,,b`), so a typo cannot silently accept less or more.
func parseIssuers(_ text: String) -> Set<String>? {
    let parts = text.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
    guard !parts.isEmpty, parts.allSatisfy({ !$0.isEmpty }) else { return nil }
    return Set(parts)
}
