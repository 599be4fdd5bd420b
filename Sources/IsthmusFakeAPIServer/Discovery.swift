import IsthmusKubeTypes

/// Legacy discovery documents (APIVersions, APIGroupList, APIGroup, APIResourceList).
///
/// Aggregated discovery (`as=APIGroupDiscoveryList`) is answered with these
/// legacy documents and `Content-Type: application/json`; kubectl 1.32 and
/// client-go list `application/json` last in their Accept and fall back to
/// per-group discovery when the answer is not an APIGroupDiscoveryList.
enum Discovery {
    static let verbs: [JSON] = ["create", "delete", "get", "list", "patch", "update", "watch"].map { .string($0) }

    static func version() -> JSON {
        .object([
            ("major", .string("1")), ("minor", .string("32")),
            ("gitVersion", .string("v1.32.0-isthmus.fake")),
            ("gitCommit", .string("0000000000000000000000000000000000000000")),
            ("gitTreeState", .string("clean")), ("buildDate", .string("2026-11-25T00:00:00Z")),
            ("goVersion", .string("go1.23.0")), ("compiler", .string("gc")), ("platform", .string("linux/amd64")),
        ])
    }

    static func apiVersions(serverAddress: String) -> JSON {
        .object([
            ("kind", .string("APIVersions")), ("versions", .array([.string("v1")])),
            ("serverAddressByClientCIDRs", .array([.object([("clientCIDR", .string("0.0.0.0/0")), ("serverAddress", .string(serverAddress))])])),
        ])
    }

    static func groupJSON(_ group: String, registry: ResourceRegistry) -> JSON {
        let versions = registry.versions(of: group)
        let entries: [JSON] = versions.map { .object([("groupVersion", .string("\(group)/\($0)")), ("version", .string($0))]) }
        return .object([("name", .string(group)), ("versions", .array(entries)), ("preferredVersion", entries.first ?? .null)])
    }

    static func groupList(registry: ResourceRegistry) -> JSON {
        .object([("kind", .string("APIGroupList")), ("apiVersion", .string("v1")),
                 ("groups", .array(registry.groups.map { groupJSON($0, registry: registry) }))])
    }

    static func group(_ group: String, registry: ResourceRegistry) -> JSON {
        var g = groupJSON(group, registry: registry)
        if case .object(let members) = g { g = .object([("kind", .string("APIGroup")), ("apiVersion", .string("v1"))] + members) }
        return g
    }

    static func resourceList(group: String, version: String, registry: ResourceRegistry) -> JSON {
        var resources: [JSON] = []
        for t in registry.resources(group: group, version: version).sorted(by: { $0.resource < $1.resource }) {
            var r: [(String, JSON)] = [
                ("name", .string(t.resource)), ("singularName", .string(t.singular)), ("namespaced", .bool(t.namespaced)),
                ("kind", .string(t.kind)), ("verbs", .array(verbs)),
            ]
            if !t.shortNames.isEmpty { r.append(("shortNames", .array(t.shortNames.map { .string($0) }))) }
            if !t.categories.isEmpty { r.append(("categories", .array(t.categories.map { .string($0) }))) }
            resources.append(.object(r))
            if t.hasStatus {
                resources.append(.object([
                    ("name", .string("\(t.resource)/status")), ("singularName", .string("")), ("namespaced", .bool(t.namespaced)),
                    ("kind", .string(t.kind)), ("verbs", .array(["get", "patch", "update"].map { .string($0) })),
                ]))
            }
        }
        var doc: [(String, JSON)] = [("kind", .string("APIResourceList"))]
        if !group.isEmpty { doc.append(("apiVersion", .string("v1"))) }
        doc.append(("groupVersion", .string(group.isEmpty ? version : "\(group)/\(version)")))
        doc.append(("resources", .array(resources)))
        return .object(doc)
    }
}
