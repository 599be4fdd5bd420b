import IsthmusKubeTypes
import Testing

@Suite("JSON")
struct JSONTests {
    @Test("member order survives a round trip and numbers keep their text")
    func roundTrip() throws {
        let text = #"{"kind":"Service","apiVersion":"v1","n":12345678901234567890,"f":1.5e3,"a":[true,false,null],"s":"x\"y"}"#
        #expect(try JSON(parsing: text).serialized() == text)
    }

    @Test("strings are escaped as Go's encoder escapes them")
    func goEscaping() {
        #expect(JSON.string("<none>&\n\u{1}").serialized() == #""\u003cnone\u003e\u0026\n\u0001""#)
        #expect(JSON.string("a\u{2028}b").serialized() == #""a\u2028b""#)
        #expect(JSON.string("héllo").serialized() == "\"héllo\"")
    }

    @Test("escapes and surrogate pairs decode")
    func decoding() throws {
        #expect(try JSON(parsing: #""\u00e9\ud83d\ude00\/""#) == .string("é😀/"))
    }

    @Test("invalid documents are refused", arguments: ["{", "[1,]", "01", "{\"a\":1}x", "\"\u{1}\"", "tru"])
    func invalid(_ text: String) {
        #expect(throws: JSONParseError.self) { try JSON(parsing: text) }
    }

    @Test("Go-compatible reading: a repeated name keeps the last value at the first position")
    func goDuplicates() throws {
        let value = try JSON(parsing: #"{"a":1,"b":2,"a":3}"#)
        #expect(value.serialized() == #"{"a":3,"b":2}"#)
        // Past the size where the reader indexes names, the rule is the same.
        let many = (0..<40).map { "\"k\($0)\":\($0)" }.joined(separator: ",")
        let big = try JSON(parsing: "{\(many),\"k3\":\"last\",\"k39\":\"end\"}")
        #expect(big.objectValue?.count == 40)
        #expect(big["k3"] == .string("last"))
        #expect(big.objectValue?[39].0 == "k39" && big["k39"] == .string("end"))
    }

    @Test("Go-compatible reading: lone surrogates and invalid UTF-8 become U+FFFD, as encoding/json does")
    func goReplacement() throws {
        #expect(try JSON(parsing: #""\ud800""#) == .string("\u{FFFD}"))
        #expect(try JSON(parsing: #""x\udc00y""#) == .string("x\u{FFFD}y"))
        // Go keeps the escape after a high surrogate that does not pair with it.
        #expect(try JSON(parsing: #""\ud800\u0041""#) == .string("\u{FFFD}A"))
        #expect(try JSON(parsing: #""\ud800\ud83d\ude00""#) == .string("\u{FFFD}😀"))
        #expect(try JSON(parsing: [0x22, 0x61, 0xFF, 0x22]) == .string("a\u{FFFD}"))
    }

    @Test("strict reading refuses what Go-compatible reading repairs")
    func strict() throws {
        #expect(throws: JSONParseError(offset: 8, problem: .duplicateName("a"))) {
            try JSON(parsing: #"{"a":1, "a":2}"#, options: .strict)
        }
        let many = (0..<40).map { "\"k\($0)\":\($0)" }.joined(separator: ",")
        #expect(throws: JSONParseError.self) { try JSON(parsing: "{\(many),\"k3\":0}", options: .strict) }
        #expect(throws: JSONParseError(offset: 7, problem: .invalidEscape)) {
            try JSON(parsing: #""\ud800""#, options: .strict)
        }
        #expect(throws: JSONParseError(offset: 1, problem: .invalidUTF8)) {
            try JSON(parsing: [0x22, 0x61, 0xFF, 0x22], options: .strict)
        }
        let deep = String(repeating: "[", count: 33) + String(repeating: "]", count: 33)
        #expect(throws: JSONParseError(offset: 32, problem: .tooDeep)) { try JSON(parsing: deep, options: .strict) }
        #expect((try? JSON(parsing: deep)) != nil)
        #expect(try JSON(parsing: #"{"a":[1,"\u00e9"]}"#, options: .strict) == JSON(parsing: #"{"a":[1,"é"]}"#))
    }

    @Test("error descriptions give the offset and do not echo long names")
    func errorDescriptions() {
        #expect(JSONParseError(offset: 3, problem: .trailingData).description == "invalid JSON at offset 3: trailing data")
        let long = String(repeating: "s", count: 100)
        #expect(!JSONParseError(offset: 0, problem: .duplicateName(long)).description.contains(long))
    }

