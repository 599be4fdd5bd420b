import Foundation
import Yams

/// One policy file's name and text. Loading is pure over these, so tests need no disk.
public struct PolicySource: Sendable, Hashable {
    public var name: String
    public var contents: String
    public init(name: String, contents: String) {
        self.name = name
        self.contents = contents
    }
}

/// One thing wrong with a policy file, located precisely enough to fix it.
public struct PolicyProblem: Sendable, Hashable, CustomStringConvertible {
    public var file: String
    /// One-based; 0 when the problem concerns the file as a whole.
    public var line: Int
    public var column: Int
    /// The field's path, e.g. `rules[2].verbs[0]`; empty for the file as a whole.
    public var field: String
    public var message: String

    public var description: String {
        let location = line > 0 ? "\(file):\(line):\(column)" : file
        return field.isEmpty ? "\(location): \(message)" : "\(location): \(field): \(message)"
    }
}

/// Why a policy directory was refused. Loading is all or nothing: one bad rule
/// refuses every file, so a typo can never silently narrow or widen access.
public struct PolicyLoadError: Error, Sendable, Hashable, CustomStringConvertible {
    public var problems: [PolicyProblem]
    public var description: String { problems.map(\.description).joined(separator: "\n") }
}

extension PolicySet {
    /// Compiles policy files, in the order given (directory loading sorts by name).
    public init(sources: [PolicySource]) throws(PolicyLoadError) {
        var problems: [PolicyProblem] = []
        var rules: [PolicyRule] = []
        for source in sources {
            var compiler = PolicyFileCompiler(file: source.name)
            compiler.compile(source.contents)
            problems += compiler.problems
            rules += compiler.rules
        }
        if sources.isEmpty {
            problems.append(PolicyProblem(file: "(policies)", line: 0, column: 0, field: "",
                                          message: "no policy files were given"))
        }
        guard problems.isEmpty else { throw PolicyLoadError(problems: problems) }
        self.init(rules: rules, files: sources.map(\.name))
    }

    /// The policy files of a directory: `*.yaml` and `*.yml`, sorted by name, not
    /// recursive. Names starting with `.` are skipped: a mounted ConfigMap keeps
    /// its real files behind `..data` links that must not load twice.
    public static func sources(inDirectory directory: String) throws(PolicyLoadError) -> [PolicySource] {
        func failure(_ message: String) -> PolicyLoadError {
            PolicyLoadError(problems: [PolicyProblem(file: directory, line: 0, column: 0, field: "", message: message)])
        }
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory)
        } catch {
            throw failure("cannot read the policy directory: \((error as NSError).localizedDescription)")
        }
        let policyNames = names
            .filter { !$0.hasPrefix(".") && ($0.hasSuffix(".yaml") || $0.hasSuffix(".yml")) }
            .sorted()
        guard !policyNames.isEmpty else { throw failure("no policy files (*.yaml, *.yml) in the directory") }
        var sources: [PolicySource] = []
        for name in policyNames {
            let path = (directory as NSString).appendingPathComponent(name)
            guard let data = FileManager.default.contents(atPath: path) else {
                throw failure("cannot read \(name)")
            }
            guard let text = String(data: data, encoding: .utf8) else {
                throw PolicyLoadError(problems: [PolicyProblem(
                    file: name, line: 0, column: 0, field: "", message: "the file is not UTF-8 text")])
            }
            sources.append(PolicySource(name: name, contents: text))
        }
        return sources
    }

    /// Loads and compiles every policy file in `directory`.
    public static func load(directory: String) throws(PolicyLoadError) -> PolicySet {
        try PolicySet(sources: sources(inDirectory: directory))
    }
}

/// Turns one file's YAML node tree into rules, collecting every problem with its
/// line, column and field path. Works on Yams' node tree rather than Codable so
/// that each error can point at the exact place.
struct PolicyFileCompiler {
    let file: String
    private(set) var problems: [PolicyProblem] = []
    private(set) var rules: [PolicyRule] = []

    init(file: String) { self.file = file }

