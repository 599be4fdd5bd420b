/// A JSON value that keeps object members in document order.
///
/// Why not `JSONSerialization`: kube-apiserver writes typed objects in a fixed
/// key order (`kind, apiVersion, metadata, spec, status`) and custom resources
/// with sorted keys; clients diff and humans read these bodies, so the fake
/// server must control the order. Numbers keep their source text, so an
/// integer above 2^53 survives a round trip, and the writer escapes `<`, `>`
/// and `&` as Go's `encoding/json` does.
public enum JSON: Sendable, Hashable {
    case object([(String, JSON)])
    case array([JSON])
    case string(String)
    /// The number exactly as written (already validated).
    case number(String)
    case bool(Bool)
    case null

    public static func == (lhs: JSON, rhs: JSON) -> Bool {
        switch (lhs, rhs) {
        case (.object(let a), .object(let b)):
            guard a.count == b.count else { return false }
            // Member order does not change meaning.
            for (k, v) in a {
                guard let other = b.first(where: { $0.0 == k }), other.1 == v else { return false }
            }
            return true
        case (.array(let a), .array(let b)): return a == b
        case (.string(let a), .string(let b)): return a == b
        case (.number(let a), .number(let b)): return a == b || Double(a) == Double(b)
        case (.bool(let a), .bool(let b)): return a == b
        case (.null, .null): return true
        default: return false
        }
    }

    public func hash(into hasher: inout Hasher) {
        switch self {
        case .object(let m): hasher.combine(0); hasher.combine(m.count)
        case .array(let a): hasher.combine(1); hasher.combine(a)
        case .string(let s): hasher.combine(2); hasher.combine(s)
        case .number(let n): hasher.combine(3); hasher.combine(Double(n) ?? 0)
        case .bool(let b): hasher.combine(4); hasher.combine(b)
        case .null: hasher.combine(5)
        }
    }

    public static func int(_ value: Int) -> JSON { .number(String(value)) }

    // MARK: Access

    public subscript(key: String) -> JSON? {
        get {
            guard case .object(let members) = self else { return nil }
            for (k, v) in members where k == key { return v }
            return nil
        }
        set {
            guard case .object(var members) = self else { return }
            if let index = members.firstIndex(where: { $0.0 == key }) {
                if let newValue { members[index].1 = newValue } else { members.remove(at: index) }
            } else if let newValue {
                members.append((key, newValue))
            }
            self = .object(members)
        }
    }

    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }
    public var intValue: Int? {
        if case .number(let n) = self { return Int(n) ?? Double(n).flatMap { Int(exactly: $0) } }
        return nil
    }
    public var boolValue: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }
    public var arrayValue: [JSON]? {
        if case .array(let a) = self { return a }
        return nil
    }
    public var objectValue: [(String, JSON)]? {
        if case .object(let m) = self { return m }
        return nil
    }
    public var isObject: Bool {
        if case .object = self { return true }
        return false
    }

    /// A string-to-string map such as `metadata.labels`; non-string values are skipped.
    public var stringMap: [String: String] {
        guard case .object(let members) = self else { return [:] }
        var out: [String: String] = [:]
        for (k, v) in members { if case .string(let s) = v { out[k] = s } }
        return out
    }

    /// Follows a path of object keys.
    public func value(at path: [String]) -> JSON? {
        var current = self
        for key in path {
            guard let next = current[key] else { return nil }
            current = next
        }
        return current
    }

    /// Sets a value at a path of object keys, creating objects on the way.
    public mutating func setValue(_ value: JSON?, at path: [String]) {
        guard let first = path.first else {
            if let value { self = value }
            return
        }
        if path.count == 1 {
            self[first] = value
            return
        }
        var child = self[first] ?? .object([])
        if !child.isObject { child = .object([]) }
        child.setValue(value, at: Array(path.dropFirst()))
        self[first] = child
    }

    /// Objects with members sorted by key, recursively: how Go writes a map,
    /// and so how kube-apiserver writes custom resources.
    public func sortedKeys() -> JSON {
        switch self {
        case .object(let members):
            return .object(members.map { ($0.0, $0.1.sortedKeys()) }.sorted { $0.0 < $1.0 })
        case .array(let items):
            return .array(items.map { $0.sortedKeys() })
        default:
            return self
        }
    }

    /// Moves the named keys to the front, in the given order; the rest keep their order.
    public func ordered(first keys: [String]) -> JSON {
        guard case .object(let members) = self else { return self }
        var front: [(String, JSON)] = []
        for key in keys {
            if let member = members.first(where: { $0.0 == key }) { front.append(member) }
        }
        let rest = members.filter { member in !keys.contains(member.0) }
        return .object(front + rest)
    }
}

