/// The one Base64 of Isthmus: strict codecs for the two alphabets it meets.
///
/// - `base64url` without padding (RFC 4648 §5, as RFC 7515 §2 requires for
///   every part of a compact JWS).
/// - standard Base64 with padding (RFC 4648 §4), the body of a PEM block
///   (RFC 7468 §2) once its line breaks are removed.
///
/// Both decoders are *canonical*: they refuse characters outside the
/// alphabet, misplaced or missing padding, and non-zero bits in the last
/// character. That keeps "one value, one spelling": a token cannot be
/// re-spelt into a second string that decodes to the same bytes, which would
/// otherwise slip past anything that compares or caches tokens as strings.
///
/// Hand-written rather than Foundation's `Data(base64Encoded:)` because that
/// one is lenient (it ignores unknown characters with some options and accepts
/// non-zero trailing bits) and because the token path should not allocate a
/// `Data` per part.
public enum Base64 {
    /// 0...63 for alphabet characters, 0xFF otherwise.
    private static let urlTable: [UInt8] = makeTable(plus: UInt8(ascii: "-"), slash: UInt8(ascii: "_"))
    private static let standardTable: [UInt8] = makeTable(plus: UInt8(ascii: "+"), slash: UInt8(ascii: "/"))

    private static let urlAlphabet: [UInt8] = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
    private static let standardAlphabet: [UInt8] = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    private static func makeTable(plus: UInt8, slash: UInt8) -> [UInt8] {
        var table = [UInt8](repeating: 0xFF, count: 256)
        var value: UInt8 = 0
        for c in UInt8(ascii: "A")...UInt8(ascii: "Z") { table[Int(c)] = value; value += 1 }
        for c in UInt8(ascii: "a")...UInt8(ascii: "z") { table[Int(c)] = value; value += 1 }
        for c in UInt8(ascii: "0")...UInt8(ascii: "9") { table[Int(c)] = value; value += 1 }
        table[Int(plus)] = 62
        table[Int(slash)] = 63
        return table
    }

    // MARK: base64url, no padding

    /// True when every byte is in the base64url alphabet (no `=`, no whitespace).
    public static func isURLAlphabet<C: Collection<UInt8>>(_ bytes: C) -> Bool {
        let table = urlTable
        for b in bytes where table[Int(b)] == 0xFF { return false }
        return true
    }

    /// Decodes unpadded base64url; nil when the input is not canonical.
    public static func decodeURL<C: BidirectionalCollection<UInt8>>(_ input: C) -> [UInt8]? {
        decode(input, table: urlTable, padded: false)
    }

    public static func encodeURL<C: Collection<UInt8>>(_ bytes: C) -> String {
        encode(bytes, alphabet: urlAlphabet, padded: false)
    }

    // MARK: standard, padded

    /// Decodes padded standard Base64; nil when the input is not canonical.
    public static func decodeStandard<C: BidirectionalCollection<UInt8>>(_ input: C) -> [UInt8]? {
        decode(input, table: standardTable, padded: true)
    }

    public static func encodeStandard<C: Collection<UInt8>>(_ bytes: C) -> String {
        encode(bytes, alphabet: standardAlphabet, padded: true)
    }

    // MARK: shared

    private static func decode<C: BidirectionalCollection<UInt8>>(_ input: C, table: [UInt8], padded: Bool) -> [UInt8]? {
        var count = input.count
        var body = input[...]
        if padded {
            // Exactly the padding RFC 4648 §4 prescribes: the length is a
            // multiple of 4 and at most two `=` end it.
            guard count % 4 == 0 else { return nil }
            var pads = 0
            while pads < 2, let last = body.last, last == UInt8(ascii: "=") {
                body = body.dropLast()
                pads += 1
            }
            count -= pads
        }
        // A single leftover character carries only 6 bits: never valid.
        guard count % 4 != 1 else { return nil }

        var out = [UInt8]()
        out.reserveCapacity(count * 3 / 4)
        var accumulator: UInt32 = 0
        var bits = 0
        for b in body {
            let v = table[Int(b)]
            guard v != 0xFF else { return nil }
            accumulator = (accumulator << 6) | UInt32(v)
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(truncatingIfNeeded: accumulator >> UInt32(bits)))
                accumulator &= (1 << UInt32(bits)) - 1
            }
        }
        // Canonical form: the bits left over after the last whole byte are zero.
        guard accumulator == 0 else { return nil }
        return out
    }

    private static func encode<C: Collection<UInt8>>(_ bytes: C, alphabet: [UInt8], padded: Bool) -> String {
        var out = [UInt8]()
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var iterator = bytes.makeIterator()
        while let b0 = iterator.next() {
            let b1 = iterator.next()
            let b2 = b1 == nil ? nil : iterator.next()
            let n = (UInt32(b0) << 16) | (UInt32(b1 ?? 0) << 8) | UInt32(b2 ?? 0)
            out.append(alphabet[Int((n >> 18) & 63)])
            out.append(alphabet[Int((n >> 12) & 63)])
            if b1 != nil {
                out.append(alphabet[Int((n >> 6) & 63)])
            } else if padded {
                out.append(UInt8(ascii: "="))
            }
            if b2 != nil {
                out.append(alphabet[Int(n & 63)])
            } else if padded {
                out.append(UInt8(ascii: "="))
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