    private static let ruleFields: Set<String> = [
        "apiGroups", "resources", "resourceNames", "verbs", "nonResourceURLs", "namespaces", "peers",
    ]

    mutating func compile(_ text: String) {
        var documents: [Node] = []
        do {
            // Parser.nextRoot throws; compose_all's sequence would end quietly on an error.
            let parser = try Parser(yaml: text)
            while let document = try parser.nextRoot() { documents.append(document) }
        } catch {
            report(yamlError: error)
            return
        }
        if documents.isEmpty {
            problem(nil, "", "the file holds no YAML document; expected a mapping with `rules:`")
        }
        for document in documents {
            compileDocument(document)
        }
    }

    private mutating func compileDocument(_ node: Node) {
        guard let mapping = node.mapping else {
            problem(node, "", "expected a mapping with `rules:` (or a ClusterRole manifest)")
            return
        }
        var rulesNode: Node?
        var kindNode: Node?
        var apiVersionNode: Node?
        for (key, value) in mapping {
            switch key.string {
            case "rules": rulesNode = value
            case "kind": kindNode = value
            case "apiVersion": apiVersionNode = value
            case "metadata":
                if value.mapping == nil { problem(value, "metadata", "expected a mapping") }
            case "aggregationRule":
                problem(key, "aggregationRule", "aggregated ClusterRoles are not supported; list the rules themselves")
            default:
                problem(key, key.string ?? "?", "unknown field; a policy holds `rules:` (or is a ClusterRole manifest)")
            }
        }
        // A ClusterRole manifest is accepted as is; anything else that claims a kind is not.
        if kindNode != nil || apiVersionNode != nil {
            if let kindNode, kindNode.string != "ClusterRole" {
                problem(kindNode, "kind", "must be ClusterRole when present, not \"\(kindNode.string ?? "")\"")
            }
            if let apiVersionNode, apiVersionNode.string != "rbac.authorization.k8s.io/v1" {
                problem(apiVersionNode, "apiVersion",
                        "must be rbac.authorization.k8s.io/v1 when present, not \"\(apiVersionNode.string ?? "")\"")
            }
        }
        guard let rulesNode else {
            problem(node, "rules", "missing; a policy file must list its rules")
            return
        }
        guard let sequence = rulesNode.sequence else {
            problem(rulesNode, "rules", "expected a list of rules")
            return
        }
        for ruleNode in sequence {
            compileRule(ruleNode, index: rules.count + problemRuleOffset)
        }
    }

    /// Rules that failed still take an index, so reported indices match the file.
    private var problemRuleOffset = 0

