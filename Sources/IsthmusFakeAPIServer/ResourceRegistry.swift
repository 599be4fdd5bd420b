import IsthmusKubeTypes

/// The part of a resource that storage is keyed by: versions share objects.
public struct GroupResource: Sendable, Hashable, CustomStringConvertible {
    public var group: String
    public var resource: String
    public init(group: String, resource: String) {
        self.group = group
        self.resource = resource
    }
    /// `services` or `istiomulticlusters.deckhouse.io`, as upstream messages name it.
    public var description: String { group.isEmpty ? resource : "\(resource).\(group)" }
}

/// One served group/version/resource, as discovery describes it.
public struct ResourceType: Sendable, Hashable {
    public var group: String
    public var version: String
    public var resource: String
    public var kind: String
    public var singular: String
    public var namespaced: Bool
    public var shortNames: [String]
    public var categories: [String]
    /// Whether a `/status` subresource exists: the main resource then ignores `status`.
    public var hasStatus: Bool
    /// Custom resources are written with sorted keys, lists keep item kinds, deletes answer Status.
    public var isCustom: Bool
    /// Whether writes bump `metadata.generation` on spec changes.
    public var tracksGeneration: Bool
    /// A CRD version's `additionalPrinterColumns`; nil when it declares none (Tables then show Name and Age).
    public var printerColumns: [PrinterColumn]?

    public init(group: String, version: String, resource: String, kind: String, singular: String? = nil,
                namespaced: Bool, shortNames: [String] = [], categories: [String] = [], hasStatus: Bool = false,
                isCustom: Bool = false, tracksGeneration: Bool = false, printerColumns: [PrinterColumn]? = nil) {
        self.group = group
        self.version = version
        self.resource = resource
        self.kind = kind
        self.singular = singular ?? kind.lowercased()
        self.namespaced = namespaced
        self.shortNames = shortNames
        self.categories = categories
        self.hasStatus = hasStatus
        self.isCustom = isCustom
        self.tracksGeneration = tracksGeneration
        self.printerColumns = printerColumns
    }

    public var groupResource: GroupResource { GroupResource(group: group, resource: resource) }
    public var groupVersion: String { group.isEmpty ? version : "\(group)/\(version)" }
    public var listKind: String { kind + "List" }

    /// Field selectors this resource supports besides metadata.name/namespace.
    var extraFieldSelectors: [String: [String]] {
        switch (group, resource) {
        case ("", "secrets"): ["type": ["type"]]
        case ("", "services"): ["spec.type": ["spec", "type"], "spec.clusterIP": ["spec", "clusterIP"]]
        case ("", "pods"): ["spec.nodeName": ["spec", "nodeName"], "status.phase": ["status", "phase"],
                            "spec.serviceAccountName": ["spec", "serviceAccountName"]]
        case ("", "namespaces"): ["status.phase": ["status", "phase"]]
        default: [:]
        }
    }

    /// The field values a field selector can test, or the 400 for an unsupported one.
    func fieldValues(of object: JSON) -> [String: String] {
        var out: [String: String] = [
            "metadata.name": object.value(at: ["metadata", "name"])?.stringValue ?? "",
        ]
        if namespaced { out["metadata.namespace"] = object.value(at: ["metadata", "namespace"])?.stringValue ?? "" }
        for (field, path) in extraFieldSelectors {
            out[field] = object.value(at: path)?.stringValue ?? ""
        }
        return out
    }

    func validate(_ selector: FieldSelector) throws(Status) {
        for r in selector.requirements {
            if r.field == "metadata.name" || (namespaced && r.field == "metadata.namespace") { continue }
            if r.field == "metadata.namespace" && !namespaced { continue }
            if extraFieldSelectors[r.field] != nil { continue }
            throw Status.badRequest("field label not supported: \(r.field)")
        }
    }
}

/// Every served resource, built-in and from CRDs.
public struct ResourceRegistry: Sendable {
    /// In discovery order.
    public private(set) var types: [ResourceType]

    public init(types: [ResourceType] = ResourceRegistry.builtIn) { self.types = types }

