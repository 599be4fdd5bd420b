/// RFC 4648 §4 Base64 with padding: how Kubernetes carries Secret `data`
/// values and kubeconfig `certificate-authority-data`.
enum Base64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    static func encode(_ bytes: some Collection<UInt8>) -> String {
        let input = Array(bytes)
        var out: [UInt8] = []
        out.reserveCapacity((input.count + 2) / 3 * 4)
        var index = 0
        while index + 3 <= input.count {
            let n = UInt32(input[index]) << 16 | UInt32(input[index + 1]) << 8 | UInt32(input[index + 2])
            out.append(alphabet[Int(n >> 18 & 63)]); out.append(alphabet[Int(n >> 12 & 63)])
            out.append(alphabet[Int(n >> 6 & 63)]); out.append(alphabet[Int(n & 63)])
            index += 3
        }
        let rest = input.count - index
        if rest > 0 {
            let n = UInt32(input[index]) << 16 | (rest == 2 ? UInt32(input[index + 1]) << 8 : 0)
            out.append(alphabet[Int(n >> 18 & 63)]); out.append(alphabet[Int(n >> 12 & 63)])
            out.append(rest == 2 ? alphabet[Int(n >> 6 & 63)] : UInt8(ascii: "="))
            out.append(UInt8(ascii: "="))
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Decodes padded standard Base64; `urlSafe` decodes the unpadded
    /// URL alphabet of JWS parts (RFC 7515 §2). Nil on any other byte.
    static func decode(_ text: some StringProtocol, urlSafe: Bool = false) -> [UInt8]? {
        var values: [UInt8] = []
        var padding = 0
        for b in text.utf8 {
            let v: UInt8
            switch b {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): v = b - UInt8(ascii: "A")
            case UInt8(ascii: "a")...UInt8(ascii: "z"): v = b - UInt8(ascii: "a") + 26
            case UInt8(ascii: "0")...UInt8(ascii: "9"): v = b - UInt8(ascii: "0") + 52
            case UInt8(ascii: "+") where !urlSafe, UInt8(ascii: "-") where urlSafe: v = 62
            case UInt8(ascii: "/") where !urlSafe, UInt8(ascii: "_") where urlSafe: v = 63
            case UInt8(ascii: "=") where !urlSafe:
                padding += 1
                continue
            default: return nil
            }
            guard padding == 0 else { return nil }
            values.append(v)
        }
        if !urlSafe {
            guard (values.count + padding) % 4 == 0, padding <= 2 else { return nil }
        }
        guard values.count % 4 != 1 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(values.count * 3 / 4)
        var index = 0
        while index < values.count {
            let chunk = values[index..<min(index + 4, values.count)]
            var n: UInt32 = 0
            for (i, v) in chunk.enumerated() { n |= UInt32(v) << UInt32(18 - 6 * i) }
            out.append(UInt8(n >> 16 & 0xFF))
            if chunk.count > 2 { out.append(UInt8(n >> 8 & 0xFF)) }
            if chunk.count > 3 { out.append(UInt8(n & 0xFF)) }
            index += 4
        }
        return out
    }
}

/// Unix seconds as RFC 3339 UTC (`2026-11-25T19:35:04Z`), the form of
/// Kubernetes `metav1.Time`. Howard Hinnant's civil-from-days algorithm,
/// so no calendar or Foundation is needed.
public func rfc3339(unixSeconds: Int64) -> String {
    let days = unixSeconds >= 0 ? unixSeconds / 86_400 : (unixSeconds - 86_399) / 86_400
    let secondsOfDay = unixSeconds - days * 86_400
    let z = days + 719_468
    let era = (z >= 0 ? z : z - 146_096) / 146_097
    let dayOfEra = z - era * 146_097
    let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
    let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
    let mp = (5 * dayOfYear + 2) / 153
    let day = dayOfYear - (153 * mp + 2) / 5 + 1
    let month = mp < 10 ? mp + 3 : mp - 9
    let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
    func two(_ v: Int64) -> String { v < 10 ? "0\(v)" : "\(v)" }
    let yearText = String(year)
    let paddedYear = String(repeating: "0", count: max(0, 4 - yearText.count)) + yearText
    return "\(paddedYear)-\(two(month))-\(two(day))T\(two(secondsOfDay / 3600)):\(two(secondsOfDay / 60 % 60)):\(two(secondsOfDay % 60))Z"
}
