/// RFC 3339 times in UTC, the form of Kubernetes `metav1.Time`
/// (`2026-11-25T19:35:04Z`) and of log timestamps (`2026-11-25T19:35:04.123Z`).
/// Howard Hinnant's civil-from-days algorithm, so no calendar, Foundation or
/// libc call is needed, and the digits are appended to bytes directly (the
/// proxy's access log writes one per request).
public enum RFC3339 {
    /// Whole seconds: `2026-11-25T19:35:04Z`.
    public static func string(unixSeconds: Int64) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(20)
        append(unixSeconds: unixSeconds, milliseconds: nil, into: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// With milliseconds: `2026-11-25T19:35:04.123Z` (truncated, not rounded,
    /// so a time never moves into the next second).
    public static func appendMilliseconds(_ unixSeconds: Double, into out: inout [UInt8]) {
        let whole = unixSeconds.rounded(.down)
        let millis = min(999, max(0, Int((unixSeconds - whole) * 1000)))
        append(unixSeconds: Int64(whole), milliseconds: millis, into: &out)
    }

    private static func append(unixSeconds: Int64, milliseconds: Int?, into out: inout [UInt8]) {
        let days = unixSeconds >= 0 ? unixSeconds / 86_400 : (unixSeconds - 86_399) / 86_400
        let secondsOfDay = Int(unixSeconds - days * 86_400)
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        ASCIIDigits.append(Int(year), width: 4, into: &out)
        out.append(UInt8(ascii: "-"))
        ASCIIDigits.append(Int(month), width: 2, into: &out)
        out.append(UInt8(ascii: "-"))
        ASCIIDigits.append(Int(day), width: 2, into: &out)
        out.append(UInt8(ascii: "T"))
        ASCIIDigits.append(secondsOfDay / 3600, width: 2, into: &out)
        out.append(UInt8(ascii: ":"))
        ASCIIDigits.append(secondsOfDay / 60 % 60, width: 2, into: &out)
        out.append(UInt8(ascii: ":"))
        ASCIIDigits.append(secondsOfDay % 60, width: 2, into: &out)
        if let milliseconds {
            out.append(UInt8(ascii: "."))
            ASCIIDigits.append(milliseconds, width: 3, into: &out)
        }
        out.append(UInt8(ascii: "Z"))
    }
}

public enum ASCIIDigits {
    /// `value` (≥ 0; a negative value writes 0) in decimal, zero-padded to at
    /// least `width` digits, without an intermediate String.
    public static func append(_ value: Int, width: Int, into out: inout [UInt8]) {
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                     UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        withUnsafeMutableBytes(of: &digits) { buffer in
            var rest = max(0, value)
            var count = 0
            repeat {
                buffer[buffer.count - 1 - count] = UInt8(ascii: "0") + UInt8(rest % 10)
                rest /= 10
                count += 1
            } while rest > 0 && count < buffer.count
            while count < min(width, buffer.count) {
                buffer[buffer.count - 1 - count] = UInt8(ascii: "0")
                count += 1
            }
            out.append(contentsOf: buffer[(buffer.count - count)...])
        }
    }
}
