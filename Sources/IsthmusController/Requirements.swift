/// This cluster's values for the seed's "Requirements for clusters", as
/// in its ClusterConfiguration. Nil means "not configured": that check is
/// then reported as not done rather than guessed.
public struct ClusterNetworking: Sendable, Hashable {
    public var clusterDomain: String?
    public var podSubnets: CIDRList?
    public var serviceSubnets: CIDRList?

    public init(clusterDomain: String? = nil, podSubnets: CIDRList? = nil, serviceSubnets: CIDRList? = nil) {
        self.clusterDomain = clusterDomain
        self.podSubnets = podSubnets
        self.serviceSubnets = serviceSubnets
    }

    /// From configuration text; the error names the field.
    public init(clusterDomain: String?, podSubnetCIDR: String?, serviceSubnetCIDR: String?) throws(SpecError) {
        func parse(_ text: String?, _ field: String) throws(SpecError) -> CIDRList? {
            guard let text, !text.isEmpty else { return nil }
            switch CIDRList.parse(text) {
            case .success(let list): return list
            case .failure(let error): throw SpecError(field: field, problem: error.description)
            }
        }
        self.init(
            clusterDomain: clusterDomain?.isEmpty == false ? clusterDomain : nil,
            podSubnets: try parse(podSubnetCIDR, "podSubnetCIDR"),
            serviceSubnets: try parse(serviceSubnetCIDR, "serviceSubnetCIDR"))
    }
}

/// One unmet requirement, carrying both clusters' values.
public enum RequirementViolation: Sendable, Hashable, CustomStringConvertible {
    case clusterDomain(local: String, peer: String)
    /// Our prefix, the peer's prefix (each overlapping pair).
    case podSubnets(local: String, peer: String)
    case serviceSubnets(local: String, peer: String)
    /// A pod range of one cluster overlapping a service range of the other
    /// is as ambiguous for Istio's TCP rules as pod/pod.
    case podServiceSubnets(local: String, peer: String)

    /// Every ``reason``, for metrics that must report 0 as well as 1.
    public static let allReasons = ["ClusterDomainMismatch", "PodSubnetOverlap", "ServiceSubnetOverlap", "PodServiceSubnetOverlap"]

    /// For the condition reason and the metric's `requirement` label.
    public var reason: String {
        switch self {
        case .clusterDomain: "ClusterDomainMismatch"
        case .podSubnets: "PodSubnetOverlap"
        case .serviceSubnets: "ServiceSubnetOverlap"
        case .podServiceSubnets: "PodServiceSubnetOverlap"
        }
    }

    public var description: String {
        switch self {
        case .clusterDomain(let local, let peer):
            "clusterDomain differs: this cluster has \(MessageText.quoted(local)), the peer has \(MessageText.quoted(peer)); all members must use the same cluster domain"
        case .podSubnets(let local, let peer):
            "pod subnets overlap: this cluster's \(local) and the peer's \(peer)"
        case .serviceSubnets(let local, let peer):
            "service subnets overlap: this cluster's \(local) and the peer's \(peer)"
        case .podServiceSubnets(let local, let peer):
            "a pod subnet and a service subnet overlap: this cluster's \(local) and the peer's \(peer)"
        }
    }
}

/// The outcome of checking a peer against this cluster.
public struct RequirementsCheck: Sendable, Hashable {
    public var violations: [RequirementViolation]
    /// Checks that could not run, e.g. "the peer does not publish clusterDomain".
    public var notChecked: [String]
    /// False when neither the domains nor any pair of subnet lists could be compared.
    public var checkedAnything: Bool

    /// Same `clusterDomain`; no overlap between any of our pod/service
    /// prefixes and any of the peer's (IPv4 and IPv6 alike).
    public init(local: ClusterNetworking, peer: PrivateMetadata) {
        var violations: [RequirementViolation] = []
        var notChecked: [String] = []
        switch (local.clusterDomain, peer.clusterDomain) {
        case (let l?, let p?):
            if l.lowercased().trimmingDots != p.lowercased().trimmingDots {
                violations.append(.clusterDomain(local: l, peer: p))
            }
        case (nil, _): notChecked.append("clusterDomain is not configured for this cluster")
        case (_, nil): notChecked.append("the peer does not publish clusterDomain")
        }
        func compare(_ ours: CIDRList?, _ theirs: CIDRList?, _ make: (String, String) -> RequirementViolation) {
            guard let ours, let theirs else { return }
            for (a, b) in ours.overlaps(with: theirs) { violations.append(make(a.description, b.description)) }
        }
        compare(local.podSubnets, peer.podSubnets, RequirementViolation.podSubnets)
        compare(local.serviceSubnets, peer.serviceSubnets, RequirementViolation.serviceSubnets)
        compare(local.podSubnets, peer.serviceSubnets, RequirementViolation.podServiceSubnets)
        compare(local.serviceSubnets, peer.podSubnets, RequirementViolation.podServiceSubnets)
        if local.podSubnets == nil { notChecked.append("podSubnetCIDR is not configured for this cluster") }
        if local.serviceSubnets == nil { notChecked.append("serviceSubnetCIDR is not configured for this cluster") }
        if peer.podSubnets == nil { notChecked.append("the peer does not publish podSubnetCIDR") }
        if peer.serviceSubnets == nil { notChecked.append("the peer does not publish serviceSubnetCIDR") }
        self.violations = violations
        self.notChecked = notChecked
        self.checkedAnything = (local.clusterDomain != nil && peer.clusterDomain != nil)
            || (local.podSubnets != nil && (peer.podSubnets != nil || peer.serviceSubnets != nil))
            || (local.serviceSubnets != nil && (peer.podSubnets != nil || peer.serviceSubnets != nil))
    }

    /// The `RequirementsMet` condition: False on any violation (all listed),
    /// Unknown when nothing could be checked, True otherwise (naming what
    /// was skipped).
    public func condition() -> ConditionDraft {
        if let first = violations.first {
            return ConditionDraft(
                type: ConditionType.requirementsMet, status: .false, reason: first.reason,
                message: violations.map(\.description).joined(separator: "; "))
        }
        if !checkedAnything {
            return ConditionDraft(
                type: ConditionType.requirementsMet, status: .unknown, reason: "NotChecked",
                message: "nothing to compare: " + notChecked.joined(separator: "; "))
        }
        var message = "same clusterDomain; no pod or service subnet overlaps"
        if !notChecked.isEmpty { message += " (not checked: " + notChecked.joined(separator: "; ") + ")" }
        return ConditionDraft(type: ConditionType.requirementsMet, status: .true, reason: "RequirementsMet", message: message)
    }
}

extension String {
    /// `cluster.local.` and `cluster.local` name the same domain.
    var trimmingDots: Substring {
        var s = Substring(self)
        while s.last == "." { s = s.dropLast() }
        return s
    }
}
