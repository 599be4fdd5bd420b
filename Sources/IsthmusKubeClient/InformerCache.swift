import IsthmusKubeTypes

/// What an informer tells its consumer.
public enum InformerEvent: Sendable, Equatable {
    case added(JSON)
    case updated(old: JSON, new: JSON)
    /// The object as last seen (after a re-list, as last cached).
    case deleted(JSON)
    /// Periodic resync: an object unchanged, handed out again so the consumer re-checks it.
    case resync(JSON)
    /// The cache holds a complete list for the first time.
    case synced

    public var object: JSON? {
        switch self {
        case .added(let o), .deleted(let o), .resync(let o): o
        case .updated(_, let new): new
        case .synced: nil
        }
    }
}

/// The informer's store, keyed `namespace/name` (or `name` when cluster-scoped),
/// and how list results and watch events change it. Pure: each change returns
/// the events to deliver, and nothing for a repeat (same resourceVersion).
public struct InformerCache: Sendable {
    public private(set) var objects: [String: JSON] = [:]

    public init() {}

    public static func key(namespace: String?, name: String) -> String {
        if let namespace, !namespace.isEmpty { return "\(namespace)/\(name)" }
        return name
    }

    public static func key(of object: JSON) -> String {
        key(namespace: object.value(at: ["metadata", "namespace"])?.stringValue,
            name: object.value(at: ["metadata", "name"])?.stringValue ?? "")
    }

    private static func resourceVersion(_ object: JSON) -> String? {
        object.value(at: ["metadata", "resourceVersion"])?.stringValue
    }

    /// Replaces everything with a fresh list: adds, updates (changed
    /// resourceVersion only) and deletes for what the list no longer has.
    public mutating func replace(with items: [JSON]) -> [InformerEvent] {
        var events: [InformerEvent] = []
        var fresh: [String: JSON] = [:]
        for item in items {
            let key = Self.key(of: item)
            fresh[key] = item
            if let old = objects[key] {
                if Self.resourceVersion(old) != Self.resourceVersion(item) { events.append(.updated(old: old, new: item)) }
            } else {
                events.append(.added(item))
            }
        }
        for (key, old) in objects.sorted(by: { $0.key < $1.key }) where fresh[key] == nil {
            events.append(.deleted(old))
        }
        objects = fresh
        return events
    }

    /// Applies one watch event; nil when it changes nothing (a bookmark, an error, a repeat).
    public mutating func apply(_ event: KubeWatchEvent) -> InformerEvent? {
        switch event {
        case .added(let object), .modified(let object):
            let key = Self.key(of: object)
            if let old = objects[key] {
                guard Self.resourceVersion(old) != Self.resourceVersion(object) else { return nil }
                objects[key] = object
                return .updated(old: old, new: object)
            }
            objects[key] = object
            return .added(object)
        case .deleted(let object):
            guard objects.removeValue(forKey: Self.key(of: object)) != nil else { return nil }
            return .deleted(object)
        case .bookmark, .error:
            return nil
        }
    }
}
