import IsthmusRequestInfo
import Testing

/// Every byte value, raw and percent-encoded, in a path segment and in a query
/// value: the character classes are the security boundary, so they are pinned
/// exhaustively against an independent, spelled-out definition.
@Suite("Every byte in every position")
struct ByteClassTests {
    /// ALPHA DIGIT and the RFC 3986 `pchar` punctuation without `;`.
    static let safeInSegment = Set(
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,=:@".utf8)

    static func target(_ prefix: String, _ byte: UInt8, _ suffix: String) -> String {
        // Bytes above 0x7F are not valid UTF-8 alone and become U+FFFD, still
        // non-ASCII, which is what those rows are about.
        String(decoding: Array(prefix.utf8) + [byte] + Array(suffix.utf8), as: UTF8.self)
    }

    static func result(_ target: String) -> Result<RequestAttributes, TargetRejection> {
        Result { () throws(TargetRejection) in try RequestAttributes(method: "GET", target: target) }
    }

    static func pod(_ name: String, path: String? = nil, query: String = "") -> RequestAttributes {
        RequestAttributes(
            isResourceRequest: true, path: path ?? "/api/v1/pods/" + name, query: query, verb: .get,
            apiPrefix: "api", apiVersion: "v1", resource: "pods", name: name)
    }

    @Test("raw bytes in a path segment")
    func rawPathBytes() {
        for byte in UInt8.min...UInt8.max {
            let target = Self.target("/api/v1/pods/a", byte, "b")
            let character = String(decoding: [byte], as: UTF8.self)
            let expected: Result<RequestAttributes, TargetRejection> =
                if Self.safeInSegment.contains(byte) {
                    .success(Self.pod("a\(character)b"))
                } else {
                    switch byte {
                    case UInt8(ascii: "/"):
                        .success(
                            RequestAttributes(
                                isResourceRequest: true, path: "/api/v1/pods/a/b", verb: .get, apiPrefix: "api",
                                apiVersion: "v1", resource: "pods", subresource: "b", name: "a"))
                    case UInt8(ascii: "?"): .success(Self.pod("a", query: "b"))
                    case UInt8(ascii: "%"): .failure(.invalidPercentEncodingInPath)
                    case UInt8(ascii: "#"): .failure(.fragment)
                    case UInt8(ascii: ";"): .failure(.semicolonInPath)
                    case UInt8(ascii: "\\"): .failure(.backslashInPath)
                    case 0x00..<0x20, 0x7F: .failure(.controlCharacter)
                    case 0x80...: .failure(.nonASCII)
                    default: .failure(.unsafeCharacterInPath)
                    }
                }
            #expect(Self.result(target) == expected, "byte 0x\(String(byte, radix: 16))")
        }
    }

    @Test("percent-encoded bytes in a path segment")
    func encodedPathBytes() {
        for byte in UInt8.min...UInt8.max {
            for hexDigits in ["0123456789ABCDEF", "0123456789abcdef"] {
                let digits = Array(hexDigits)
                let escape = "%\(digits[Int(byte >> 4)])\(digits[Int(byte & 0xF)])"
                let target = "/api/v1/pods/a\(escape)b"
                let expected: Result<RequestAttributes, TargetRejection> =
                    switch byte {
                    case UInt8(ascii: "/"): .failure(.encodedSlash)
                    case UInt8(ascii: "\\"): .failure(.encodedBackslash)
                    case UInt8(ascii: "."): .failure(.encodedDot)
                    case 0x00: .failure(.encodedNUL)
                    case UInt8(ascii: ";"): .failure(.semicolonInPath)
                    case _ where Self.safeInSegment.contains(byte):
                        .success(Self.pod("a\(String(decoding: [byte], as: UTF8.self))b"))
                    case 0x01..<0x20, 0x7F: .failure(.controlCharacter)
                    case 0x80...: .failure(.nonASCII)
                    default: .failure(.unsafeCharacterInPath)
                    }
                #expect(Self.result(target) == expected, "\(escape)")
            }
        }
    }

    @Test("raw bytes in a query value")
    func rawQueryBytes() {
        for byte in UInt8.min...UInt8.max {
            let target = Self.target("/api/v1/pods/a?x=", byte, "")
            let character = String(decoding: [byte], as: UTF8.self)
            let expected: Result<RequestAttributes, TargetRejection> =
                if Self.safeInSegment.contains(byte) || byte == UInt8(ascii: "/") || byte == UInt8(ascii: "?") {
                    .success(Self.pod("a", query: "x=\(character)"))
                } else {
                    switch byte {
                    case UInt8(ascii: "%"): .failure(.invalidPercentEncodingInQuery)
                    case UInt8(ascii: "#"): .failure(.fragment)
                    case UInt8(ascii: ";"): .failure(.semicolonInQuery)
                    case 0x00..<0x20, 0x7F: .failure(.controlCharacter)
                    case 0x80...: .failure(.nonASCII)
                    default: .failure(.unsafeCharacterInQuery)
                    }
                }
            #expect(Self.result(target) == expected, "byte 0x\(String(byte, radix: 16))")
        }
    }

    @Test("percent-encoded bytes in a query value are all fine")
    func encodedQueryBytes() {
        for byte in UInt8.min...UInt8.max {
            let escape = "%" + (byte < 16 ? "0" : "") + String(byte, radix: 16, uppercase: true)
            #expect(Self.result("/api/v1/pods/a?x=\(escape)") == .success(Self.pod("a", query: "x=\(escape)")))
        }
    }
}
