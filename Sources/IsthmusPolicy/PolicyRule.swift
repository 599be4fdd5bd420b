import IsthmusRequestInfo

/// Where a rule came from, so a decision can name it and an operator can find it.
public struct RuleReference: Sendable, Hashable, CustomStringConvertible {
    /// The policy file name (not its full path), e.g. `istio-reader.yaml`.
    public var file: String
    /// Zero-based index of the rule among the file's rules (across YAML documents).
    public var index: Int
    /// One-based line of the rule in the file.
    public var line: Int

    public init(file: String, index: Int, line: Int) {
        self.file = file
        self.index = index
        self.line = line
    }

    public var description: String { "\(file)#rules[\(index)] (line \(line))" }
}

/// The verbs a rule grants, as a bit set: matching a verb is one AND.
///
/// Only get, list and watch can be represented: Isthmus is read-only by
/// construction, so a write verb has no bit and can never be granted.
public struct ReadVerbs: OptionSet, Sendable, Hashable {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let get = ReadVerbs(rawValue: 1 << 0)
    public static let list = ReadVerbs(rawValue: 1 << 1)
    public static let watch = ReadVerbs(rawValue: 1 << 2)
    /// What `*` means in a policy: exactly the three read verbs.
    public static let all: ReadVerbs = [.get, .list, .watch]

    /// The bit for a request verb; empty for every verb Isthmus never grants.
    public init(requestVerb verb: Verb) {
        switch verb.rawValue {
        case "get": self = .get
        case "list": self = .list
        case "watch": self = .watch
        default: self = []
        }
    }

    /// The bit for a verb written in a policy file, or nil when it is not a read verb.
    init?(policyVerb: String) {
        switch policyVerb {
        case "get": self = .get
        case "list": self = .list
        case "watch": self = .watch
        case "*": self = .all
        default: return nil
        }
    }
}

/// Matches a set of strings where `*` means "any", as RBAC does for apiGroups.
struct WildcardSet: Sendable, Hashable {
    var matchesAll: Bool
    var members: Set<String>

    init(_ values: [String]) {
        matchesAll = values.contains("*")
        members = Set(values)
    }

    @inline(__always)
    func matches(_ value: String) -> Bool { matchesAll || members.contains(value) }
}

/// The resources a rule names, matched as RBAC's `ResourceMatches` does:
/// `*` is every resource and subresource, `pods` is only the resource itself
/// (not `pods/log`), `pods/log` is that subresource, `*/scale` is that
/// subresource of any resource.
struct ResourceMatcher: Sendable, Hashable {
    var matchesAll: Bool
    /// Plain resources (`pods`) and resource/subresource pairs (`pods/log`).
    var combined: Set<String>
    /// Subresources named as `*/NAME`.
    var anyResourceSubresources: Set<String>

    init(_ values: [String]) {
        matchesAll = values.contains("*")
        combined = []
        anyResourceSubresources = []
        for value in values where value != "*" {
            if value.hasPrefix("*/") {
                anyResourceSubresources.insert(String(value.dropFirst(2)))
            } else {
                combined.insert(value)
            }
        }
    }

    @inline(__always)
    func matches(resource: String, subresource: String) -> Bool {
        if matchesAll { return true }
        if subresource.isEmpty { return combined.contains(resource) }
        return anyResourceSubresources.contains(subresource)
            || combined.contains(resource + "/" + subresource)
    }
}

/// Matches non-resource URLs as RBAC's `NonResourceURLMatches` does: an exact
/// path, or a prefix when the rule ends in `*` (`/apis/*` matches `/apis/x` but
/// not `/apis`).
struct NonResourceURLMatcher: Sendable, Hashable {
    var exact: Set<String>
    var prefixes: [String]

    init(_ values: [String]) {
        exact = []
        prefixes = []
        for value in values {
            if value.hasSuffix("*") {
                prefixes.append(String(value.dropLast()))
            } else {
                exact.insert(value)
            }
        }
    }

    func matches(_ path: String) -> Bool {
        if exact.contains(path) { return true }
        for prefix in prefixes where path.hasPrefix(prefix) { return true }
        return false
    }
}

/// One compiled allowlist rule. Built only by the policy loader, which has
/// already refused anything but read verbs and well-formed values.
public struct PolicyRule: Sendable, Hashable {
    enum Target: Sendable, Hashable {
        case resources(apiGroups: WildcardSet, resources: ResourceMatcher,
                       resourceNames: Set<String>?, namespaces: Set<String>?)
        case nonResourceURLs(NonResourceURLMatcher)
    }

    public let reference: RuleReference
    public let verbs: ReadVerbs
    let target: Target
    /// Cluster UUIDs this rule is limited to; nil grants every trusted peer.
    let peers: Set<String>?
    /// The decision's reason when this rule allows, built once at load: the
    /// decision runs on every request and should not format strings.
    let allowedReason: String

    init(reference: RuleReference, verbs: ReadVerbs, target: Target, peers: Set<String>?) {
        self.reference = reference
        self.verbs = verbs
        self.target = target
        self.peers = peers
        self.allowedReason = "allowed by \(reference)"
    }

    /// The API groups a resource rule names (`*` included); empty for a
    /// non-resource rule. The policy set indexes rules by these at load.
    var apiGroups: WildcardSet? {
        if case .resources(let apiGroups, _, _, _) = target { return apiGroups }
        return nil
    }

    /// Whether this rule grants the request to `peer` (nil when the caller is unknown,
    /// in which case a rule limited to peers never matches).
    ///
    /// The API group is not checked here: the policy set only offers a rule to
    /// requests of a group it names (see `PolicySet.candidates`).
    @inline(__always)
    func matches(_ request: RequestAttributes, verb: ReadVerbs, peer: String?) -> Bool {
        guard verbs.contains(verb) else { return false }
        if let peers {
            guard let peer, peers.contains(peer) else { return false }
        }
        switch target {
        case .resources(_, let resources, let resourceNames, let namespaces):
            guard request.isResourceRequest,
                resources.matches(resource: request.resource, subresource: request.subresource)
            else { return false }
            // RBAC: a rule with resourceNames never matches a request without a name
            // (a plain list or watch), which is what keeps it narrow.
            if let resourceNames, !resourceNames.contains(request.name) { return false }
            if let namespaces, !namespaces.contains(request.namespace) { return false }
            return true
        case .nonResourceURLs(let urls):
            return !request.isResourceRequest && urls.matches(request.path)
        }
    }
}
