/// Byte values and classes the parser works with. Everything is decided on
/// UTF-8 bytes: no Unicode normalization, no locale, nothing that could make two
/// components read the same bytes differently.
enum ASCII {
    static let nul: UInt8 = 0x00
    static let space: UInt8 = 0x20
    static let exclamation: UInt8 = 0x21
    static let hash: UInt8 = 0x23
    static let percent: UInt8 = 0x25
    static let ampersand: UInt8 = 0x26
    static let plus: UInt8 = 0x2B
    static let comma: UInt8 = 0x2C
    static let dot: UInt8 = 0x2E
    static let slash: UInt8 = 0x2F
    static let semicolon: UInt8 = 0x3B
    static let equals: UInt8 = 0x3D
    static let question: UInt8 = 0x3F
    static let backslash: UInt8 = 0x5C
    static let delete: UInt8 = 0x7F

    /// C0 controls and DEL: what Go's URL parser calls CTL bytes.
    @inline(__always)
    static func isControl(_ byte: UInt8) -> Bool { byte < space || byte == delete }

    /// The value of a hex digit (either case), or nil.
    @inline(__always)
    static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case 0x30...0x39: byte &- 0x30
        case 0x41...0x46: byte &- 0x41 &+ 10
        case 0x61...0x66: byte &- 0x61 &+ 10
        default: nil
        }
    }

    /// Characters that mean the same thing encoded or not inside a path segment,
    /// so the decoded path can be forwarded as is: RFC 3986 `unreserved` and
    /// `sub-delims` without `;`, plus `:` and `@` (`pchar` minus `pct-encoded`
    /// and `;`). That is ALPHA DIGIT `-._~!$&'()*+,=:@`.
    @inline(__always)
    static func isSafeInPathSegment(_ byte: UInt8) -> Bool {
        isMember(byte, low: pathSegmentLow, high: pathSegmentHigh)
    }

    /// Printable ASCII that RFC 3986 allows raw in a query:
    /// `pchar / "/" / "?"`, with `%` (checked separately as an escape).
    /// Excludes `#` and `;`, which have their own rejections.
    @inline(__always)
    static func isAllowedRawInQuery(_ byte: UInt8) -> Bool {
        isMember(byte, low: queryLow, high: queryHigh)
    }

    // The character sets as 128-bit bitmaps (bit n set: byte n is a member),
    // one test per byte instead of a chain of range comparisons; this runs on
    // every byte of every request target. The exhaustive byte tests pin them.

    /// Bytes 0x00–0x3F of the path segment set: `!$&'()*+,-.` `0-9` `:=`.
    private static let pathSegmentLow: UInt64 = 0x27FF_7FD2_0000_0000
    /// Bytes 0x40–0x7F of the path segment set: `@` `A-Z` `_` `a-z` `~`.
    private static let pathSegmentHigh: UInt64 = 0x47FF_FFFE_87FF_FFFF
    /// The path segment set plus `%`, `/` and `?`.
    private static let queryLow: UInt64 = 0xA7FF_FFF2_0000_0000
    private static let queryHigh: UInt64 = pathSegmentHigh

    @inline(__always)
    private static func isMember(_ byte: UInt8, low: UInt64, high: UInt64) -> Bool {
        switch byte {
        case 0..<64: (low >> UInt64(byte)) & 1 == 1
        case 64..<128: (high >> UInt64(byte &- 64)) & 1 == 1
        default: false
        }
    }
}

extension UnsafeBufferPointer<UInt8> {
    /// Whether the bytes in `range` spell `literal` exactly (case-sensitive,
    /// as the API server's string comparisons are).
    @inline(__always)
    func bytes(in range: Range<Int>, equal literal: StaticString) -> Bool {
        guard range.count == literal.utf8CodeUnitCount else { return false }
        let literalBytes = UnsafeBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount)
        var literalIndex = 0
        for index in range {
            if self[index] != literalBytes[literalIndex] { return false }
            literalIndex += 1
        }
        return true
    }

    /// A `String` of the (already validated, ASCII) bytes in `range`.
    @inline(__always)
    func string(in range: Range<Int>) -> String {
        String(decoding: UnsafeBufferPointer(rebasing: self[range]), as: UTF8.self)
    }
}