    @Test("pretty output matches json.MarshalIndent with two spaces")
    func pretty() throws {
        let value = try JSON(parsing: #"{"a":{"b":[1,2]},"c":{},"d":[]}"#)
        #expect(value.prettySerialized() == "{\n  \"a\": {\n    \"b\": [\n      1,\n      2\n    ]\n  },\n  \"c\": {},\n  \"d\": []\n}")
    }

    @Test("sorted keys apply recursively, as Go writes maps")
    func sorted() throws {
        #expect(try JSON(parsing: #"{"b":{"z":1,"a":2},"a":[{"d":1,"c":2}]}"#).sortedKeys().serialized()
            == #"{"a":[{"c":2,"d":1}],"b":{"a":2,"z":1}}"#)
    }
}

@Suite("Status")
struct StatusTests {
    @Test("NotFound is worded and ordered like fixture 15")
    func notFound() {
        let body = String(decoding: Status.notFound(resource: "services", name: "missing").body, as: UTF8.self)
        #expect(body == #"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"services \"missing\" not found","reason":"NotFound","details":{"name":"missing","kind":"services"},"code":404}"# + "\n")
    }

    @Test("Conflict is worded like fixture 17")
    func conflict() {
        let body = String(decoding: Status.conflict(resource: "services", name: "a").body, as: UTF8.self)
        #expect(body == #"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Operation cannot be fulfilled on services \"a\": the object has been modified; please apply your changes to the latest version and try again","reason":"Conflict","details":{"name":"a","kind":"services"},"code":409}"# + "\n")
    }

    @Test("401 has no details, like fixture 37")
    func unauthorized() {
        #expect(String(decoding: Status.unauthorized.body, as: UTF8.self)
            == #"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}"# + "\n")
    }

    @Test("a too-old watch gets the 410 Expired event of fixture 31")
    func expired() {
        let event = WatchEventEncoding.encode(type: .error, object: Status.tooOldResourceVersion(requested: 1, oldest: 452).json)
        #expect(String(decoding: event, as: UTF8.self)
            == #"{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too old resource version: 1 (452)","reason":"Expired","code":410}}"# + "\n")
    }
}

@Suite("Selectors")
struct SelectorTests {
    struct Row: Sendable, CustomTestStringConvertible {
        var selector: String
        var labels: [String: String]
        var matches: Bool
        var testDescription: String { "\(selector) on \(labels)" }
    }

    static let rows: [Row] = [
        Row(selector: "app=fx", labels: ["app": "fx"], matches: true),
        Row(selector: "app==fx", labels: ["app": "fx"], matches: true),
        Row(selector: "app=fx,tier!=back", labels: ["app": "fx", "tier": "back"], matches: false),
        Row(selector: "app=fx,tier!=back", labels: ["app": "fx"], matches: true),
        Row(selector: "tier in (front, back)", labels: ["tier": "back"], matches: true),
        Row(selector: "tier notin (front,back)", labels: ["tier": "back"], matches: false),
        Row(selector: "tier notin (front,back)", labels: [:], matches: true),
        Row(selector: "tier", labels: ["tier": ""], matches: true),
        Row(selector: "!tier", labels: ["tier": "x"], matches: false),
        Row(selector: "!tier", labels: [:], matches: true),
        Row(selector: "", labels: ["x": "y"], matches: true),
        Row(selector: "example.com/app=x", labels: ["example.com/app": "x"], matches: true),
    ]

    @Test("label selectors match like labels.Parse", arguments: rows)
    func labels(_ row: Row) throws {
        #expect(try LabelSelector(parsing: row.selector).matches(row.labels) == row.matches)
    }

    @Test("an unparsable label selector gets the message of fixture 27d")
    func invalidLabel() {
        #expect(throws: Status.badRequest("unable to parse requirement: found '(', expected: identifier")) {
            try LabelSelector(parsing: "app=(")
        }
    }

    @Test("field selectors support =, == and !=")
    func fields() throws {
        let s = try FieldSelector(parsing: "metadata.name=a,type!=Opaque")
        #expect(s.matches(["metadata.name": "a", "type": "kubernetes.io/tls"]))
        #expect(!s.matches(["metadata.name": "a", "type": "Opaque"]))
        #expect(try FieldSelector(parsing: "metadata.namespace==fx").matches(["metadata.namespace": "fx"]))
    }
}
