import Foundation
import IsthmusKubeTypes

/// What a write needs from the outside world, passed in so tests control it.
public struct WriteContext: Sendable {
    /// RFC 3339, seconds precision, UTC: `2026-11-25T16:52:39Z`.
    public var timestamp: String
    public var uid: String
    /// Five lower-case alphanumerics for `generateName`.
    public var nameSuffix: String
    public init(timestamp: String, uid: String, nameSuffix: String = "x7k2q") {
        self.timestamp = timestamp
        self.uid = uid
        self.nameSuffix = nameSuffix
    }
}

public struct ListOptions: Sendable {
    public var labelSelector = LabelSelector.everything
    public var fieldSelector = FieldSelector.everything
    public var limit: Int?
    public var continueToken: String?
    public var resourceVersion: String?
    public var resourceVersionMatch: String?
    public init() {}
}

public struct ListResult: Sendable {
    public var type: ResourceType
    public var items: [JSON]
    public var resourceVersion: UInt64
    public var continueToken: String?
    public var remainingItemCount: Int?
}

public struct WatchOptions: Sendable {
    public var labelSelector = LabelSelector.everything
    public var fieldSelector = FieldSelector.everything
    public var resourceVersion: String?
    public var resourceVersionMatch: String?
    public var sendInitialEvents: Bool?
    public var allowWatchBookmarks = false
    public init() {}
}

/// Where a watch starts: initial objects to send as ADDED, then log entries after `startResourceVersion`.
public struct WatchPlan: Sendable {
    public var initialObjects: [JSON]
    public var startResourceVersion: UInt64
    /// Send the `k8s.io/initial-events-end` bookmark after the initial objects.
    public var sendInitialEventsEndBookmark: Bool
    /// The 410 the watch reports as its only (ERROR) event.
    public var expired: Status?
}

/// The in-memory state of the API server: objects, the global resourceVersion
/// and the event history. A value type; the server keeps it behind one lock.
public struct Store: Sendable {
    public private(set) var registry: ResourceRegistry
    private var objects: [GroupResource: [String: JSON]] = [:]
    public private(set) var resourceVersion: UInt64
    public private(set) var log: EventLog

    public init(historyCapacity: Int = 10_000, registry: ResourceRegistry = ResourceRegistry(), initialResourceVersion: UInt64 = 1) {
        self.registry = registry
        self.log = EventLog(capacity: historyCapacity)
        self.resourceVersion = initialResourceVersion
        self.log.forget(through: 0)
    }

    static func key(namespace: String, name: String) -> String {
        namespace.isEmpty ? name : "\(namespace)/\(name)"
    }

    public func count(of resource: GroupResource) -> Int { objects[resource]?.count ?? 0 }

    // MARK: Reads

    public func get(_ type: ResourceType, namespace: String, name: String) throws(Status) -> JSON {
        guard let object = objects[type.groupResource]?[Self.key(namespace: namespace, name: name)] else {
            throw Status.notFound(resource: type.resource, group: type.group, name: name)
        }
        return withAPIVersion(object, type)
    }

    /// Objects served under another version keep their content; only apiVersion changes.
    private func withAPIVersion(_ object: JSON, _ type: ResourceType) -> JSON {
        guard object["apiVersion"]?.stringValue != type.groupVersion else { return object }
        var copy = object
        copy["apiVersion"] = .string(type.groupVersion)
        return copy
    }

