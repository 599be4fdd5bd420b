import IsthmusKubeTypes

/// One textual encoding block (RFC 7468): a label and the DER bytes inside.
///
/// Deckhouse stores keys as PEM and, during a key rotation, a peer's
/// `authnKeyPub` may hold several blocks one after another, so ``parseAll(_:)``
/// returns every block in order.
public struct PEMBlock: Sendable, Hashable {
    /// The label between `-----BEGIN ` and `-----`, e.g. `PUBLIC KEY`.
    public var label: String
    /// The decoded bytes (DER for every label this module reads).
    public var der: [UInt8]

    public init(label: String, der: [UInt8]) {
        self.label = label
        self.der = der
    }

    /// The block as text: 64-character lines and a final newline, exactly as
    /// OpenSSL and Go's `pem.EncodeToMemory` write it.
    public var pemString: String {
        let body = Base64.encodeStandard(der)
        var text = "-----BEGIN \(label)-----\n"
        var line = body.startIndex
        while line < body.endIndex {
            let next = body.index(line, offsetBy: 64, limitedBy: body.endIndex) ?? body.endIndex
            text += body[line..<next]
            text += "\n"
            line = next
        }
        text += "-----END \(label)-----\n"
        return text
    }

    /// Every block in `text`, in order.
    ///
    /// Parsing follows RFC 7468's "lax" reading: text outside blocks is
    /// ignored (§5.2 allows explanatory text), CRLF and surrounding spaces on
    /// a line are tolerated, and the Base64 body may be wrapped at any width.
    /// Refused: a BEGIN without its END, an END whose label differs, RFC 1421
    /// headers such as `Proc-Type: 4,ENCRYPTED` (legacy encrypted keys, which
    /// we cannot and should not read), and a body that is not canonical
    /// padded Base64.
    ///
    /// An empty result is not an error here; callers that need a block say so.
    public static func parseAll(_ text: String) throws(KeyError) -> [PEMBlock] {
        var blocks: [PEMBlock] = []
        var current: (label: String, body: [UInt8])? = nil
        for rawLine in text.utf8.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            let line = trimmed(rawLine)
            if var open = current {
                if let endLabel = label(of: line, marker: "-----END ") {
                    guard endLabel == open.label else {
                        throw KeyError.mismatchedPEMEnd(begin: open.label, end: endLabel)
                    }
                    guard let der = Base64.decodeStandard(open.body) else {
                        throw KeyError.invalidBase64(label: open.label)
                    }
                    blocks.append(PEMBlock(label: open.label, der: der))
                    current = nil
                } else if line.contains(UInt8(ascii: ":")) {
                    throw KeyError.pemHeadersUnsupported(label: open.label)
                } else if label(of: line, marker: "-----BEGIN ") != nil {
                    throw KeyError.unterminatedPEMBlock(label: open.label)
                } else {
                    for b in line where b != 0x20 && b != 0x09 { open.body.append(b) }
                    current = open
                }
            } else if let beginLabel = label(of: line, marker: "-----BEGIN ") {
                current = (beginLabel, [])
            }
        }
        if let open = current {
            throw KeyError.unterminatedPEMBlock(label: open.label)
        }
        return blocks
    }

    private static func trimmed(_ line: Substring.UTF8View.SubSequence) -> Substring.UTF8View.SubSequence {
        var line = line
        while let first = line.first, first == 0x20 || first == 0x09 || first == 0x0D { line = line.dropFirst() }
        while let last = line.last, last == 0x20 || last == 0x09 || last == 0x0D { line = line.dropLast() }
        return line
    }

    /// The label of an encapsulation boundary line `<marker>LABEL-----`, or nil.
    private static func label(of line: Substring.UTF8View.SubSequence, marker: StaticString) -> String? {
        let prefix = UnsafeBufferPointer(start: marker.utf8Start, count: marker.utf8CodeUnitCount)
        let suffix = "-----".utf8
        guard line.count >= prefix.count + suffix.count,
            line.starts(with: prefix),
            line.reversed().starts(with: suffix.reversed())
        else { return nil }
        let inner = line.dropFirst(prefix.count).dropLast(suffix.count)
        return String(Substring(inner))
    }
}