    public static let builtIn: [ResourceType] = [
        ResourceType(group: "", version: "v1", resource: "configmaps", kind: "ConfigMap", namespaced: true, shortNames: ["cm"]),
        ResourceType(group: "", version: "v1", resource: "endpoints", kind: "Endpoints", singular: "endpoints", namespaced: true, shortNames: ["ep"]),
        ResourceType(group: "", version: "v1", resource: "namespaces", kind: "Namespace", namespaced: false, shortNames: ["ns"], hasStatus: true),
        ResourceType(group: "", version: "v1", resource: "nodes", kind: "Node", namespaced: false, shortNames: ["no"], hasStatus: true),
        ResourceType(group: "", version: "v1", resource: "pods", kind: "Pod", namespaced: true, shortNames: ["po"], categories: ["all"], hasStatus: true),
        ResourceType(group: "", version: "v1", resource: "secrets", kind: "Secret", namespaced: true),
        ResourceType(group: "", version: "v1", resource: "serviceaccounts", kind: "ServiceAccount", namespaced: true, shortNames: ["sa"]),
        ResourceType(group: "", version: "v1", resource: "services", kind: "Service", namespaced: true, shortNames: ["svc"], categories: ["all"], hasStatus: true),
        ResourceType(group: "apiextensions.k8s.io", version: "v1", resource: "customresourcedefinitions", kind: "CustomResourceDefinition",
                     namespaced: false, shortNames: ["crd", "crds"], categories: ["api-extensions"], hasStatus: true, tracksGeneration: true),
        ResourceType(group: "discovery.k8s.io", version: "v1", resource: "endpointslices", kind: "EndpointSlice", namespaced: true),
        // apps/v1: Istio's reader role lists ReplicaSets (a pod's owner), and
        // `kubectl create deployment` is the first thing many users type.
        // Stored and watched only: no controller turns a Deployment into Pods.
        ResourceType(group: "apps", version: "v1", resource: "daemonsets", kind: "DaemonSet", namespaced: true, shortNames: ["ds"],
                     categories: ["all"], hasStatus: true, tracksGeneration: true),
        ResourceType(group: "apps", version: "v1", resource: "deployments", kind: "Deployment", namespaced: true, shortNames: ["deploy"],
                     categories: ["all"], hasStatus: true, tracksGeneration: true),
        ResourceType(group: "apps", version: "v1", resource: "replicasets", kind: "ReplicaSet", namespaced: true, shortNames: ["rs"],
                     categories: ["all"], hasStatus: true, tracksGeneration: true),
        ResourceType(group: "apps", version: "v1", resource: "statefulsets", kind: "StatefulSet", namespaced: true, shortNames: ["sts"],
                     categories: ["all"], hasStatus: true, tracksGeneration: true),
    ]

    public static let crdResource = GroupResource(group: "apiextensions.k8s.io", resource: "customresourcedefinitions")
    public static let namespaceResource = GroupResource(group: "", resource: "namespaces")

    public func lookup(group: String, version: String, resource: String) -> ResourceType? {
        types.first { $0.group == group && $0.version == version && $0.resource == resource }
    }

    public func versions(of group: String) -> [String] {
        var seen: [String] = []
        for t in types where t.group == group && !seen.contains(t.version) { seen.append(t.version) }
        return seen
    }

    /// Groups in discovery order, legacy core excluded.
    public var groups: [String] {
        var seen: [String] = []
        for t in types where !t.group.isEmpty && !seen.contains(t.group) { seen.append(t.group) }
        return seen
    }

    public func resources(group: String, version: String) -> [ResourceType] {
        types.filter { $0.group == group && $0.version == version }
    }

    public func isServed(_ gr: GroupResource) -> Bool {
        types.contains { $0.groupResource == gr }
    }

    mutating func register(_ newTypes: [ResourceType]) {
        for t in newTypes {
            types.removeAll { $0.group == t.group && $0.version == t.version && $0.resource == t.resource }
            types.append(t)
        }
    }

    mutating func unregister(_ gr: GroupResource) {
        types.removeAll { $0.groupResource == gr }
    }

    /// The resource types a CRD object serves (empty when it is malformed).
    static func types(fromCRD crd: JSON) -> [ResourceType] {
        guard let spec = crd["spec"], let group = spec["group"]?.stringValue,
              let names = spec["names"], let plural = names["plural"]?.stringValue,
              let kind = names["kind"]?.stringValue
        else { return [] }
        let namespaced = spec["scope"]?.stringValue != "Cluster"
        let singular = names["singular"]?.stringValue ?? kind.lowercased()
        let shortNames = names["shortNames"]?.arrayValue?.compactMap(\.stringValue) ?? []
        let categories = names["categories"]?.arrayValue?.compactMap(\.stringValue) ?? []
        var out: [ResourceType] = []
        for version in spec["versions"]?.arrayValue ?? [] {
            guard let name = version["name"]?.stringValue, version["served"]?.boolValue ?? true else { continue }
            let hasStatus = version.value(at: ["subresources", "status"]) != nil
            out.append(ResourceType(group: group, version: name, resource: plural, kind: kind, singular: singular,
                                    namespaced: namespaced, shortNames: shortNames, categories: categories,
                                    hasStatus: hasStatus, isCustom: true, tracksGeneration: true,
                                    printerColumns: PrinterColumn.columns(fromCRDVersion: version)))
        }
        return out
    }
}