    public func list(_ type: ResourceType, namespace: String, options: ListOptions) throws(Status) -> ListResult {
        try type.validate(options.fieldSelector)
        var listRV = resourceVersion
        var startKey: String?
        var limit = options.limit.flatMap { $0 > 0 ? $0 : nil }
        var snapshot = objects[type.groupResource] ?? [:]

        if let token = options.continueToken, !token.isEmpty {
            guard let decoded = Self.decodeContinue(token) else {
                throw Status.badRequest("continue key is not valid: illegal base64 data at input byte 0")
            }
            guard decoded.rv >= log.evictedThrough else { throw Status.continueTooOld }
            listRV = decoded.rv
            startKey = decoded.start
            snapshot = rolledBack(snapshot, resource: type.groupResource, to: decoded.rv)
        } else if let rvText = options.resourceVersion, !rvText.isEmpty {
            guard let rv = UInt64(rvText) else {
                throw Status.badRequest("invalid resource version: \(rvText)")
            }
            if rv == 0 {
                // Served from the watch cache, which ignores limit (fixture 28c).
                limit = nil
            } else if options.resourceVersionMatch == "Exact" {
                guard rv >= log.evictedThrough else { throw Status.listTooOld }
                if rv < resourceVersion {
                    snapshot = rolledBack(snapshot, resource: type.groupResource, to: rv)
                    listRV = rv
                }
            }
        }

        var keys = snapshot.keys.filter { key in
            if !type.namespaced || namespace.isEmpty { return true }
            return key.hasPrefix(namespace + "/")
        }.sorted()
        if let startKey { keys = keys.filter { $0 >= startKey } }
        var matched: [(String, JSON)] = []
        for key in keys {
            guard let object = snapshot[key] else { continue }
            if !options.labelSelector.isEverything,
               !options.labelSelector.matches(object.value(at: ["metadata", "labels"])?.stringMap ?? [:]) { continue }
            if !options.fieldSelector.isEverything, !options.fieldSelector.matches(type.fieldValues(of: object)) { continue }
            matched.append((key, object))
        }
        var result = ListResult(type: type, items: [], resourceVersion: listRV)
        if let limit, matched.count > limit {
            let page = matched.prefix(limit)
            result.items = page.map { withAPIVersion($0.1, type) }
            if let lastKey = page.last?.0 {
                result.continueToken = Self.encodeContinue(rv: listRV, start: lastKey + "\u{0}")
            }
            result.remainingItemCount = matched.count - limit
        } else {
            result.items = matched.map { withAPIVersion($0.1, type) }
        }
        return result
    }

    /// The objects of one resource as they were at `rv`, undoing newer log entries.
    private func rolledBack(_ current: [String: JSON], resource: GroupResource, to rv: UInt64) -> [String: JSON] {
        var state = current
        for entry in log.entriesNewestFirst(after: rv) where entry.resource == resource {
            let key = Self.key(namespace: entry.namespace, name: entry.name)
            switch entry.type {
            case .added: state[key] = nil
            default: state[key] = entry.previous
            }
        }
        return state
    }

    static func encodeContinue(rv: UInt64, start: String) -> String {
        let json = JSON.object([("v", .string("meta.k8s.io/v1")), ("rv", .number(String(rv))), ("start", .string(start))])
        return Base64.encodeURL(json.bytes())
    }

    static func decodeContinue(_ token: String) -> (rv: UInt64, start: String)? {
        guard let data = Base64.decodeURL(token.utf8), let json = try? JSON(parsing: data),
              let rv = json["rv"]?.intValue, rv >= 0, let start = json["start"]?.stringValue
        else { return nil }
        return (UInt64(rv), start)
    }

    // MARK: Writes