// MARK: - Parsing

/// How strictly `JSON(parsing:options:)` reads a document.
///
/// Two presets, on purpose different:
/// - ``goCompatible`` reads as Go's `encoding/json` does, because the API
///   server emulation must accept what kube-apiserver accepts: a repeated
///   member name keeps the last value, a lone surrogate escape or invalid
///   UTF-8 in a string becomes U+FFFD.
/// - ``strict`` refuses whatever two readers could read differently
///   (RFC 8259 §4 leaves repeated names to the implementation; Go keeps the
///   last, others the first), because a token carrying
///   `{"aud":"us","aud":"them"}` would mean one thing to us and another to
///   whatever logged or forwarded it. The token verifier and the peers file use it.
///
/// Both refuse control characters in strings, leading zeros, a byte order
/// mark and trailing data, and cap nesting so hostile input cannot exhaust
/// the stack.
public struct JSONParseOptions: Sendable, Hashable {
    /// Refuse a repeated member name in any object; otherwise the last value wins
    /// (at the first occurrence's position), as in Go.
    public var refusesDuplicateNames: Bool
    /// Refuse lone surrogates in `\u` escapes and invalid UTF-8 in strings;
    /// otherwise each becomes U+FFFD, as in Go.
    public var refusesInvalidUnicode: Bool
    /// Objects and arrays nested deeper than this are refused.
    public var maximumDepth: Int

    public init(refusesDuplicateNames: Bool, refusesInvalidUnicode: Bool, maximumDepth: Int) {
        self.refusesDuplicateNames = refusesDuplicateNames
        self.refusesInvalidUnicode = refusesInvalidUnicode
        self.maximumDepth = maximumDepth
    }

    /// As Go's `encoding/json` reads request bodies; the default.
    public static let goCompatible = JSONParseOptions(
        refusesDuplicateNames: false, refusesInvalidUnicode: false, maximumDepth: 512)
    /// For tokens and the peers file: three levels deep at most, so 32 is ample.
    public static let strict = JSONParseOptions(
        refusesDuplicateNames: true, refusesInvalidUnicode: true, maximumDepth: 32)
}

/// Why a document was refused, and the byte offset where that was found.
public struct JSONParseError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Problem: Sendable, Hashable {
        case unexpectedEnd
        case unexpectedByte
        case invalidNumber
        case invalidEscape
        /// Only under `refusesInvalidUnicode`.
        case invalidUTF8
        case controlCharacterInString
        /// Only under `refusesDuplicateNames`; the offset is the repeated name's.
        case duplicateName(String)
        case tooDeep
        case trailingData
    }

    public var offset: Int
    public var problem: Problem

    public init(offset: Int, problem: Problem) {
        self.offset = offset
        self.problem = problem
    }

    /// What is wrong, without the offset. Never echoes a long or unprintable name.
    public var reason: String {
        switch problem {
        case .unexpectedEnd: "unexpected end of input"
        case .unexpectedByte: "unexpected character"
        case .invalidNumber: "invalid number"
        case .invalidEscape: "invalid escape sequence"
        case .invalidUTF8: "invalid UTF-8"
        case .controlCharacterInString: "unescaped control character in a string"
        case .duplicateName(let name):
            name.utf8.count <= 64 && name.utf8.allSatisfy { $0 >= 0x20 && $0 < 0x7F && $0 != 0x22 && $0 != 0x5C }
                ? "duplicate member name \"\(name)\"" : "duplicate member name"
        case .tooDeep: "nesting too deep"
        case .trailingData: "trailing data"
        }
    }

    public var description: String { "invalid JSON at offset \(offset): \(reason)" }
}

