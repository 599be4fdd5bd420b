/// A Kubernetes resource type as the REST paths name it: group, version,
/// plural resource and whether objects live in a namespace.
public struct KubeResource: Sendable, Hashable, CustomStringConvertible {
    /// API group; empty for the core group (`/api/v1`).
    public var group: String
    public var version: String
    /// The plural, lower-case resource name (`configmaps`).
    public var resource: String
    public var namespaced: Bool

    public init(group: String, version: String, resource: String, namespaced: Bool) {
        self.group = group
        self.version = version
        self.resource = resource
        self.namespaced = namespaced
    }

    /// `v1` or `deckhouse.io/v1alpha1`, as objects carry it in `apiVersion`.
    public var apiVersion: String { group.isEmpty ? version : "\(group)/\(version)" }

    /// `configmaps` or `istiomulticlusters.deckhouse.io`.
    public var description: String { group.isEmpty ? resource : "\(resource).\(group)" }

    /// The collection path: `/api/v1/namespaces/NS/configmaps`, or the
    /// all-namespaces / cluster-scoped form when `namespace` is nil.
    public func collectionPath(namespace: String?) -> String {
        let prefix = group.isEmpty ? "/api/\(version)" : "/apis/\(group)/\(version)"
        if namespaced, let namespace {
            return "\(prefix)/namespaces/\(KubePath.escape(namespace))/\(resource)"
        }
        return "\(prefix)/\(resource)"
    }

    /// The object path, with an optional subresource (`status`).
    public func objectPath(namespace: String?, name: String, subresource: String? = nil) -> String {
        var path = collectionPath(namespace: namespace) + "/" + KubePath.escape(name)
        if let subresource, !subresource.isEmpty { path += "/" + subresource }
        return path
    }
}

extension KubeResource {
    public static let configMaps = KubeResource(group: "", version: "v1", resource: "configmaps", namespaced: true)
    public static let secrets = KubeResource(group: "", version: "v1", resource: "secrets", namespaced: true)
    public static let services = KubeResource(group: "", version: "v1", resource: "services", namespaced: true)
    public static let pods = KubeResource(group: "", version: "v1", resource: "pods", namespaced: true)
    public static let nodes = KubeResource(group: "", version: "v1", resource: "nodes", namespaced: false)
    public static let namespaces = KubeResource(group: "", version: "v1", resource: "namespaces", namespaced: false)
    public static let leases = KubeResource(group: "coordination.k8s.io", version: "v1", resource: "leases", namespaced: true)
    /// The cluster-scoped `IstioMulticluster` custom resource (Deckhouse's group).
    public static let istioMulticlusters = KubeResource(
        group: "deckhouse.io", version: "v1alpha1", resource: "istiomulticlusters", namespaced: false)
}

enum KubePath {
    /// Percent-encodes a path segment or query value (RFC 3986 unreserved kept).
    static func escape(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."),
                 UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                let hex = Array("0123456789ABCDEF".unicodeScalars)
                out.unicodeScalars.append("%")
                out.unicodeScalars.append(hex[Int(byte >> 4)])
                out.unicodeScalars.append(hex[Int(byte & 0xF)])
            }
        }
        return out
    }

    /// `?a=1&b=2` from ordered pairs, values escaped; empty when there are none.
    static func query(_ items: [(String, String)]) -> String {
        guard !items.isEmpty else { return "" }
        return "?" + items.map { "\($0.0)=\(escape($0.1))" }.joined(separator: "&")
    }
}