    public mutating func create(_ type: ResourceType, namespace: String, body: JSON, context: WriteContext,
                                dryRun: Bool = false) throws(Status) -> JSON {
        guard case .object = body else { throw Status.badRequest("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf") }
        var object = body
        var name = object.value(at: ["metadata", "name"])?.stringValue ?? ""
        if name.isEmpty, let prefix = object.value(at: ["metadata", "generateName"])?.stringValue, !prefix.isEmpty {
            name = prefix + context.nameSuffix
        }
        let bodyNamespace = object.value(at: ["metadata", "namespace"])?.stringValue ?? ""
        if type.namespaced {
            if !bodyNamespace.isEmpty && bodyNamespace != namespace {
                throw Status.badRequest("the namespace of the provided object does not match the namespace sent on the request")
            }
        }
        try Self.validateName(name, type: type)
        if type.namespaced {
            guard let owner = objects[ResourceRegistry.namespaceResource]?[namespace] else {
                throw Status.notFound(resource: "namespaces", name: namespace)
            }
            if owner.value(at: ["metadata", "deletionTimestamp"]) != nil {
                throw Status.namespaceTerminating(resource: type.groupResource.description, name: name, group: type.group, namespace: namespace)
            }
        }
        let key = Self.key(namespace: type.namespaced ? namespace : "", name: name)
        if objects[type.groupResource]?[key] != nil {
            throw Status.alreadyExists(resource: type.resource, group: type.group, name: name)
        }
        if type.groupResource == ResourceRegistry.crdResource {
            try Self.validateCRD(object, name: name)
        }
        if dryRun { return object }

        resourceVersion += 1
        object["kind"] = .string(type.kind)
        object["apiVersion"] = .string(type.groupVersion)
        var metadata = object["metadata"] ?? .object([])
        metadata["name"] = .string(name)
        if type.namespaced { metadata["namespace"] = .string(namespace) } else { metadata["namespace"] = nil }
        metadata["uid"] = .string(context.uid)
        metadata["resourceVersion"] = .string(String(resourceVersion))
        metadata["creationTimestamp"] = .string(context.timestamp)
        metadata["deletionTimestamp"] = nil
        metadata["generation"] = type.tracksGeneration ? .int(1) : nil
        metadata["managedFields"] = nil
        object["metadata"] = metadata
        if type.hasStatus && type.isCustom { object["status"] = nil }
        object = Self.applyDefaults(object, type: type)
        object = Self.canonical(object, type: type)
        commit(type: type, namespace: type.namespaced ? namespace : "", name: name, event: .added, object: object, previous: nil)
        if type.groupResource == ResourceRegistry.crdResource {
            registry.register(ResourceRegistry.types(fromCRD: object))
        }
        return object
    }

    /// PUT of the main resource or of `/status`.
    public mutating func update(_ type: ResourceType, namespace: String, name: String, body: JSON,
                                subresource: String?, context: WriteContext) throws(Status) -> JSON {
        guard case .object = body else { throw Status.badRequest("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf") }
        let bodyName = body.value(at: ["metadata", "name"])?.stringValue ?? ""
        if bodyName != name {
            throw Status.badRequest("the name of the object (\(bodyName)) does not match the name on the URL (\(name))")
        }
        let key = Self.key(namespace: type.namespaced ? namespace : "", name: name)
        guard let existing = objects[type.groupResource]?[key] else {
            throw Status.notFound(resource: type.resource, group: type.group, name: name)
        }
        if let rv = body.value(at: ["metadata", "resourceVersion"])?.stringValue, !rv.isEmpty,
           rv != existing.value(at: ["metadata", "resourceVersion"])?.stringValue {
            throw Status.conflict(resource: type.resource, group: type.group, name: name)
        }
        return try replace(type, key: key, existing: existing, incoming: body, subresource: subresource, context: context)
    }

    public mutating func patch(_ type: ResourceType, namespace: String, name: String, patchType: PatchType,
                               patch: [UInt8], subresource: String?, context: WriteContext) throws(Status) -> JSON {
        let key = Self.key(namespace: type.namespaced ? namespace : "", name: name)
        let existing = objects[type.groupResource]?[key]
        let patchJSON: JSON
        switch patchType {
        case .apply, .applyCBOR:
            guard let parsed = try? ApplyDocument.parse(patch) else {
                throw Status.badRequest("error decoding YAML: invalid apply document")
            }
            patchJSON = parsed
        default:
            do { patchJSON = try JSON(parsing: patch) } catch {
                throw Status.badRequest("error decoding patch: \(error.description)")
            }
        }
        guard let existing else {
            if patchType == .apply || patchType == .applyCBOR {
                var object = patchJSON
                object.setValue(.string(name), at: ["metadata", "name"])
                return try create(type, namespace: namespace, body: object, context: context)
            }
            throw Status.notFound(resource: type.resource, group: type.group, name: name)
        }
        var patched: JSON
        switch patchType {
        case .merge:
            guard patchJSON.isObject else { throw Status.patchRejected }
            patched = Patcher.mergePatch(existing, patchJSON)
        case .strategic:
            guard !type.isCustom else { throw Status.strategicMergeUnsupported }
            guard patchJSON.isObject else { throw Status.patchRejected }
            do { patched = try StrategicMerge.apply(existing, patchJSON, kind: type.kind) } catch {
                guard case .invalid(let message) = error else { throw Status.patchRejected }
                throw Status.internalError(message)
            }
        case .apply, .applyCBOR:
            guard patchJSON.isObject else { throw Status.patchRejected }
            patched = Patcher.mergePatch(existing, Patcher.stripDirectives(patchJSON))
        case .json:
            do { patched = try Patcher.jsonPatch(existing, patchJSON) } catch { throw Status.patchRejected }
        }
        if let rv = patched.value(at: ["metadata", "resourceVersion"])?.stringValue, !rv.isEmpty,
           rv != existing.value(at: ["metadata", "resourceVersion"])?.stringValue {
            throw Status.conflict(resource: type.resource, group: type.group, name: name)
        }
        if (patched.value(at: ["metadata", "name"])?.stringValue ?? "") != name {
            throw Status.badRequest("the name of the object (\(patched.value(at: ["metadata", "name"])?.stringValue ?? "")) does not match the name on the URL (\(name))")
        }
        return try replace(type, key: key, existing: existing, incoming: patched, subresource: subresource, context: context)
    }