extension JSON {
    /// Parses one complete document; Go-compatible unless `options` says otherwise.
    public init(parsing text: String, options: JSONParseOptions = .goCompatible) throws(JSONParseError) {
        try self.init(parsing: Array(text.utf8), options: options)
    }

    /// Parses one complete document from bytes (`[UInt8]`, `Data`, a `ByteBuffer` view, ...).
    public init<Bytes: Collection>(
        parsing bytes: Bytes, options: JSONParseOptions = .goCompatible
    ) throws(JSONParseError) where Bytes.Element == UInt8 {
        var reader = JSONReader(bytes: Array(bytes), options: options)
        reader.skipWhitespace()
        let value = try reader.parseValue(depth: 0)
        reader.skipWhitespace()
        guard reader.index == reader.end else {
            throw JSONParseError(offset: reader.index, problem: .trailingData)
        }
        self = value
    }
}

/// One reader for both presets; `options` decides only duplicate names,
/// invalid Unicode and the depth cap.
private struct JSONReader {
    let bytes: [UInt8]
    let end: Int
    let options: JSONParseOptions
    var index = 0

    init(bytes: [UInt8], options: JSONParseOptions) {
        self.bytes = bytes
        self.end = bytes.count
        self.options = options
    }

    func fail(_ problem: JSONParseError.Problem) -> JSONParseError {
        JSONParseError(offset: index, problem: problem)
    }

    mutating func skipWhitespace() {
        while index < end {
            switch bytes[index] {
            case 0x20, 0x09, 0x0A, 0x0D: index += 1
            default: return
            }
        }
    }

    /// `depth` counts the objects and arrays around the value.
    mutating func parseValue(depth: Int) throws(JSONParseError) -> JSON {
        guard index < end else { throw fail(.unexpectedEnd) }
        switch bytes[index] {
        case UInt8(ascii: "{"):
            return try parseObject(depth: depth + 1)
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
            return .number(try parseNumber())
        default:
            throw fail(.unexpectedByte)
        }
    }

    mutating func expectLiteral(_ literal: StaticString) throws(JSONParseError) {
        let count = literal.utf8CodeUnitCount
        guard end - index >= count else { throw JSONParseError(offset: end, problem: .unexpectedEnd) }
        let pointer = literal.utf8Start
        for i in 0..<count where bytes[index + i] != pointer[i] {
            throw JSONParseError(offset: index + i, problem: .unexpectedByte)
        }
        index += count
    }

    mutating func parseObject(depth: Int) throws(JSONParseError) -> JSON {
        guard depth <= options.maximumDepth else { throw fail(.tooDeep) }
        index += 1  // {
        var members: [(String, JSON)] = []
        // Linear scans are cheapest for the handful of members a token has; an
        // index takes over for big objects, so a hostile body stays linear.
        var positions: [String: Int]? = nil
        skipWhitespace()
        if index < end, bytes[index] == UInt8(ascii: "}") {
            index += 1
            return .object(members)
        }
        while true {
            skipWhitespace()
            guard index < end else { throw fail(.unexpectedEnd) }
            guard bytes[index] == UInt8(ascii: "\"") else { throw fail(.unexpectedByte) }
            let nameOffset = index
            let name = try parseString()
            let existing = positions.map { $0[name] } ?? members.firstIndex { $0.0 == name }
            if existing != nil, options.refusesDuplicateNames {
                throw JSONParseError(offset: nameOffset, problem: .duplicateName(name))
            }
            skipWhitespace()
            guard index < end else { throw fail(.unexpectedEnd) }
            guard bytes[index] == UInt8(ascii: ":") else { throw fail(.unexpectedByte) }
            index += 1
            skipWhitespace()
            let value = try parseValue(depth: depth)
            if let existing {
                members[existing].1 = value  // the last one wins, as in Go's encoding/json
            } else {
                members.append((name, value))
                if positions != nil {
                    positions![name] = members.count - 1
                } else if members.count > 16 {
                    positions = Dictionary(uniqueKeysWithValues: members.enumerated().map { ($0.element.0, $0.offset) })
                }
            }
            if try closes(UInt8(ascii: "}")) { return .object(members) }
        }
    }

