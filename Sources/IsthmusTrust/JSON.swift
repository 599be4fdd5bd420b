/// A small, strict JSON (RFC 8259) reader and the string escaping the
/// writers in this module share.
///
/// Why not `JSONSerialization`/`JSONDecoder`:
/// - **Duplicate member names are refused.** RFC 8259 §4 leaves their meaning
///   to the implementation, and implementations disagree (Go's encoding/json
///   keeps the last, many others the first). A token carrying
///   `{"aud":"us","aud":"them"}` would then mean one thing to us and another
///   to whatever logged or forwarded it. A document with a repeated name in
///   any object is not valid here, in tokens and in the peers file alike.
/// - **Integers stay integers.** Foundation turns every number into a Double
///   first; `exp` values above 2^53 or `1e10` would silently round. Here a
///   number is an `Int64` only when written as a plain integer that fits;
///   anything else is `.nonInteger`, which no claim accepts.
/// - **Speed.** The token path decodes two tiny objects per cold
///   verification; this avoids bridging and `Any` boxes.
///
/// Input is bytes. Invalid UTF-8, lone surrogates in `\u` escapes, control
/// characters inside strings, a byte order mark, leading zeros and trailing
/// data are all errors. Nesting is capped so hostile input cannot exhaust the
/// stack.
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
}

/// Members in document order; names are unique (the reader enforces it).
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
    enum Problem: Hashable, Sendable {
        case unexpectedEnd
        case unexpectedByte
        case invalidNumber
        case invalidEscape
        case invalidUTF8
        case controlCharacterInString
        case duplicateName(String)
        case tooDeep
        case trailingData
    }

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

struct JSONReader {
    /// Deep enough for anything legitimate here (tokens and the peers file are
    /// three levels at most), shallow enough that recursion is harmless.
    static let maximumDepth = 32

    private let bytes: [UInt8]
    private var index: Int
    private let end: Int

    private init(_ bytes: [UInt8]) {
        self.bytes = bytes
        self.index = 0
        self.end = bytes.count
    }

    /// Parses one complete JSON document.
    static func parse<C: Collection<UInt8>>(_ input: C) throws(JSONError) -> JSONValue {
        var reader = JSONReader(Array(input))
        reader.skipWhitespace()
        let value = try reader.parseValue(depth: 0)
        reader.skipWhitespace()
        guard reader.index == reader.end else {
            throw JSONError(offset: reader.index, problem: .trailingData)
        }
        return value
    }

    private func fail(_ problem: JSONError.Problem) -> JSONError {
        JSONError(offset: index, problem: problem)
    }

    private mutating func skipWhitespace() {
        while index < end {
            switch bytes[index] {
            case 0x20, 0x09, 0x0A, 0x0D: index += 1
            default: return
            }
        }
    }

    private mutating func parseValue(depth: Int) throws(JSONError) -> JSONValue {
        guard index < end else { throw fail(.unexpectedEnd) }
        switch bytes[index] {
        case UInt8(ascii: "{"):
            return .object(try parseObject(depth: depth + 1))
        case UInt8(ascii: "["):
            return try parseArray(depth: depth + 1)
        case UInt8(ascii: "\""):
            return .string(try parseString())
        case UInt8(ascii: "t"):
            try expectLiteral("true")
            return .bool(true)
        case UInt8(ascii: "f"):
            try expectLiteral("false")
            return .bool(false)
        case UInt8(ascii: "n"):
            try expectLiteral("null")
            return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return try parseNumber()
        default:
            throw fail(.unexpectedByte)
        }
    }

    private mutating func expectLiteral(_ literal: StaticString) throws(JSONError) {
        let count = literal.utf8CodeUnitCount
        guard end - index >= count else { throw JSONError(offset: end, problem: .unexpectedEnd) }
        let pointer = literal.utf8Start
        for i in 0..<count where bytes[index + i] != pointer[i] {
            throw JSONError(offset: index + i, problem: .unexpectedByte)
        }
        index += count
    }