    private mutating func replace(_ type: ResourceType, key: String, existing: JSON, incoming: JSON,
                                  subresource: String?, context: WriteContext) throws(Status) -> JSON {
        var object: JSON
        if subresource == "status" {
            // The status subresource changes status only.
            object = existing
            object["status"] = incoming["status"]
        } else {
            object = incoming
            if type.hasStatus { object["status"] = existing["status"] }
            // Metadata the server owns.
            for field in ["uid", "creationTimestamp", "generation", "deletionTimestamp", "namespace", "managedFields"] {
                object.setValue(existing.value(at: ["metadata", field]), at: ["metadata", field])
            }
            object["kind"] = .string(type.kind)
            object["apiVersion"] = existing["apiVersion"] ?? .string(type.groupVersion)
        }
        if type.groupResource == ResourceRegistry.crdResource && subresource != "status" {
            try Self.validateCRD(object, name: object.value(at: ["metadata", "name"])?.stringValue ?? "")
        }
        if type.tracksGeneration, subresource != "status", Self.spec(of: object) != Self.spec(of: existing) {
            let generation = existing.value(at: ["metadata", "generation"])?.intValue ?? 1
            object.setValue(.int(generation + 1), at: ["metadata", "generation"])
        }
        // A write that changes nothing does not bump the resourceVersion (as upstream).
        var unchanged = object
        unchanged.setValue(existing.value(at: ["metadata", "resourceVersion"]), at: ["metadata", "resourceVersion"])
        if Self.canonical(unchanged, type: type) == existing { return existing }

        resourceVersion += 1
        object.setValue(.string(String(resourceVersion)), at: ["metadata", "resourceVersion"])
        object = Self.canonical(object, type: type)
        let parts = Self.split(key)
        commit(type: type, namespace: parts.namespace, name: parts.name, event: .modified, object: object, previous: existing)
        if type.groupResource == ResourceRegistry.crdResource {
            registry.register(ResourceRegistry.types(fromCRD: object))
        }
        return object
    }

