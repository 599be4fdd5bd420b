import IsthmusKubeTypes

/// A Kubernetes condition (`metav1.Condition`): type, status, reason,
/// message, lastTransitionTime, observedGeneration.
public struct Condition: Sendable, Hashable {
    public enum Status: String, Sendable, Hashable { case `true` = "True", `false` = "False", unknown = "Unknown" }

    public var type: String
    public var status: Status
    /// CamelCase, machine-readable.
    public var reason: String
    /// What happened and what to do about it.
    public var message: String
    /// RFC 3339; changes only when `status` changes.
    public var lastTransitionTime: String
    public var observedGeneration: Int

    /// From parts; `init?(json:)` reads one from a stored status.
    public init(type: String, status: Status, reason: String, message: String, lastTransitionTime: String, observedGeneration: Int) {
        self.type = type
        self.status = status
        self.reason = reason
        self.message = message
        self.lastTransitionTime = lastTransitionTime
        self.observedGeneration = observedGeneration
    }

    /// From one element of `status.conditions`; nil when it lacks type or status.
    public init?(json: JSON) {
        guard let type = json["type"]?.stringValue, let raw = json["status"]?.stringValue,
            let status = Status(rawValue: raw)
        else { return nil }
        self.init(
            type: type, status: status, reason: json["reason"]?.stringValue ?? "",
            message: json["message"]?.stringValue ?? "",
            lastTransitionTime: json["lastTransitionTime"]?.stringValue ?? "",
            observedGeneration: json["observedGeneration"]?.intValue ?? 0)
    }

    /// Members in the order kube-apiserver writes `metav1.Condition`.
    public var json: JSON {
        .object([
            ("type", .string(type)), ("status", .string(status.rawValue)),
            ("observedGeneration", .int(observedGeneration)),
            ("lastTransitionTime", .string(lastTransitionTime)),
            ("reason", .string(reason)), ("message", .string(message)),
        ])
    }
}

/// The condition types this controller owns, in the order it writes them.
public enum ConditionType {
    public static let publicMetadataFetched = "PublicMetadataFetched"
    public static let privateMetadataFetched = "PrivateMetadataFetched"
    public static let requirementsMet = "RequirementsMet"
    public static let ready = "Ready"
    public static let all = [publicMetadataFetched, privateMetadataFetched, requirementsMet, ready]
}

/// A condition before its transition time is settled.
public struct ConditionDraft: Sendable, Hashable {
    public var type: String
    public var status: Condition.Status
    public var reason: String
    public var message: String

    /// A condition as computed this round.
    public init(type: String, status: Condition.Status, reason: String, message: String) {
        self.type = type
        self.status = status
        self.reason = reason
        self.message = message
    }
}

/// Merges freshly computed conditions into the stored ones, as
/// `meta.SetStatusCondition` does: `lastTransitionTime` moves only when the
/// status changes, so "False since 3 days" stays meaningful and an
/// unchanged status is not rewritten. Conditions of other types (another
/// writer's) are kept after ours.
public func mergeConditions(existing: [Condition], drafts: [ConditionDraft], generation: Int, now: Int64) -> [Condition] {
    let timestamp = RFC3339.string(unixSeconds: now)
    var out: [Condition] = []
    for draft in drafts {
        let previous = existing.first { $0.type == draft.type }
        let transition = previous.flatMap { $0.status == draft.status && !$0.lastTransitionTime.isEmpty ? $0.lastTransitionTime : nil }
        out.append(Condition(
            type: draft.type, status: draft.status, reason: draft.reason, message: draft.message,
            lastTransitionTime: transition ?? timestamp, observedGeneration: generation))
    }
    let ours = Set(drafts.map(\.type))
    out.append(contentsOf: existing.filter { !ours.contains($0.type) })
    return out
}