    private mutating func compileRule(_ node: Node, index: Int) {
        let path = "rules[\(index)]"
        let problemsBefore = problems.count
        defer { if problems.count > problemsBefore { problemRuleOffset += 1 } }

        guard let mapping = node.mapping else {
            problem(node, path, "expected a mapping with verbs and resources or nonResourceURLs")
            return
        }
        var fields: [String: Node] = [:]
        for (key, value) in mapping {
            guard let name = key.string, Self.ruleFields.contains(name) else {
                problem(key, "\(path).\(key.string ?? "?")",
                        "unknown field; a rule has apiGroups, resources, resourceNames, verbs, nonResourceURLs, namespaces and peers")
                continue
            }
            fields[name] = value
        }

        let verbs = stringList(fields["verbs"], "\(path).verbs", required: true, owner: node) { verb in
            ReadVerbs(policyVerb: verb) == nil
                ? "verb \"\(verb)\" is not allowed: Isthmus is read-only, verbs are get, list, watch or *"
                : nil
        }
        let peers = stringList(fields["peers"], "\(path).peers", required: false, owner: node) { peer in
            Self.isClusterID(peer) ? nil : "\"\(peer)\" is not a cluster UUID (letters, digits and '-')"
        }
        var grantedVerbs: ReadVerbs = []
        for verb in verbs ?? [] { grantedVerbs.formUnion(ReadVerbs(policyVerb: verb) ?? []) }

        let target: PolicyRule.Target?
        if let urlsNode = fields["nonResourceURLs"] {
            for name in ["apiGroups", "resources", "resourceNames", "namespaces"] {
                if let other = fields[name] {
                    problem(other, "\(path).\(name)", "a rule names either nonResourceURLs or resources, not both")
                }
            }
            let urls = stringList(urlsNode, "\(path).nonResourceURLs", required: true, owner: node) { url in
                Self.nonResourceURLProblem(url)
            }
            target = urls.map { .nonResourceURLs(NonResourceURLMatcher($0)) }
        } else {
            let apiGroups = stringList(fields["apiGroups"], "\(path).apiGroups", required: true, owner: node) { group in
                Self.isAPIGroup(group) ? nil : "\"\(group)\" is not an API group (\"\" for the core group, a DNS name, or *)"
            }
            let resources = stringList(fields["resources"], "\(path).resources", required: true, owner: node) { resource in
                Self.resourceProblem(resource)
            }
            let names = stringList(fields["resourceNames"], "\(path).resourceNames", required: false, owner: node) { name in
                Self.isPathSegmentName(name) ? nil : "\"\(name)\" is not a valid object name"
            }
            let namespaces = stringList(fields["namespaces"], "\(path).namespaces", required: false, owner: node) { namespace in
                Self.isDNSLabel(namespace) ? nil : "\"\(namespace)\" is not a namespace name (a DNS label)"
            }
            if let apiGroups, let resources {
                target = .resources(
                    apiGroups: WildcardSet(apiGroups), resources: ResourceMatcher(resources),
                    resourceNames: names.map(Set.init), namespaces: namespaces.map(Set.init))
            } else {
                target = nil
            }
        }

        guard problems.count == problemsBefore, let target else { return }
        rules.append(PolicyRule(
            reference: RuleReference(file: file, index: index, line: node.mark?.line ?? 0),
            verbs: grantedVerbs, target: target, peers: peers.map(Set.init)))
    }

    /// Reads a non-empty list of strings, checking each with `check` (which returns
    /// a problem or nil). Returns nil when the field is absent or wrong.
    private mutating func stringList(
        _ node: Node?, _ path: String, required: Bool, owner: Node, check: (String) -> String?
    ) -> [String]? {
        guard let node else {
            if required { problem(owner, path, "missing; this field is required") }
            return nil
        }
        guard let sequence = node.sequence else {
            problem(node, path, "expected a list of strings, e.g. [\"a\", \"b\"]")
            return nil
        }
        if sequence.count == 0 {
            problem(node, path, "must not be empty; omit the field instead")
            return nil
        }
        var values: [String] = []
        var ok = true
        for (i, item) in sequence.enumerated() {
            guard let scalar = item.scalar, Self.isString(item) else {
                problem(item, "\(path)[\(i)]", "expected a string")
                ok = false
                continue
            }
            if let message = check(scalar.string) {
                problem(item, "\(path)[\(i)]", message)
                ok = false
                continue
            }
            values.append(scalar.string)
        }
        return ok ? values : nil
    }

    /// A YAML scalar that Kubernetes' YAML reader would take as a string: quoted,
    /// or plain and resolving to `str` (so `true`, `1` or `null` are not strings).
    private static func isString(_ node: Node) -> Bool {
        guard let scalar = node.scalar else { return false }
        if scalar.style != .plain && scalar.style != .any { return true }
        return Resolver.default.resolveTag(of: node) == .str
    }

    private mutating func problem(_ node: Node?, _ field: String, _ message: String) {
        let mark = node?.mark
        problems.append(PolicyProblem(file: file, line: mark?.line ?? 0, column: mark?.column ?? 0,
                                      field: field, message: message))
    }