    mutating func parseArray(depth: Int) throws(JSONParseError) -> JSON {
        guard depth <= options.maximumDepth else { throw fail(.tooDeep) }
        index += 1  // [
        var elements: [JSON] = []
        skipWhitespace()
        if index < end, bytes[index] == UInt8(ascii: "]") {
            index += 1
            return .array(elements)
        }
        while true {
            skipWhitespace()
            elements.append(try parseValue(depth: depth))
            if try closes(UInt8(ascii: "]")) { return .array(elements) }
        }
    }

    /// After a member or an element: consumes a comma (false) or the closing bracket (true).
    mutating func closes(_ closing: UInt8) throws(JSONParseError) -> Bool {
        skipWhitespace()
        guard index < end else { throw fail(.unexpectedEnd) }
        switch bytes[index] {
        case UInt8(ascii: ","):
            index += 1
            return false
        case closing:
            index += 1
            return true
        default:
            throw fail(.unexpectedByte)
        }
    }

    /// RFC 8259 §6: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`; returns the text.
    mutating func parseNumber() throws(JSONParseError) -> String {
        let start = index
        if bytes[index] == UInt8(ascii: "-") { index += 1 }
        guard index < end, isDigit(bytes[index]) else {
            throw index < end ? fail(.invalidNumber) : fail(.unexpectedEnd)
        }
        if bytes[index] == UInt8(ascii: "0") {
            index += 1
            if index < end, isDigit(bytes[index]) {
                throw JSONParseError(offset: start, problem: .invalidNumber)  // leading zero
            }
        } else {
            while index < end, isDigit(bytes[index]) { index += 1 }
        }
        if index < end, bytes[index] == UInt8(ascii: ".") {
            index += 1
            guard index < end, isDigit(bytes[index]) else { throw fail(.invalidNumber) }
            while index < end, isDigit(bytes[index]) { index += 1 }
        }
        if index < end, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
            index += 1
            if index < end, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") {
                index += 1
            }
            guard index < end, isDigit(bytes[index]) else { throw fail(.invalidNumber) }
            while index < end, isDigit(bytes[index]) { index += 1 }
        }
        return String(decoding: bytes[start..<index], as: UTF8.self)
    }

    func isDigit(_ b: UInt8) -> Bool {
        b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9")
    }

    /// The string's UTF-8 bytes as a String: validated, or repaired with U+FFFD as Go does.
    func makeString(_ utf8: some Collection<UInt8>, offset: Int) throws(JSONParseError) -> String {
        guard options.refusesInvalidUnicode else { return String(decoding: utf8, as: UTF8.self) }
        guard let string = String(validating: utf8, as: UTF8.self) else {
            throw JSONParseError(offset: offset, problem: .invalidUTF8)
        }
        return string
    }

    mutating func parseString() throws(JSONParseError) -> String {
        index += 1  // opening quote
        let start = index
        // Fast path: no escapes, so the content is one slice of the input.
        while index < end {
            let b = bytes[index]
            if b == UInt8(ascii: "\"") {
                let string = try makeString(bytes[start..<index], offset: start)
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
                let string = try makeString(out, offset: start)
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
                if (0xD800...0xDFFF).contains(first) {
                    scalarValue = options.refusesInvalidUnicode ? try strictSurrogatePair(first) : goSurrogatePair(first)
                }
                guard let scalar = Unicode.Scalar(scalarValue) else { throw fail(.invalidEscape) }
                UTF8.encode(scalar) { out.append($0) }
            default:
                throw JSONParseError(offset: index - 1, problem: .invalidEscape)
            }
        }
        throw fail(.unexpectedEnd)
    }

    /// A high surrogate must be followed by an escaped low one; anything else is refused.
    mutating func strictSurrogatePair(_ first: UInt16) throws(JSONParseError) -> UInt32 {
        guard first <= 0xDBFF, end - index >= 6, bytes[index] == UInt8(ascii: "\\"),
            bytes[index + 1] == UInt8(ascii: "u")
        else { throw fail(.invalidEscape) }
        index += 2
        let second = try parseHex4()
        guard (0xDC00...0xDFFF).contains(second) else { throw fail(.invalidEscape) }
        return Self.combine(first, second)
    }

    /// Go's rule: a valid pair is consumed whole; otherwise the surrogate becomes
    /// U+FFFD and whatever follows is read on its own.
    mutating func goSurrogatePair(_ first: UInt16) -> UInt32 {
        guard first <= 0xDBFF, end - index >= 6, bytes[index] == UInt8(ascii: "\\"),
            bytes[index + 1] == UInt8(ascii: "u"), let second = hex4(at: index + 2),
            (0xDC00...0xDFFF).contains(second)
        else { return 0xFFFD }
        index += 6
        return Self.combine(first, second)
    }

    static func combine(_ high: UInt16, _ low: UInt16) -> UInt32 {
        0x10000 + ((UInt32(high) - 0xD800) << 10) + (UInt32(low) - 0xDC00)
    }

    /// Four hex digits at `position`, or nil.
    func hex4(at position: Int) -> UInt16? {
        guard end - position >= 4 else { return nil }
        var value: UInt16 = 0
        for b in bytes[position..<position + 4] {
            let digit: UInt8
            switch b {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = b - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = b - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = b - UInt8(ascii: "A") + 10
            default: return nil
            }
            value = value << 4 | UInt16(digit)
        }
        return value
    }

    /// Reads four hex digits; the error points at the first bad one.
    mutating func parseHex4() throws(JSONParseError) -> UInt16 {
        guard end - index >= 4 else { throw JSONParseError(offset: end, problem: .unexpectedEnd) }
        guard let value = hex4(at: index) else {
            var bad = index
            while bad < index + 4, hex4Digit(bytes[bad]) { bad += 1 }
            throw JSONParseError(offset: bad, problem: .invalidEscape)
        }
        index += 4
        return value
    }

    func hex4Digit(_ b: UInt8) -> Bool {
        isDigit(b) || (b | 0x20 >= UInt8(ascii: "a") && b | 0x20 <= UInt8(ascii: "f"))
    }
}