    private mutating func parseObject(depth: Int) throws(JSONError) -> JSONObject {
        guard depth <= Self.maximumDepth else { throw fail(.tooDeep) }
        index += 1  // {
        var members: [JSONObject.Member] = []
        // Linear scans are cheapest for the handful of members a token has;
        // a set takes over for big objects such as a long peers file.
        var names: Set<String>? = nil
        skipWhitespace()
        if index < end, bytes[index] == UInt8(ascii: "}") {
            index += 1
            return JSONObject(members: members)
        }
        while true {
            skipWhitespace()
            guard index < end else { throw fail(.unexpectedEnd) }
            guard bytes[index] == UInt8(ascii: "\"") else { throw fail(.unexpectedByte) }
            let nameOffset = index
            let name = try parseString()
            if var set = names {
                guard set.insert(name).inserted else {
                    throw JSONError(offset: nameOffset, problem: .duplicateName(name))
                }
                names = set
            } else {
                for member in members where member.name == name {
                    throw JSONError(offset: nameOffset, problem: .duplicateName(name))
                }
                if members.count >= 15 {
                    names = Set(members.map(\.name) + [name])
                }
            }
            skipWhitespace()
            guard index < end else { throw fail(.unexpectedEnd) }
            guard bytes[index] == UInt8(ascii: ":") else { throw fail(.unexpectedByte) }
            index += 1
            skipWhitespace()
            let value = try parseValue(depth: depth)
            members.append(JSONObject.Member(name: name, value: value))
            skipWhitespace()
            guard index < end else { throw fail(.unexpectedEnd) }
            switch bytes[index] {
            case UInt8(ascii: ","):
                index += 1
            case UInt8(ascii: "}"):
                index += 1
                return JSONObject(members: members)
            default:
                throw fail(.unexpectedByte)
            }
        }
    }

    private mutating func parseArray(depth: Int) throws(JSONError) -> JSONValue {
        guard depth <= Self.maximumDepth else { throw fail(.tooDeep) }
        index += 1  // [
        var elements: [JSONValue] = []
        skipWhitespace()
        if index < end, bytes[index] == UInt8(ascii: "]") {
            index += 1
            return .array(elements)
        }
        while true {
            skipWhitespace()
            elements.append(try parseValue(depth: depth))
            skipWhitespace()
            guard index < end else { throw fail(.unexpectedEnd) }
            switch bytes[index] {
            case UInt8(ascii: ","):
                index += 1
            case UInt8(ascii: "]"):
                index += 1
                return .array(elements)
            default:
                throw fail(.unexpectedByte)
            }
        }
    }

