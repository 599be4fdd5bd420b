/// Requirements the proxy adds to a list or watch so the API server itself
/// leaves out what a peer may never read (DESIGN §3 step 4b), while the
/// response stays the API server's own bytes (JSON, protobuf, Table, watch).
///
/// The added requirements go *in front of* the client's selector, joined by
/// one `,`. Prefixing, not appending, is what makes this safe whatever the
/// client wrote: both grammars read requirements left to right, a `\` in a
/// field selector escapes only the byte after it, and a label selector's only
/// grouping (`in (…)`) cannot span a `,` that precedes it. So the client's
/// text can make the whole selector invalid (the API server answers 400) but
/// never turn an added requirement into part of its own value, which a
/// trailing `\` would do to an appended one (`a=b\` + `,type!=x`).
public struct SelectorNarrowing: Sendable, Hashable {
    /// Field selector terms, e.g. `type!=helm.sh/release.v1`, already escaped.
    public var fieldRequirements: [String]
    /// Label selector requirements, e.g. `istio/multiCluster!=true`.
    public var labelRequirements: [String]

    public init(fieldRequirements: [String] = [], labelRequirements: [String] = []) {
        self.fieldRequirements = fieldRequirements
        self.labelRequirements = labelRequirements
    }

    public var isEmpty: Bool { fieldRequirements.isEmpty && labelRequirements.isEmpty }

    /// The field selector form of an exact value: `\`, `,` and `=` escaped as
    /// apimachinery's `fields.EscapeValue` does.
    public static func escapedFieldValue(_ value: String) -> String {
        var out = ""
        out.reserveCapacity(value.utf8.count)
        for character in value {
            if character == "\\" || character == "," || character == "=" { out.append("\\") }
            out.append(character)
        }
        return out
    }

    /// The target to forward for `request`: its path, and its query narrowed.
    public func target(for request: RequestAttributes) -> String {
        request.path + "?" + narrow(query: request.query)
    }

    /// `query` (raw, already accepted by ``RequestAttributes/init(method:target:)``,
    /// so each selector appears at most once) with the requirements put in
    /// front of the client's `fieldSelector` and `labelSelector`, or added as
    /// new parameters when the client sent none. Every other byte is kept.
    public func narrow(query: String) -> String {
        guard !isEmpty else { return query }
        let field = fieldRequirements.joined(separator: ",")
        let label = labelRequirements.joined(separator: ",")
        var out: [UInt8] = []
        var sawField = field.isEmpty, sawLabel = label.isEmpty
        let bytes = Array(query.utf8)
        bytes.withUnsafeBufferPointer { raw in
            // Pairs split on every `&`, empty ones kept as they are.
            var pairStart = 0
            while pairStart <= raw.count && !raw.isEmpty {
                var pairEnd = pairStart
                while pairEnd < raw.count && raw[pairEnd] != ASCII.ampersand { pairEnd += 1 }
                var keyEnd = pairStart
                while keyEnd < pairEnd && raw[keyEnd] != ASCII.equals { keyEnd += 1 }
                let key = QueryComponent(raw, pairStart..<keyEnd)
                let clientValue = UnsafeBufferPointer(rebasing: raw[min(keyEnd + 1, pairEnd)..<pairEnd])
                if pairStart > 0 { out.append(ASCII.ampersand) }
                if !sawField && key.decodes(to: "fieldSelector") {
                    sawField = true
                    Self.appendPair(&out, key: "fieldSelector", prefix: field, clientValue: clientValue)
                } else if !sawLabel && key.decodes(to: "labelSelector") {
                    sawLabel = true
                    Self.appendPair(&out, key: "labelSelector", prefix: label, clientValue: clientValue)
                } else {
                    out.append(contentsOf: UnsafeBufferPointer(rebasing: raw[pairStart..<pairEnd]))
                }
                pairStart = pairEnd + 1
            }
        }
        for (seen, key, value) in [(sawField, "fieldSelector", field), (sawLabel, "labelSelector", label)] where !seen {
            if !out.isEmpty { out.append(ASCII.ampersand) }
            Self.appendPair(&out, key: key, prefix: value, clientValue: UnsafeBufferPointer(start: nil, count: 0))
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// `KEY=<prefix, percent-encoded>[%2C<client value, raw>]`. The client's raw
    /// value decodes to the client's selector, so the whole decodes to
    /// `prefix,selector`.
    private static func appendPair(_ out: inout [UInt8], key: String, prefix: String,
                                   clientValue: UnsafeBufferPointer<UInt8>) {
        out.append(contentsOf: key.utf8)
        out.append(ASCII.equals)
        percentEncode(prefix, into: &out)
        if !clientValue.isEmpty {
            out.append(contentsOf: "%2C".utf8)
            out.append(contentsOf: clientValue)
        }
    }

    private static let hex = Array("0123456789ABCDEF".utf8)

    private static func percentEncode(_ text: String, into out: inout [UInt8]) {
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
                UInt8(ascii: "~"):
                out.append(byte)
            default:
                out.append(ASCII.percent)
                out.append(hex[Int(byte >> 4)])
                out.append(hex[Int(byte & 0x0F)])
            }
        }
    }
}