// MARK: - Writing

extension JSON {
    /// Compact JSON as Go's `encoding/json` writes it (no trailing newline).
    public func serialized() -> String {
        var out: [UInt8] = []
        out.reserveCapacity(256)
        write(into: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Compact JSON bytes.
    public func bytes() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256)
        write(into: &out)
        return out
    }

    public func write(into out: inout [UInt8]) {
        switch self {
        case .object(let members):
            out.append(UInt8(ascii: "{"))
            var first = true
            for (k, v) in members {
                if !first { out.append(UInt8(ascii: ",")) }
                first = false
                JSON.writeString(k, into: &out)
                out.append(UInt8(ascii: ":"))
                v.write(into: &out)
            }
            out.append(UInt8(ascii: "}"))
        case .array(let items):
            out.append(UInt8(ascii: "["))
            var first = true
            for v in items {
                if !first { out.append(UInt8(ascii: ",")) }
                first = false
                v.write(into: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .string(let s): JSON.writeString(s, into: &out)
        case .number(let n): out.append(contentsOf: n.utf8)
        case .bool(let b): out.append(contentsOf: (b ? "true" : "false").utf8)
        case .null: out.append(contentsOf: "null".utf8)
        }
    }

    /// Indented with two spaces, as Go's `json.MarshalIndent(v, "", "  ")`:
    /// what kube-apiserver sends for `/version`, `?pretty=true` and curl.
    public func prettySerialized() -> String {
        var out: [UInt8] = []
        writePretty(into: &out, indent: 0)
        return String(decoding: out, as: UTF8.self)
    }

    private func writePretty(into out: inout [UInt8], indent: Int) {
        func newline(_ level: Int) {
            out.append(0x0A)
            out.append(contentsOf: repeatElement(UInt8(ascii: " "), count: level * 2))
        }
        switch self {
        case .object(let members) where !members.isEmpty:
            out.append(UInt8(ascii: "{"))
            for (i, (k, v)) in members.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                newline(indent + 1)
                JSON.writeString(k, into: &out)
                out.append(contentsOf: ": ".utf8)
                v.writePretty(into: &out, indent: indent + 1)
            }
            newline(indent)
            out.append(UInt8(ascii: "}"))
        case .array(let items) where !items.isEmpty:
            out.append(UInt8(ascii: "["))
            for (i, v) in items.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                newline(indent + 1)
                v.writePretty(into: &out, indent: indent + 1)
            }
            newline(indent)
            out.append(UInt8(ascii: "]"))
        default:
            write(into: &out)
        }
    }

