import IsthmusRequestInfo

/// The outcome of authorizing one request against the allowlist.
public struct PolicyDecision: Sendable, Hashable {
    public var allowed: Bool
    /// The first rule that allowed the request; nil when denied.
    public var rule: RuleReference?
    /// Why, in a sentence an operator can act on.
    public var reason: String

    public init(allowed: Bool, rule: RuleReference?, reason: String) {
        self.allowed = allowed
        self.rule = rule
        self.reason = reason
    }
}

/// The compiled allowlist: every rule of every policy file, in file-name order.
///
/// A value type snapshot, so a reload swaps the whole set at once and a request
/// is always decided against one consistent policy.
public struct PolicySet: Sendable, Hashable {
    public let rules: [PolicyRule]
    /// The file names the rules came from, in load order.
    public let files: [String]

    /// For each API group some rule names: the indices of the rules that can
    /// match a request in it (those naming it and those naming `*`), in order.
    /// One hash of the request's group then replaces one per rule.
    private let resourceRulesByGroup: [String: [Int]]
    /// The rules naming `*` as a group: the candidates for any other group.
    private let wildcardGroupRules: [Int]
    private let nonResourceRules: [Int]

    init(rules: [PolicyRule], files: [String]) {
        self.rules = rules
        self.files = files
        var byGroup: [String: [Int]] = [:]
        var wildcard: [Int] = []
        var nonResource: [Int] = []
        for (index, rule) in rules.enumerated() {
            guard let groups = rule.apiGroups else {
                nonResource.append(index)
                continue
            }
            if groups.matchesAll { wildcard.append(index) }
            for group in groups.members where group != "*" { byGroup[group, default: []].append(index) }
        }
        // Merge the wildcard rules into each group's list, keeping file order
        // so the first matching rule is still the one reported.
        for (group, indices) in byGroup {
            byGroup[group] = Array(Set(indices + wildcard)).sorted()
        }
        self.resourceRulesByGroup = byGroup
        self.wildcardGroupRules = wildcard
        self.nonResourceRules = nonResource
    }

    /// The rules that can match `request`, by index, in order.
    private func candidates(for request: RequestAttributes) -> [Int] {
        guard request.isResourceRequest else { return nonResourceRules }
        return resourceRulesByGroup[request.apiGroup] ?? wildcardGroupRules
    }

    /// Decides whether `peer` (a cluster UUID, or nil when unknown) may make `request`.
    ///
    /// Read-only by construction: a verb other than get, list and watch is denied
    /// before any rule is looked at, whatever the rules say.
    public func decide(_ request: RequestAttributes, peer: String?) -> PolicyDecision {
        let verb = ReadVerbs(requestVerb: request.verb)
        if verb.isEmpty {
            return PolicyDecision(
                allowed: false, rule: nil,
                reason: "verb \"\(request.verb)\" is never allowed: Isthmus is read-only (get, list, watch)")
        }
        // Borrow the rules in place: iterating `rules` by value copies each one.
        let matched: Int? = rules.withUnsafeBufferPointer { rules in
            for index in candidates(for: request) where rules[index].matches(request, verb: verb, peer: peer) {
                return index
            }
            return nil
        }
        guard let matched else {
            return PolicyDecision(allowed: false, rule: nil, reason: "no policy rule allows this request")
        }
        return PolicyDecision(allowed: true, rule: rules[matched].reference, reason: rules[matched].allowedReason)
    }
}

/// The message kube-apiserver puts in a 403 `Status` (its `forbiddenMessage` plus
/// `errors.NewForbidden`), with the peer in place of the user, so kubectl and
/// client-go report an Isthmus denial the way they report RBAC's.
///
/// `services is forbidden: peer "<uuid>" cannot watch resource "services" in API group "" at the cluster scope`
public func forbiddenMessage(for request: RequestAttributes, peer: String) -> String {
    let subject = "peer \"\(peer)\""
    guard request.isResourceRequest else {
        return forbiddenMessage(for: request, reason: "\(subject) cannot \(request.verb) path \"\(request.path)\"")
    }
    let resource = request.subresource.isEmpty ? request.resource : request.resource + "/" + request.subresource
    let scope = request.namespace.isEmpty ? "at the cluster scope" : "in the namespace \"\(request.namespace)\""
    return forbiddenMessage(
        for: request,
        reason: "\(subject) cannot \(request.verb) resource \"\(resource)\" in API group \"\(request.apiGroup)\" \(scope)")
}

/// `errors.NewForbidden`'s framing around any reason: `services "a" is forbidden: REASON`,
/// `services is forbidden: REASON` for a collection, `forbidden: REASON` for a path.
public func forbiddenMessage(for request: RequestAttributes, reason: String) -> String {
    guard request.isResourceRequest else { return "forbidden: " + reason }
    // GroupResource.String(): "resource" for the core group, "resource.group" otherwise.
    let qualified = request.apiGroup.isEmpty ? request.resource : request.resource + "." + request.apiGroup
    if request.name.isEmpty {
        return "\(qualified) is forbidden: \(reason)"
    }
    return "\(qualified) \"\(request.name)\" is forbidden: \(reason)"
}