    /// Deletes at once (no finalizers, no graceful deletion), except a namespace:
    /// it turns `Terminating` (a MODIFIED event) and `finalizeNamespace` later
    /// removes its contents and then it, as the namespace controller would.
    /// Deleting a CRD deletes its objects and stops serving them.
    public mutating func delete(_ type: ResourceType, namespace: String, name: String,
                                precondition: (uid: String?, resourceVersion: String?) = (nil, nil),
                                timestamp: String? = nil) throws(Status) -> JSON {
        let key = Self.key(namespace: type.namespaced ? namespace : "", name: name)
        guard let existing = objects[type.groupResource]?[key] else {
            throw Status.notFound(resource: type.resource, group: type.group, name: name)
        }
        if let uid = precondition.uid, uid != existing.value(at: ["metadata", "uid"])?.stringValue {
            throw Status(message: "Precondition failed: UID in precondition: \(uid), UID in object meta: \(existing.value(at: ["metadata", "uid"])?.stringValue ?? "")",
                         reason: "Conflict", details: Status.Details(name: name, group: type.group.isEmpty ? nil : type.group, kind: type.resource), code: 409)
        }
        if let rv = precondition.resourceVersion, rv != existing.value(at: ["metadata", "resourceVersion"])?.stringValue {
            throw Status(message: "Precondition failed: ResourceVersion in precondition: \(rv), ResourceVersion in object meta: \(existing.value(at: ["metadata", "resourceVersion"])?.stringValue ?? "")",
                         reason: "Conflict", details: Status.Details(name: name, group: type.group.isEmpty ? nil : type.group, kind: type.resource), code: 409)
        }
        if type.groupResource == ResourceRegistry.namespaceResource {
            if existing.value(at: ["metadata", "deletionTimestamp"]) != nil {
                // Upstream's wording for a second DELETE while the controller empties it.
                throw Status(message: "Operation cannot be fulfilled on namespaces \"\(name)\": The system is ensuring all content is removed from this namespace.  Upon completion, this namespace will automatically be purged by the system.",
                             reason: "Conflict", details: Status.Details(name: name, kind: "namespaces"), code: 409)
            }
            // Fixture 53: 200 with the namespace, deletionTimestamp set, phase Terminating.
            var object = existing
            object.setValue(.string(timestamp ?? APIServerCore.timestamp()), at: ["metadata", "deletionTimestamp"])
            object.setValue(.string("Terminating"), at: ["status", "phase"])
            resourceVersion += 1
            object.setValue(.string(String(resourceVersion)), at: ["metadata", "resourceVersion"])
            object = Self.canonical(object, type: type)
            commit(type: type, namespace: "", name: name, event: .modified, object: object, previous: existing)
            return object
        }
        if type.groupResource == ResourceRegistry.crdResource {
            for t in ResourceRegistry.types(fromCRD: existing) {
                for childKey in (objects[t.groupResource]?.keys ?? [:].keys).sorted() {
                    removeObject(t, key: childKey)
                }
                registry.unregister(t.groupResource)
                break
            }
        }
        return removeObject(type, key: key) ?? existing
    }

    /// The namespace controller's work for a `Terminating` namespace: deletes
    /// every object in it (DELETED events), then the namespace itself.
    /// Returns false when the namespace is absent or not terminating.
    @discardableResult
    public mutating func finalizeNamespace(_ name: String) -> Bool {
        guard let namespaceType = registry.types.first(where: { $0.groupResource == ResourceRegistry.namespaceResource }),
              let existing = objects[ResourceRegistry.namespaceResource]?[name],
              existing.value(at: ["metadata", "deletionTimestamp"]) != nil
        else { return false }
        let prefix = name + "/"
        var seen: Set<GroupResource> = []
        for t in registry.types where t.namespaced && seen.insert(t.groupResource).inserted {
            for childKey in (objects[t.groupResource]?.keys.filter { $0.hasPrefix(prefix) } ?? []).sorted() {
                removeObject(t, key: childKey)
            }
        }
        removeObject(namespaceType, key: name)
        return true
    }

    /// DELETE on a collection: every object the selectors match, deleted one by one.
    public mutating func deleteCollection(_ type: ResourceType, namespace: String, options: ListOptions) throws(Status) -> [JSON] {
        var listOptions = options
        listOptions.limit = nil
        listOptions.continueToken = nil
        let matched = try list(type, namespace: namespace, options: listOptions).items
        var deleted: [JSON] = []
        for object in matched {
            let name = object.value(at: ["metadata", "name"])?.stringValue ?? ""
            let objectNamespace = object.value(at: ["metadata", "namespace"])?.stringValue ?? ""
            deleted.append(try delete(type, namespace: objectNamespace, name: name))
        }
        return deleted
    }

    @discardableResult
    private mutating func removeObject(_ type: ResourceType, key: String) -> JSON? {
        guard let existing = objects[type.groupResource]?[key] else { return nil }
        resourceVersion += 1
        var object = existing
        object.setValue(.string(String(resourceVersion)), at: ["metadata", "resourceVersion"])
        let parts = Self.split(key)
        commit(type: type, namespace: parts.namespace, name: parts.name, event: .deleted, object: object, previous: existing)
        return object
    }

