import IsthmusKubeTypes

/// Just enough OpenAPI v3 for kubectl: an index of group-versions and, per
/// group-version, the PATCH operations with their GVK and the
/// `fieldValidation` query parameter. kubectl's `--validate=strict` (the
/// default for create and apply) looks for exactly that to decide the server
/// validates fields itself; with it present, kubectl needs no schemas. There
/// are no component schemas, so client-side apply computes strategic patches
/// from its compiled-in types (and merge patches for custom resources).
enum OpenAPI {
    static func groupVersions(_ registry: ResourceRegistry) -> [String] {
        var out = ["api/v1"]
        for g in registry.groups {
            for v in registry.versions(of: g) { out.append("apis/\(g)/\(v)") }
        }
        return out
    }

    static func index(_ registry: ResourceRegistry) -> JSON {
        var paths: [(String, JSON)] = []
        for gv in groupVersions(registry) {
            let hash = fingerprint(document(gv, registry)?.serialized() ?? "")
            paths.append((gv, .object([("serverRelativeURL", .string("/openapi/v3/\(gv)?hash=\(hash)"))])))
        }
        return .object([("paths", .object(paths))])
    }

    /// The document for `api/v1` or `apis/G/V`, nil when not served.
    static func document(_ gv: String, _ registry: ResourceRegistry) -> JSON? {
        let parts = gv.split(separator: "/").map(String.init)
        let group: String, version: String
        if parts.count == 2, parts[0] == "api" { group = ""; version = parts[1] }
        else if parts.count == 3, parts[0] == "apis" { group = parts[1]; version = parts[2] }
        else { return nil }
        let types = registry.resources(group: group, version: version)
        guard !types.isEmpty else { return nil }
        var paths: [(String, JSON)] = []
        let parameters: JSON = .array(["dryRun", "fieldManager", "fieldValidation", "force"].map {
            .object([("name", .string($0)), ("in", .string("query")), ("schema", .object([("type", .string($0 == "force" ? "boolean" : "string"))]))])
        })
        for t in types.sorted(by: { $0.resource < $1.resource }) {
            let prefix = group.isEmpty ? "/api/\(version)" : "/apis/\(group)/\(version)"
            let path = t.namespaced ? "\(prefix)/namespaces/{namespace}/\(t.resource)/{name}" : "\(prefix)/\(t.resource)/{name}"
            let gvk: JSON = .object([("group", .string(group)), ("kind", .string(t.kind)), ("version", .string(version))])
            paths.append((path, .object([("patch", .object([
                ("description", .string("partially update the specified \(t.kind)")),
                ("parameters", parameters),
                ("responses", .object([("200", .object([("description", .string("OK"))]))])),
                ("x-kubernetes-action", .string("patch")),
                ("x-kubernetes-group-version-kind", gvk),
            ]))])))
        }
        return .object([
            ("openapi", .string("3.0.0")),
            ("info", .object([("title", .string("Kubernetes")), ("version", .string("v1.32.0"))])),
            ("paths", .object(paths)),
            ("components", .object([("schemas", .object([]))])),
        ])
    }

    /// 128 upper-case hex digits, like upstream's SHA-512 hashes (FNV here: only equality matters).
    static func fingerprint(_ text: String) -> String {
        var out = ""
        var seed: UInt64 = 0xcbf2_9ce4_8422_2325
        for round in 0..<8 {
            var h = seed ^ UInt64(round)
            for b in text.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
            seed = h
            let hex = String(h, radix: 16, uppercase: true)
            out += String(repeating: "0", count: 16 - hex.count) + hex
        }
        return out
    }
}
