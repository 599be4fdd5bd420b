import IsthmusKubeTypes

/// Labels and annotations on what the controller owns.
public enum ControllerLabels {
    /// On every object this controller writes; only such objects are ever
    /// updated or deleted by it.
    public static let managedBy = "app.kubernetes.io/managed-by"
    public static let managedByValue = "isthmus-controller"
    /// Label `"true"` on the remote secrets this controller renders: what it
    /// lists, and deletes when their IstioMulticluster is gone.
    public static let remoteSecret = "isthmus.io/remote-secret"
    /// Annotation on a remote secret: the IstioMulticluster it was rendered
    /// for (an annotation, as names may exceed a label value's 63 bytes).
    public static let istioMulticlusterAnnotation = "isthmus.io/istio-multicluster"
    /// What istiod's secret controller selects remote secrets by.
    public static let istioMultiCluster = "istio/multiCluster"
    /// Tells istiod the cluster ID of the kubeconfig in the Secret.
    public static let istioClusterAnnotation = "networking.istio.io/cluster"
}

/// A `v1` Secret, reduced to what the controller reads and writes.
public struct SecretObject: Sendable, Hashable {
    public var namespace: String
    public var name: String
    public var labels: [String: String]
    public var annotations: [String: String]
    public var type: String
    /// Decoded values of `data`.
    public var data: [String: [UInt8]]
    /// Set on objects read from the server; sent back on update for
    /// optimistic concurrency.
    public var resourceVersion: String?

    /// From parts; `init?(json:)` reads an object from the API server.
    public init(namespace: String, name: String, labels: [String: String] = [:], annotations: [String: String] = [:],
                type: String = "Opaque", data: [String: [UInt8]], resourceVersion: String? = nil) {
        self.namespace = namespace
        self.name = name
        self.labels = labels
        self.annotations = annotations
        self.type = type
        self.data = data
        self.resourceVersion = resourceVersion
    }

    /// From the object as the API server returns it; nil when it is not a
    /// readable Secret (no name, or `data` values that are not Base64).
    public init?(json: JSON) {
        guard let name = json.value(at: ["metadata", "name"])?.stringValue else { return nil }
        var data: [String: [UInt8]] = [:]
        for (key, value) in json["data"]?.objectValue ?? [] {
            guard let text = value.stringValue, let bytes = Base64.decodeStandard(text.utf8) else { return nil }
            data[key] = bytes
        }
        self.init(
            namespace: json.value(at: ["metadata", "namespace"])?.stringValue ?? "", name: name,
            labels: json.value(at: ["metadata", "labels"])?.stringMap ?? [:],
            annotations: json.value(at: ["metadata", "annotations"])?.stringMap ?? [:],
            type: json["type"]?.stringValue ?? "Opaque", data: data,
            resourceVersion: json.value(at: ["metadata", "resourceVersion"])?.stringValue)
    }

    /// The body for create or update: keys sorted so equal objects are
    /// equal bytes.
    public var json: JSON {
        var metadata: [(String, JSON)] = [("name", .string(name)), ("namespace", .string(namespace))]
        if let resourceVersion { metadata.append(("resourceVersion", .string(resourceVersion))) }
        if !labels.isEmpty { metadata.append(("labels", .sortedStringMap(labels))) }
        if !annotations.isEmpty { metadata.append(("annotations", .sortedStringMap(annotations))) }
        return .object([
            ("apiVersion", .string("v1")), ("kind", .string("Secret")), ("metadata", .object(metadata)),
            ("type", .string(type)),
            ("data", .object(data.keys.sorted().map { ($0, .string(Base64.encodeStandard(data[$0] ?? []))) })),
        ])
    }

    /// Whether this controller wrote it, so may update or delete it.
    public var isManagedByController: Bool { labels[ControllerLabels.managedBy] == ControllerLabels.managedByValue }
}

/// A `v1` ConfigMap, reduced to what the controller reads and writes.
public struct ConfigMapObject: Sendable, Hashable {
    public var namespace: String
    public var name: String
    public var labels: [String: String]
    public var annotations: [String: String]
    public var data: [String: String]
    public var resourceVersion: String?

    /// From parts; `init?(json:)` reads an object from the API server.
    public init(namespace: String, name: String, labels: [String: String] = [:], annotations: [String: String] = [:],
                data: [String: String], resourceVersion: String? = nil) {
        self.namespace = namespace
        self.name = name
        self.labels = labels
        self.annotations = annotations
        self.data = data
        self.resourceVersion = resourceVersion
    }

    /// From the object as the API server returns it; nil without a name.
    public init?(json: JSON) {
        guard let name = json.value(at: ["metadata", "name"])?.stringValue else { return nil }
        self.init(
            namespace: json.value(at: ["metadata", "namespace"])?.stringValue ?? "", name: name,
            labels: json.value(at: ["metadata", "labels"])?.stringMap ?? [:],
            annotations: json.value(at: ["metadata", "annotations"])?.stringMap ?? [:],
            data: json["data"]?.stringMap ?? [:],
            resourceVersion: json.value(at: ["metadata", "resourceVersion"])?.stringValue)
    }

    /// The body for create or update, keys sorted.
    public var json: JSON {
        var metadata: [(String, JSON)] = [("name", .string(name)), ("namespace", .string(namespace))]
        if let resourceVersion { metadata.append(("resourceVersion", .string(resourceVersion))) }
        if !labels.isEmpty { metadata.append(("labels", .sortedStringMap(labels))) }
        if !annotations.isEmpty { metadata.append(("annotations", .sortedStringMap(annotations))) }
        return .object([
            ("apiVersion", .string("v1")), ("kind", .string("ConfigMap")), ("metadata", .object(metadata)),
            ("data", .sortedStringMap(data)),
        ])
    }

    /// Whether this controller wrote it, so may update it.
    public var isManagedByController: Bool { labels[ControllerLabels.managedBy] == ControllerLabels.managedByValue }
}

extension JSON {
    /// RFC 7386 JSON merge patch, which is what a `merge-patch+json` PATCH
    /// of a custom resource's status does: objects merge member by member,
    /// `null` deletes, anything else (arrays included) replaces.
    public func mergePatched(with patch: JSON) -> JSON {
        guard case .object(let members) = patch else { return patch }
        var result: JSON = isObject ? self : .object([])
        for (key, value) in members {
            if case .null = value {
                result[key] = nil
            } else {
                result[key] = (result[key] ?? .null).mergePatched(with: value)
            }
        }
        return result
    }

    static func sortedStringMap(_ map: [String: String]) -> JSON {
        .object(map.keys.sorted().map { ($0, .string(map[$0] ?? "")) })
    }
}

/// Whether `current` already is what `desired` asks for: same type and
/// data, and every label and annotation we set present with our value.
/// Labels others added do not count as a difference.
func satisfies(_ current: SecretObject, _ desired: SecretObject) -> Bool {
    current.type == desired.type && current.data == desired.data
        && desired.labels.allSatisfy { current.labels[$0.key] == $0.value }
        && desired.annotations.allSatisfy { current.annotations[$0.key] == $0.value }
}

/// Only the keys we write are compared, so the mesh networks may live in a
/// ConfigMap shared with other settings (Istio's own `istio` ConfigMap).
func satisfies(_ current: ConfigMapObject, _ desired: ConfigMapObject) -> Bool {
    desired.data.allSatisfy { current.data[$0.key] == $0.value }
        && desired.labels.allSatisfy { current.labels[$0.key] == $0.value }
        && desired.annotations.allSatisfy { current.annotations[$0.key] == $0.value }
}