    private mutating func commit(type: ResourceType, namespace: String, name: String, event: WatchEventType,
                                 object: JSON, previous: JSON?) {
        let key = Self.key(namespace: namespace, name: name)
        if event == .deleted {
            objects[type.groupResource]?[key] = nil
        } else {
            objects[type.groupResource, default: [:]][key] = object
        }
        log.append(LogEntry(resourceVersion: resourceVersion, resource: type.groupResource, namespace: namespace,
                            name: name, type: event, apiVersion: object["apiVersion"]?.stringValue ?? "",
                            object: object, previous: previous,
                            encoded: WatchEventEncoding.encode(type: event, object: object)))
    }

    static func split(_ key: String) -> (namespace: String, name: String) {
        if let slash = key.firstIndex(of: "/") {
            return (String(key[..<slash]), String(key[key.index(after: slash)...]))
        }
        return ("", key)
    }

    static func spec(of object: JSON) -> JSON {
        guard case .object(let members) = object else { return object }
        return .object(members.filter { !["metadata", "status", "kind", "apiVersion"].contains($0.0) })
    }

    // MARK: Watch

    public func watchPlan(_ type: ResourceType, namespace: String, options: WatchOptions) throws(Status) -> WatchPlan {
        try type.validate(options.fieldSelector)
        let rvText = options.resourceVersion ?? ""
        if options.sendInitialEvents == true {
            guard options.resourceVersionMatch == "NotOlderThan" else {
                throw Status.invalid(kind: "ListOptions", group: "meta.k8s.io", name: "", causes: [
                    Status.Cause(reason: "FieldValueForbidden", message: "Forbidden: sendInitialEvents is forbidden for watch unless resourceVersionMatch is set to NotOlderThan",
                                 field: "sendInitialEvents"),
                ])
            }
        }
        // Watch-list: explicit sendInitialEvents, or a legacy watch from "" / "0".
        if options.sendInitialEvents == true || ((rvText.isEmpty || rvText == "0") && options.sendInitialEvents != false) {
            var listOptions = ListOptions()
            listOptions.labelSelector = options.labelSelector
            listOptions.fieldSelector = options.fieldSelector
            let snapshot = try list(type, namespace: namespace, options: listOptions)
            return WatchPlan(initialObjects: snapshot.items, startResourceVersion: snapshot.resourceVersion,
                             sendInitialEventsEndBookmark: options.allowWatchBookmarks, expired: nil)
        }
        guard let rv = UInt64(rvText) else {
            throw Status.badRequest("invalid resource version: \(rvText)")
        }
        if rv < log.evictedThrough {
            return WatchPlan(initialObjects: [], startResourceVersion: rv, sendInitialEventsEndBookmark: false,
                             expired: Status.tooOldResourceVersion(requested: rv, oldest: log.evictedThrough))
        }
        return WatchPlan(initialObjects: [], startResourceVersion: min(rv, resourceVersion), sendInitialEventsEndBookmark: false, expired: nil)
    }

    // MARK: Shapes

    static let metadataOrder = ["name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation",
                                "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "labels",
                                "annotations", "ownerReferences", "finalizers", "managedFields"]

    /// Typed objects in upstream field order; custom resources with sorted keys.
    static func canonical(_ object: JSON, type: ResourceType) -> JSON {
        if type.isCustom { return object.sortedKeys() }
        var out = object.ordered(first: ["kind", "apiVersion", "metadata", "spec", "status"])
        if let metadata = out["metadata"] { out["metadata"] = metadata.ordered(first: metadataOrder) }
        return out
    }

