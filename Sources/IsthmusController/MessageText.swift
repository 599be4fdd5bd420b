import IsthmusKubeTypes

/// What a message may say of a value it did not expect. Messages go into
/// status conditions and logs, so a value is cut to a few hundred bytes (on a
/// scalar boundary, not a Character one: one Character can hold thousands of
/// combining scalars) and JSON-quoted, so no control character or quote
/// reaches the reader raw (found by FuzzIstioMulticluster and FuzzPeerDocuments).
enum MessageText {
    /// `"value"`, JSON-escaped, cut to `limit` UTF-8 bytes with `…` when longer.
    static func quoted(_ value: String, limit: Int = 120) -> String {
        var out: [UInt8] = []
        JSON.writeString(truncated(value, limit: limit), into: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// At most `limit` UTF-8 bytes of `value`, whole scalars, `…` when cut.
    static func truncated(_ value: String, limit: Int) -> String {
        guard value.utf8.count > limit else { return value }
        var kept = String.UnicodeScalarView()
        var bytes = 0
        for scalar in value.unicodeScalars {
            bytes += String(scalar).utf8.count
            guard bytes <= limit else { break }
            kept.append(scalar)
        }
        return String(kept) + "…"
    }
}