    static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    /// Appends `s` as a JSON string literal, escaped as Go's `encoding/json` does.
    public static func writeString(_ s: String, into out: inout [UInt8]) {
        // Most strings need no escape: one scan and one bulk copy.
        if !s.utf8.contains(where: { $0 < 0x20 || $0 == 0x22 || $0 == 0x5C || $0 == 0x3C || $0 == 0x3E || $0 == 0x26 || $0 == 0xE2 }) {
            out.append(0x22)
            out.append(contentsOf: s.utf8)
            out.append(0x22)
            return
        }
        out.append(0x22)
        var utf8 = s.utf8.makeIterator()
        var pending: [UInt8] = []
        while true {
            let next: UInt8
            if !pending.isEmpty { next = pending.removeFirst() } else if let b = utf8.next() { next = b } else { break }
            switch next {
            case 0x22: out.append(0x5C); out.append(0x22)
            case 0x5C: out.append(0x5C); out.append(0x5C)
            case 0x0A: out.append(0x5C); out.append(UInt8(ascii: "n"))
            case 0x0D: out.append(0x5C); out.append(UInt8(ascii: "r"))
            case 0x09: out.append(0x5C); out.append(UInt8(ascii: "t"))
            case 0x3C, 0x3E, 0x26, 0x00..<0x20:
                // Go escapes <, > and & for HTML safety, and other controls as \u00XX.
                out.append(contentsOf: [0x5C, UInt8(ascii: "u"), 0x30, 0x30, hexDigits[Int(next >> 4)], hexDigits[Int(next & 0xF)]])
            case 0xE2:
                // U+2028 and U+2029 (E2 80 A8/A9) are escaped by Go too.
                let b1 = utf8.next(), b2 = b1 == 0x80 ? utf8.next() : nil
                if b1 == 0x80, let b2, b2 == 0xA8 || b2 == 0xA9 {
                    out.append(contentsOf: (b2 == 0xA8 ? "\\u2028" : "\\u2029").utf8)
                } else {
                    out.append(next)
                    if let b1 { pending.append(b1) }
                    if let b2 { pending.append(b2) }
                }
            default: out.append(next)
            }
        }
        out.append(0x22)
    }
}