    private mutating func report(yamlError error: Error) {
        guard let yamlError = error as? YamlError else {
            problems.append(PolicyProblem(file: file, line: 0, column: 0, field: "", message: "\(error)"))
            return
        }
        switch yamlError {
        case .scanner(_, let message, let mark, _), .parser(_, let message, let mark, _),
            .composer(_, let message, let mark, _):
            problems.append(PolicyProblem(file: file, line: mark.line, column: mark.column, field: "",
                                          message: "invalid YAML: \(message)"))
        case .duplicatedKeysInMapping(let duplicates, let context):
            // Yams points at the smallest duplicated key, but its order is not total:
            // keys that are not scalars ("<uncovertable>") never compare, and `1` and
            // "1" are different keys with the same text. Then the key it points at
            // depends on hashing, so the place is left out rather than reported at random.
            let notAString = "<uncovertable>"  // Yams' name for such a key, spelled as Yams spells it
            let placeIsDefinite = !duplicates.contains(notAString) && Set(duplicates).count == duplicates.count
            let names = duplicates.map { $0 == notAString ? "(a key that is not a string)" : $0 }
            problems.append(PolicyProblem(
                file: file, line: placeIsDefinite ? context.mark.line : 0,
                column: placeIsDefinite ? context.mark.column : 0, field: "",
                message: "duplicate keys \(Set(names).sorted().joined(separator: ", ")) in one mapping"))
        default:
            problems.append(PolicyProblem(file: file, line: 0, column: 0, field: "",
                                          message: "invalid YAML: \(yamlError)"))
        }
    }

    // MARK: Value checks (kube-apiserver's validation, as far as it concerns reading)

    private static func isLowerAlnum(_ c: UInt8) -> Bool {
        (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z")) || (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9"))
    }

    /// RFC 1123 label: what a namespace name must be.
    static func isDNSLabel(_ s: String) -> Bool {
        let b = Array(s.utf8)
        guard !b.isEmpty, b.count <= 63, isLowerAlnum(b[0]), isLowerAlnum(b[b.count - 1]) else { return false }
        return b.allSatisfy { isLowerAlnum($0) || $0 == UInt8(ascii: "-") }
    }

    /// An API group: "" (core), `*`, or a DNS subdomain.
    static func isAPIGroup(_ s: String) -> Bool {
        if s.isEmpty || s == "*" { return true }
        guard s.utf8.count <= 253 else { return false }
        return s.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { isDNSLabel(String($0)) }
    }

    /// A resource: `*`, `name`, `name/sub`, or `*/sub`, names lowercase as the API server serves them.
    static func resourceProblem(_ s: String) -> String? {
        if s == "*" { return nil }
        let parts = s.split(separator: "/", omittingEmptySubsequences: false)
        let valid: Bool
        func isName(_ p: Substring) -> Bool {
            !p.isEmpty && p.utf8.allSatisfy { isLowerAlnum($0) || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: ".") }
        }
        switch parts.count {
        case 1: valid = isName(parts[0])
        case 2: valid = (parts[0] == "*" || isName(parts[0])) && isName(parts[1])
        default: valid = false
        }
        return valid ? nil : "\"\(s)\" is not a resource (e.g. services, pods/status, */status or *)"
    }

    /// What the API server accepts as a name in a path (`path.IsValidPathSegmentName`).
    static func isPathSegmentName(_ s: String) -> Bool {
        !s.isEmpty && s != "." && s != ".." && !s.contains("/") && !s.contains("%")
    }

    static func nonResourceURLProblem(_ s: String) -> String? {
        guard s.hasPrefix("/") || s == "*" else { return "\"\(s)\" must start with / (or be *)" }
        if let star = s.firstIndex(of: "*"), star != s.index(before: s.endIndex) {
            return "\"\(s)\": * is only allowed at the end"
        }
        if s.utf8.contains(where: { $0 < 0x21 || $0 > 0x7e || $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "%") }) {
            return "\"\(s)\" holds a character a request path never has"
        }
        return nil
    }

    /// Cluster UUIDs are what Deckhouse generates, but any letters, digits and
    /// dashes are accepted so test and dev clusters can use readable IDs.
    static func isClusterID(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.count <= 64 && s.utf8.allSatisfy {
            isLowerAlnum($0) || ($0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z")) || $0 == UInt8(ascii: "-")
        }
    }
}