    /// RFC 8259 §6: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
    private mutating func parseNumber() throws(JSONError) -> JSONValue {
        let start = index
        var negative = false
        if bytes[index] == UInt8(ascii: "-") {
            negative = true
            index += 1
        }
        guard index < end, isDigit(bytes[index]) else {
            throw index < end ? fail(.invalidNumber) : fail(.unexpectedEnd)
        }
        // Accumulate as a negative number so Int64.min is representable.
        var value: Int64 = 0
        var fits = true
        if bytes[index] == UInt8(ascii: "0") {
            index += 1
            if index < end, isDigit(bytes[index]) {
                throw JSONError(offset: start, problem: .invalidNumber)  // leading zero
            }
        } else {
            while index < end, isDigit(bytes[index]) {
                let digit = Int64(bytes[index] &- UInt8(ascii: "0"))
                if fits {
                    let (times10, o1) = value.multipliedReportingOverflow(by: 10)
                    let (next, o2) = times10.subtractingReportingOverflow(digit)
                    if o1 || o2 { fits = false } else { value = next }
                }
                index += 1
            }
        }
        var integral = true
        if index < end, bytes[index] == UInt8(ascii: ".") {
            integral = false
            index += 1
            guard index < end, isDigit(bytes[index]) else { throw fail(.invalidNumber) }
            while index < end, isDigit(bytes[index]) { index += 1 }
        }
        if index < end, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
            integral = false
            index += 1
            if index < end, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") {
                index += 1
            }
            guard index < end, isDigit(bytes[index]) else { throw fail(.invalidNumber) }
            while index < end, isDigit(bytes[index]) { index += 1 }
        }
        guard integral, fits else { return .nonInteger }
        if negative { return .integer(value) }
        let (positive, overflow) = Int64(0).subtractingReportingOverflow(value)
        return overflow ? .nonInteger : .integer(positive)
    }

    private func isDigit(_ b: UInt8) -> Bool {
        b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9")
    }

    private mutating func parseString() throws(JSONError) -> String {
        index += 1  // opening quote
        let start = index
        // Fast path: no escapes, so the content is one slice of the input.
        while index < end {
            let b = bytes[index]
            if b == UInt8(ascii: "\"") {
                guard let string = String(validating: bytes[start..<index], as: UTF8.self) else {
                    throw JSONError(offset: start, problem: .invalidUTF8)
                }
                index += 1
                return string
            }
            if b == UInt8(ascii: "\\") { break }
            if b < 0x20 { throw fail(.controlCharacterInString) }
            index += 1
        }
        guard index < end else { throw fail(.unexpectedEnd) }

        // Slow path: copy what we have and decode escapes.
        var out = Array(bytes[start..<index])
        while index < end {
            let b = bytes[index]
            if b == UInt8(ascii: "\"") {
                guard let string = String(validating: out, as: UTF8.self) else {
                    throw JSONError(offset: start, problem: .invalidUTF8)
                }
                index += 1
                return string
            }
            if b < 0x20 { throw fail(.controlCharacterInString) }
            if b != UInt8(ascii: "\\") {
                out.append(b)
                index += 1
                continue
            }
            index += 1
            guard index < end else { throw fail(.unexpectedEnd) }
            let escape = bytes[index]
            index += 1
            switch escape {
            case UInt8(ascii: "\""): out.append(0x22)
            case UInt8(ascii: "\\"): out.append(0x5C)
            case UInt8(ascii: "/"): out.append(0x2F)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                let first = try parseHex4()
                var scalarValue = UInt32(first)
                if (0xD800...0xDBFF).contains(first) {
                    // A high surrogate must be followed by an escaped low one.
                    guard end - index >= 6, bytes[index] == UInt8(ascii: "\\"),
                        bytes[index + 1] == UInt8(ascii: "u")
                    else { throw fail(.invalidEscape) }
                    index += 2
                    let second = try parseHex4()
                    guard (0xDC00...0xDFFF).contains(second) else { throw fail(.invalidEscape) }
                    scalarValue = 0x10000 + ((UInt32(first) - 0xD800) << 10) + (UInt32(second) - 0xDC00)
                } else if (0xDC00...0xDFFF).contains(first) {
                    throw fail(.invalidEscape)
                }
                guard let scalar = Unicode.Scalar(scalarValue) else { throw fail(.invalidEscape) }
                UTF8.encode(scalar) { out.append($0) }
            default:
                throw JSONError(offset: index - 1, problem: .invalidEscape)
            }
        }
        throw fail(.unexpectedEnd)
    }

    private mutating func parseHex4() throws(JSONError) -> UInt16 {
        guard end - index >= 4 else { throw JSONError(offset: end, problem: .unexpectedEnd) }
        var value: UInt16 = 0
        for _ in 0..<4 {
            let b = bytes[index]
            let digit: UInt8
            switch b {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = b - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = b - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = b - UInt8(ascii: "A") + 10
            default: throw fail(.invalidEscape)
            }
            value = value << 4 | UInt16(digit)
            index += 1
        }
        return value
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
