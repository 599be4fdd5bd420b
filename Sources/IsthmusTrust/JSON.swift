import IsthmusKubeTypes

/// The strict view of JSON that tokens and the peers file are read through.
///
/// The reader is IsthmusKubeTypes' `JSON(parsing:options: .strict)`: duplicate
/// member names, lone surrogates, invalid UTF-8, leading zeros, a byte order
/// mark and trailing data are all errors, and nesting is capped at 32 (see
/// `JSONParseOptions` for why). This file adds what the claims need on top:
///
/// - **Integers stay integers.** A number is an `Int64` only when written as a
///   plain integer that fits; anything else is `.nonInteger`, which no claim
///   accepts. (Foundation would turn `exp` into a Double first, so values above
///   2^53 or `1e10` would silently round.)
/// - Errors whose descriptions never echo long or unprintable input.
enum JSONValue: Equatable, Sendable {
    case object(JSONObject)
    case array([JSONValue])
    case string(String)
    /// A number written as an integer (no fraction, no exponent) that fits in Int64.
    case integer(Int64)
    /// Any other number. Its value is never needed, so it is not kept.
    case nonInteger
    case bool(Bool)
    case null

    /// A short name for error messages ("a string", "an object", ...).
    var kindDescription: String {
        switch self {
        case .object: "an object"
        case .array: "an array"
        case .string: "a string"
        case .integer, .nonInteger: "a number"
        case .bool: "a boolean"
        case .null: "null"
        }
    }

    init(_ json: JSON) {
        switch json {
        case .object(let members):
            self = .object(JSONObject(members: members.map { JSONObject.Member(name: $0.0, value: JSONValue($0.1)) }))
        case .array(let elements):
            self = .array(elements.map(JSONValue.init))
        case .string(let string):
            self = .string(string)
        case .number(let text):
            // The reader has validated the text, so only plain integers that fit convert.
            self = Int64(text).map(JSONValue.integer) ?? .nonInteger
        case .bool(let bool):
            self = .bool(bool)
        case .null:
            self = .null
        }
    }
}

/// Members in document order; names are unique (the strict reader enforces it).
struct JSONObject: Equatable, Sendable {
    struct Member: Equatable, Sendable {
        var name: String
        var value: JSONValue
    }

    var members: [Member]

    subscript(name: String) -> JSONValue? {
        for member in members where member.name == name { return member.value }
        return nil
    }
}

struct JSONError: Error, Hashable, Sendable, CustomStringConvertible {
    typealias Problem = JSONParseError.Problem

    /// Byte offset where the problem was found.
    var offset: Int
    var problem: Problem

    var description: String {
        let what: String
        switch problem {
        case .unexpectedEnd: what = "unexpected end of input"
        case .unexpectedByte: what = "unexpected character"
        case .invalidNumber: what = "invalid number"
        case .invalidEscape: what = "invalid escape sequence"
        case .invalidUTF8: what = "invalid UTF-8"
        case .controlCharacterInString: what = "unescaped control character in a string"
        case .duplicateName(let name): what = "duplicate member name \(JSONText.quotedForMessage(name))"
        case .tooDeep: what = "nesting too deep"
        case .trailingData: what = "data after the JSON value"
        }
        return "\(what) at byte \(offset)"
    }
}

enum JSONReader {
    /// Parses one complete JSON document strictly.
    static func parse<C: Collection<UInt8>>(_ input: C) throws(JSONError) -> JSONValue {
        do {
            return JSONValue(try JSON(parsing: input, options: .strict))
        } catch {
            throw JSONError(offset: error.offset, problem: error.problem)
        }
    }
}

/// Writing helpers, shared by the token minter and the peers file encoder.
enum JSONText {
    /// Appends `string` as a JSON string literal. Escapes only what RFC 8259
    /// requires (quote, backslash, control characters), as Go's encoding/json
    /// does for the characters that occur in our documents.
    static func appendQuoted(_ string: String, to out: inout [UInt8]) {
        let hex: [UInt8] = Array("0123456789abcdef".utf8)
        out.append(UInt8(ascii: "\""))
        for b in string.utf8 {
            switch b {
            case UInt8(ascii: "\""): out.append(contentsOf: [0x5C, 0x22])
            case UInt8(ascii: "\\"): out.append(contentsOf: [0x5C, 0x5C])
            case 0x0A: out.append(contentsOf: [0x5C, UInt8(ascii: "n")])
            case 0x0D: out.append(contentsOf: [0x5C, UInt8(ascii: "r")])
            case 0x09: out.append(contentsOf: [0x5C, UInt8(ascii: "t")])
            case 0..<0x20:
                out.append(contentsOf: Array("\\u00".utf8))
                out.append(hex[Int(b >> 4)])
                out.append(hex[Int(b & 0xF)])
            default: out.append(b)
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    static func appendInteger(_ value: Int64, to out: inout [UInt8]) {
        out.append(contentsOf: String(value).utf8)
    }

    /// A value from outside (a claim, a member name) made safe to put in a
    /// log line or an error message: at most 64 characters, printable ASCII
    /// only, quoted. Anything else is summarised instead of echoed, so a
    /// hostile value cannot forge log lines or smuggle a secret into logs.
    static func quotedForMessage(_ value: String) -> String {
        let utf8 = value.utf8
        guard !utf8.isEmpty else { return "\"\"" }
        guard utf8.count <= 64, utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "\\") })
        else { return "(\(utf8.count) bytes, not shown)" }
        return "\"\(value)\""
    }
}
