/// A label selector as `labels.Parse` in k8s.io/apimachinery reads it:
/// comma-separated requirements `k`, `!k`, `k=v`, `k==v`, `k!=v`,
/// `k in (a,b)`, `k notin (a,b)`. All requirements must hold.
public struct LabelSelector: Sendable, Equatable {
    public enum Operator: Sendable, Equatable {
        case equals, notEquals, `in`, notIn, exists, doesNotExist
    }
    public struct Requirement: Sendable, Equatable {
        public var key: String
        public var op: Operator
        public var values: [String]
    }
    public var requirements: [Requirement]

    public static let everything = LabelSelector(requirements: [])
    public var isEverything: Bool { requirements.isEmpty }

    public init(requirements: [Requirement]) { self.requirements = requirements }

    public func matches(_ labels: [String: String]) -> Bool {
        for r in requirements {
            let value = labels[r.key]
            switch r.op {
            case .equals, .in:
                guard let value, r.values.contains(value) else { return false }
            case .notEquals, .notIn:
                if let value, r.values.contains(value) { return false }
            case .exists:
                if value == nil { return false }
            case .doesNotExist:
                if value != nil { return false }
            }
        }
        return true
    }

    private enum Token: Equatable {
        case identifier(String), notEq, doubleEq, eq, bang, `in`, notIn, open, close, comma, end
        var text: String {
            switch self {
            case .identifier(let s): s
            case .notEq: "!="
            case .doubleEq: "=="
            case .eq: "="
            case .bang: "!"
            case .in: "in"
            case .notIn: "notin"
            case .open: "("
            case .close: ")"
            case .comma: ","
            case .end: "EOS"
            }
        }
    }

    private static func lex(_ s: String) -> [Token] {
        var tokens: [Token] = []
        let chars = Array(s)
        var i = 0
        let special: Set<Character> = ["=", "!", "(", ")", ",", " ", "\t", "\n"]
        while i < chars.count {
            let c = chars[i]
            if c == " " || c == "\t" || c == "\n" { i += 1; continue }
            if c == "(" { tokens.append(.open); i += 1; continue }
            if c == ")" { tokens.append(.close); i += 1; continue }
            if c == "," { tokens.append(.comma); i += 1; continue }
            if c == "!" {
                if i + 1 < chars.count, chars[i + 1] == "=" { tokens.append(.notEq); i += 2 } else { tokens.append(.bang); i += 1 }
                continue
            }
            if c == "=" {
                if i + 1 < chars.count, chars[i + 1] == "=" { tokens.append(.doubleEq); i += 2 } else { tokens.append(.eq); i += 1 }
                continue
            }
            var j = i
            while j < chars.count, !special.contains(chars[j]) { j += 1 }
            let word = String(chars[i..<j])
            switch word {
            case "in": tokens.append(.in)
            case "notin": tokens.append(.notIn)
            default: tokens.append(.identifier(word))
            }
            i = j
        }
        tokens.append(.end)
        return tokens
    }

    /// Parses a selector; the error text is the one kube-apiserver puts in its 400.
    public init(parsing text: String) throws(Status) {
        let tokens = Self.lex(text)
        var i = 0
        var requirements: [Requirement] = []
        func fail(_ message: String) -> Status {
            Status.badRequest("unable to parse requirement: \(message)")
        }
        if tokens == [.end] {
            self.requirements = []
            return
        }
        while true {
            var negate = false
            if tokens[i] == .bang { negate = true; i += 1 }
            guard case .identifier(let key) = tokens[i] else {
                throw fail("found '\(tokens[i].text)', expected: identifier")
            }
            try Self.validateKey(key)
            i += 1
            if negate {
                requirements.append(Requirement(key: key, op: .doesNotExist, values: []))
            } else {
                switch tokens[i] {
                case .comma, .end:
                    requirements.append(Requirement(key: key, op: .exists, values: []))
                case .eq, .doubleEq, .notEq:
                    let op: Operator = tokens[i] == .notEq ? .notEquals : .equals
                    i += 1
                    var value = ""
                    if case .identifier(let v) = tokens[i] { value = v; i += 1 }
                    else if tokens[i] != .comma && tokens[i] != .end {
                        throw fail("found '\(tokens[i].text)', expected: identifier")
                    }
                    try Self.validateValue(value)
                    requirements.append(Requirement(key: key, op: op, values: [value]))
                case .in, .notIn:
                    let op: Operator = tokens[i] == .in ? .in : .notIn
                    i += 1
                    guard tokens[i] == .open else { throw fail("found '\(tokens[i].text)', expected: '('") }
                    i += 1
                    var values: [String] = []
                    while true {
                        if case .identifier(let v) = tokens[i] {
                            try Self.validateValue(v)
                            values.append(v)
                            i += 1
                        } else if tokens[i] == .comma || tokens[i] == .close {
                            values.append("")
                        } else {
                            throw fail("found '\(tokens[i].text)', expected: ',', ')' or identifier")
                        }
                        if tokens[i] == .comma { i += 1; continue }
                        if tokens[i] == .close { i += 1; break }
                        throw fail("found '\(tokens[i].text)', expected: ',' or ')'")
                    }
                    requirements.append(Requirement(key: key, op: op, values: values))
                default:
                    throw fail("found '\(tokens[i].text)', expected: in, notin, =, ==, !=, gt, lt")
                }
            }
            if tokens[i] == .end { break }
            guard tokens[i] == .comma else { throw fail("found '\(tokens[i].text)', expected: ','") }
            i += 1
        }
        self.requirements = requirements
    }

