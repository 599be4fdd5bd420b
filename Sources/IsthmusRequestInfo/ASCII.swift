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
    /// and `;`).
    @inline(__always)
    static func isSafeInPathSegment(_ byte: UInt8) -> Bool {
        switch byte {
        case 0x41...0x5A, 0x61...0x7A, 0x30...0x39: true  // ALPHA DIGIT
        case 0x2D, 0x2E, 0x5F, 0x7E: true  // - . _ ~
        case 0x21, 0x24, 0x26, 0x27, 0x28, 0x29, 0x2A, 0x2B, 0x2C, 0x3D: true  // ! $ & ' ( ) * + , =
        case 0x3A, 0x40: true  // : @
        default: false
        }
    }

    /// Printable ASCII that RFC 3986 allows raw in a query:
    /// `pchar / "/" / "?"`, with `%` (checked separately as an escape).
    /// Excludes `#` and `;`, which have their own rejections.
    @inline(__always)
    static func isAllowedRawInQuery(_ byte: UInt8) -> Bool {
        isSafeInPathSegment(byte) || byte == slash || byte == question || byte == percent
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