    static func applyDefaults(_ object: JSON, type: ResourceType) -> JSON {
        var o = object
        switch (type.group, type.resource) {
        case ("", "namespaces"):
            let name = o.value(at: ["metadata", "name"])?.stringValue ?? ""
            o.setValue(.string(name), at: ["metadata", "labels", "kubernetes.io/metadata.name"])
            if o.value(at: ["spec", "finalizers"]) == nil { o.setValue(.array([.string("kubernetes")]), at: ["spec", "finalizers"]) }
            o.setValue(.string("Active"), at: ["status", "phase"])
        case ("", "services"):
            if o.value(at: ["spec", "type"]) == nil { o.setValue(.string("ClusterIP"), at: ["spec", "type"]) }
            if o.value(at: ["spec", "sessionAffinity"]) == nil { o.setValue(.string("None"), at: ["spec", "sessionAffinity"]) }
            if o["status"] == nil { o["status"] = .object([("loadBalancer", .object([]))]) }
        case ("", "secrets"):
            if o["type"] == nil { o["type"] = .string("Opaque") }
        case ("apiextensions.k8s.io", "customresourcedefinitions"):
            let names = o.value(at: ["spec", "names"]) ?? .object([])
            var accepted = names
            if accepted["singular"] == nil, let kind = names["kind"]?.stringValue { accepted["singular"] = .string(kind.lowercased()) }
            if accepted["listKind"] == nil, let kind = names["kind"]?.stringValue { accepted["listKind"] = .string(kind + "List") }
            let storage = o.value(at: ["spec", "versions"])?.arrayValue?.first { $0["storage"]?.boolValue == true }?["name"]
                ?? o.value(at: ["spec", "versions"])?.arrayValue?.first?["name"] ?? .string("v1")
            let ts = o.value(at: ["metadata", "creationTimestamp"]) ?? .null
            func condition(_ type: String, _ reason: String, _ message: String) -> JSON {
                .object([("type", .string(type)), ("status", .string("True")), ("lastTransitionTime", ts),
                         ("reason", .string(reason)), ("message", .string(message))])
            }
            o["status"] = .object([
                ("conditions", .array([
                    condition("NamesAccepted", "NoConflicts", "no conflicts found"),
                    condition("Established", "InitialNamesAccepted", "the initial names have been accepted"),
                ])),
                ("acceptedNames", accepted),
                ("storedVersions", .array([storage])),
            ])
        default:
            break
        }
        return o
    }

    // MARK: Validation

    static let dns1035Message = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
    static let dns1123LabelMessage = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
    static let dns1123SubdomainMessage = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"

    static func isLabel(_ s: Substring, alphaStart: Bool) -> Bool {
        guard let first = s.first, let last = s.last, s.count <= 63 else { return false }
        func lowerAlnum(_ c: Character) -> Bool { c.isASCII && (c.isLowercase || c.isNumber) }
        if alphaStart ? !(first.isASCII && first.isLowercase) : !lowerAlnum(first) { return false }
        return lowerAlnum(last) && s.allSatisfy { lowerAlnum($0) || $0 == "-" }
    }

    static func validateName(_ name: String, type: ResourceType) throws(Status) {
        if name.isEmpty {
            throw Status.invalid(kind: type.kind, group: type.group, name: "", causes: [
                Status.Cause(reason: "FieldValueRequired", message: "Required value: name or generateName is required", field: "metadata.name"),
            ])
        }
        let ok: Bool
        let message: String
        switch (type.group, type.resource) {
        case ("", "services"):
            ok = isLabel(Substring(name), alphaStart: true)
            message = dns1035Message
        case ("", "namespaces"):
            ok = isLabel(Substring(name), alphaStart: false)
            message = dns1123LabelMessage
        default:
            ok = name.count <= 253 && name.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { isLabel($0, alphaStart: false) }
            message = dns1123SubdomainMessage
        }
        if !ok {
            let text = "Invalid value: \"\(name)\": \(message)"
            throw Status.invalid(kind: type.kind, group: type.group, name: name, causes: [
                Status.Cause(reason: "FieldValueInvalid", message: text, field: "metadata.name"),
            ])
        }
    }

    static func validateCRD(_ crd: JSON, name: String) throws(Status) {
        let group = crd.value(at: ["spec", "group"])?.stringValue ?? ""
        let plural = crd.value(at: ["spec", "names", "plural"])?.stringValue ?? ""
        if name != "\(plural).\(group)" {
            throw Status.invalid(kind: "CustomResourceDefinition", group: "apiextensions.k8s.io", name: name, causes: [
                Status.Cause(reason: "FieldValueInvalid",
                             message: "Invalid value: \"\(name)\": must be spec.names.plural+\".\"+spec.group", field: "metadata.name"),
            ])
        }
        if ResourceRegistry.types(fromCRD: crd).isEmpty {
            throw Status.invalid(kind: "CustomResourceDefinition", group: "apiextensions.k8s.io", name: name, causes: [
                Status.Cause(reason: "FieldValueRequired", message: "Required value: must have exactly one version marked as storage version",
                             field: "spec.versions"),
            ])
        }
    }
}
