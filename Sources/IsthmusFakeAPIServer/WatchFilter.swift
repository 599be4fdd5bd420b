import IsthmusKubeTypes

/// Which log entries one watch sees, and how (pure, so tests drive it without a channel).
public struct WatchFilter: Sendable {
    public var type: ResourceType
    public var namespace: String
    public var labelSelector: LabelSelector
    public var fieldSelector: FieldSelector
    private let groupResource: GroupResource
    private let groupVersion: String
    private let trivial: Bool

    public init(type: ResourceType, namespace: String, labelSelector: LabelSelector = .everything,
                fieldSelector: FieldSelector = .everything) {
        self.type = type
        self.namespace = namespace
        self.labelSelector = labelSelector
        self.fieldSelector = fieldSelector
        self.groupResource = type.groupResource
        self.groupVersion = type.groupVersion
        self.trivial = labelSelector.isEverything && fieldSelector.isEverything
    }

    public enum Delivery: Equatable {
        case skip
        /// The shared, once-encoded bytes of the entry.
        case shared
        /// An event rewritten for this watcher (selector transitions, other versions).
        case custom([UInt8])
    }

    func matches(_ object: JSON) -> Bool {
        if !labelSelector.isEverything,
           !labelSelector.matches(object.value(at: ["metadata", "labels"])?.stringMap ?? [:]) { return false }
        if !fieldSelector.isEverything, !fieldSelector.matches(type.fieldValues(of: object)) { return false }
        return true
    }

    /// Upstream's rule for selector watches: an object that stops matching is
    /// reported DELETED with its previous content and the new resourceVersion;
    /// one that starts matching is reported ADDED (fixture 29b).
    public func decide(_ entry: LogEntry) -> Delivery {
        guard entry.resource == groupResource else { return .skip }
        if !namespace.isEmpty && entry.namespace != namespace && type.namespaced { return .skip }
        let sameVersion = entry.apiVersion == groupVersion
        if trivial {
            return sameVersion ? .shared : .custom(encode(entry.type, entry.object))
        }
        let now = matches(entry.object)
        switch entry.type {
        case .added:
            return now ? (sameVersion ? .shared : .custom(encode(.added, entry.object))) : .skip
        case .deleted:
            return matches(entry.previous ?? entry.object) ? (sameVersion ? .shared : .custom(encode(.deleted, entry.object))) : .skip
        case .modified:
            let before = entry.previous.map(matches) ?? false
            switch (before, now) {
            case (true, true): return sameVersion ? .shared : .custom(encode(.modified, entry.object))
            case (false, true): return .custom(encode(.added, entry.object))
            case (true, false):
                var old = entry.previous ?? entry.object
                old.setValue(entry.object.value(at: ["metadata", "resourceVersion"]), at: ["metadata", "resourceVersion"])
                return .custom(encode(.deleted, old))
            case (false, false): return .skip
            }
        default:
            return .skip
        }
    }

    private func encode(_ eventType: WatchEventType, _ object: JSON) -> [UInt8] {
        var o = object
        o["apiVersion"] = .string(type.groupVersion)
        return WatchEventEncoding.encode(type: eventType, object: Store.canonical(o, type: type))
    }

    /// A BOOKMARK carries an empty object of the watched kind with only the resourceVersion
    /// (and, for the end of initial events, the two annotations).
    public func bookmark(resourceVersion: UInt64, initialEventsEnd: Bool) -> [UInt8] {
        var metadata: [(String, JSON)] = [("resourceVersion", .string(String(resourceVersion)))]
        if !type.isCustom { metadata.append(("creationTimestamp", .null)) }
        if initialEventsEnd {
            let blueprint: String
            if type.isCustom {
                blueprint = #"{"apiVersion":"\#(type.groupVersion)","items":null,"kind":"\#(type.listKind)","metadata":{"resourceVersion":""}}"# + "\n"
            } else {
                blueprint = #"{"kind":"\#(type.listKind)","apiVersion":"\#(type.groupVersion)","metadata":{},"items":null}"# + "\n"
            }
            metadata.append(("annotations", .object([
                ("k8s.io/initial-events-end", .string("true")),
                ("kubernetes.io/initial-events-list-blueprint", .string(Base64.encodeStandard(blueprint.utf8))),
            ])))
        }
        var object: JSON
        if type.isCustom {
            object = .object([("apiVersion", .string(type.groupVersion)), ("kind", .string(type.kind)), ("metadata", .object(metadata))])
        } else {
            object = .object([("kind", .string(type.kind)), ("apiVersion", .string(type.groupVersion)), ("metadata", .object(metadata))])
            switch type.resource {
            case "services": object["spec"] = .object([]); object["status"] = .object([("loadBalancer", .object([]))])
            case "pods": object["spec"] = .object([("containers", .null)]); object["status"] = .object([])
            case "namespaces", "nodes", "customresourcedefinitions": object["spec"] = .object([]); object["status"] = .object([])
            default: break
            }
        }
        return WatchEventEncoding.encode(type: .bookmark, object: object)
    }
}