    static func validateKey(_ key: String) throws(Status) {
        // name part: qualified name, optionally prefixed by a DNS subdomain and '/'.
        let parts = key.split(separator: "/", omittingEmptySubsequences: false)
        let name = parts.last.map(String.init) ?? ""
        let ok = parts.count <= 2 && !name.isEmpty && name.count <= 63
            && name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == ".") }
            && (name.first.map { $0.isLetter || $0.isNumber } ?? false)
            && (name.last.map { $0.isLetter || $0.isNumber } ?? false)
        if !ok {
            throw Status.badRequest("unable to parse requirement: invalid label key \"\(key)\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")
        }
    }

    static func validateValue(_ value: String) throws(Status) {
        if value.isEmpty { return }
        let ok = value.count <= 63
            && value.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == ".") }
            && (value.first.map { $0.isLetter || $0.isNumber } ?? false)
            && (value.last.map { $0.isLetter || $0.isNumber } ?? false)
        if !ok {
            throw Status.badRequest("unable to parse requirement: values[0][]: Invalid value: \"\(value)\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")
        }
    }
}

/// A field selector: comma-separated `field=value`, `field==value`, `field!=value`.
/// Which fields a resource supports is the caller's decision.
public struct FieldSelector: Sendable, Equatable {
    public struct Requirement: Sendable, Equatable {
        public var field: String
        public var value: String
        public var negated: Bool
        public init(field: String, value: String, negated: Bool) {
            self.field = field
            self.value = value
            self.negated = negated
        }
    }
    public var requirements: [Requirement]
    public static let everything = FieldSelector(requirements: [])
    public var isEverything: Bool { requirements.isEmpty }

    public init(requirements: [Requirement]) { self.requirements = requirements }

    public init(parsing text: String) throws(Status) {
        var out: [Requirement] = []
        for part in text.split(separator: ",", omittingEmptySubsequences: true) {
            let s = String(part)
            if let r = s.firstRange(of: "!=") {
                out.append(Requirement(field: String(s[..<r.lowerBound]), value: String(s[r.upperBound...]), negated: true))
            } else if let r = s.firstRange(of: "==") {
                out.append(Requirement(field: String(s[..<r.lowerBound]), value: String(s[r.upperBound...]), negated: false))
            } else if let r = s.firstRange(of: "=") {
                out.append(Requirement(field: String(s[..<r.lowerBound]), value: String(s[r.upperBound...]), negated: false))
            } else {
                throw Status.badRequest("invalid selector: '\(text)'; can't understand '\(s)'")
            }
        }
        self.requirements = out
    }

    /// `fields` maps each supported field to its value for one object.
    public func matches(_ fields: [String: String]) -> Bool {
        for r in requirements {
            let value = fields[r.field] ?? ""
            if r.negated ? value == r.value : value != r.value { return false }
        }
        return true
    }

    /// The value a `metadata.name=x` requirement pins, used to narrow watches.
    public func requiredValue(of field: String) -> String? {
        requirements.first { $0.field == field && !$0.negated }?.value
    }
}
