import Testing
@testable import IsthmusTrust

@Suite("Strict JSON reader")
struct JSONTests {
    func parse(_ text: String) throws(JSONError) -> JSONValue {
        try JSONReader.parse(Array(text.utf8))
    }

    @Test("objects, arrays, strings, numbers, literals")
    func basics() throws {
        let value = try parse(#" {"a": [1, -2, 3.5, 1e3, true, false, null], "b": {"c": "d"}} "#)
        guard case .object(let object) = value else { Issue.record("not an object"); return }
        #expect(object["a"] == .array([.integer(1), .integer(-2), .nonInteger, .nonInteger, .bool(true), .bool(false), .null]))
        #expect(object["b"] == .object(JSONObject(members: [.init(name: "c", value: .string("d"))])))
        #expect(object.members.map(\.name) == ["a", "b"])
    }

    @Test("a repeated member name is refused, at any depth")
    func duplicates() {
        #expect(throws: JSONError(offset: 8, problem: .duplicateName("a"))) { try parse(#"{"a":1, "a":2}"#) }
        #expect(throws: JSONError.self) { try parse(#"{"x":{"aud":"us","aud":"them"}}"#) }
        // The set-based check for large objects catches it too.
        let many = (0..<40).map { "\"k\($0)\":\($0)" }.joined(separator: ",")
        #expect(throws: JSONError.self) { try parse("{\(many),\"k3\":0}") }
        #expect(throws: JSONError.self) { try parse("{\(many),\"k39\":0}") }
        #expect((try? parse("{\(many)}")) != nil)
    }

    @Test("escaped spellings of one name count as duplicates")
    func escapedDuplicates() {
        #expect(throws: JSONError.self) { try parse(#"{"alg":1,"\u0061lg":2}"#) }
    }

    @Test("integers are kept exactly; fractions, exponents and out-of-range values are not integers")
    func numbers() throws {
        #expect(try parse("9223372036854775807") == .integer(Int64.max))
        #expect(try parse("-9223372036854775808") == .integer(Int64.min))
        #expect(try parse("9223372036854775808") == .nonInteger)
        #expect(try parse("1700000000.0") == .nonInteger)
        #expect(try parse("17e8") == .nonInteger)
        #expect(try parse("-0") == .integer(0))
        for bad in ["01", "+1", "1.", ".5", "1e", "-", "0x10", "1.5e+"] {
            #expect(throws: JSONError.self, "\(bad)") { try parse(bad) }
        }
    }

    @Test("string escapes, including surrogate pairs")
    func strings() throws {
        #expect(try parse(#""a\"b\\c\/d\b\f\n\r\t""#) == .string("a\"b\\c/d\u{8}\u{c}\n\r\t"))
        #expect(try parse(#""\u00e9\ud83d\ude00""#) == .string("é😀"))
        #expect(try parse("\"é\"") == .string("é"))
    }

    @Test("invalid strings are refused")
    func badStrings() {
        for bad in [#""\ud83d""#, #""\ude00""#, #""\x""#, #""\u12""#, "\"a\nb\"", "\"abc"] {
            #expect(throws: JSONError.self, "\(bad)") { try parse(bad) }
        }
        // Invalid UTF-8 (a lone continuation byte) inside a string.
        #expect(throws: JSONError.self) { try JSONReader.parse([0x22, 0x80, 0x22]) }
        #expect(throws: JSONError.self) { try JSONReader.parse([0x22, 0x5C, 0x6E, 0xFF, 0x22]) }
    }

    @Test("structure errors: trailing data, trailing commas, BOM, bad literals, depth")
    func structure() {
        for bad in ["", " ", "{}x", "{} {}", "[1,]", #"{"a":1,}"#, "{'a':1}", "tru", "nul", "[", #"{"a"}"#, #"{"a":}"#] {
            #expect(throws: JSONError.self, "\(bad)") { try parse(bad) }
        }
        #expect(throws: JSONError.self) { try JSONReader.parse([0xEF, 0xBB, 0xBF] + Array("{}".utf8)) }
        let deep = String(repeating: "[", count: 40) + String(repeating: "]", count: 40)
        #expect(throws: JSONError(offset: 32, problem: .tooDeep)) { try parse(deep) }
        let fine = String(repeating: "[", count: 32) + String(repeating: "]", count: 32)
        #expect((try? parse(fine)) != nil)
    }

    @Test("error descriptions give the byte offset and never echo long or unprintable input")
    func errorDescriptions() {
        #expect(JSONError(offset: 7, problem: .trailingData).description == "data after the JSON value at byte 7")
        let secret = String(repeating: "s", count: 100)
        #expect(!JSONError(offset: 0, problem: .duplicateName(secret)).description.contains(secret))
        #expect(JSONText.quotedForMessage("api") == "\"api\"")
        #expect(JSONText.quotedForMessage("a\nb") == "(3 bytes, not shown)")
    }

    @Test("the writer escapes what JSON requires and the reader reads it back")
    func writer() throws {
        let text = "line1\nline2\t\"quoted\" back\\slash \u{1} é"
        var out: [UInt8] = []
        JSONText.appendQuoted(text, to: &out)
        #expect(String(decoding: out, as: UTF8.self) == #""line1\nline2\t\"quoted\" back\\slash \u0001 é""#)
        #expect(try JSONReader.parse(out) == .string(text))
    }
}
