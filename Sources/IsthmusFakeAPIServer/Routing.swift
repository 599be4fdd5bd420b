import IsthmusKubeTypes

/// A parsed query string; repeated keys keep the first value, as Go's `Get`.
public struct Query: Sendable {
    public var values: [String: String]

    public init(_ raw: Substring) {
        var values: [String: String] = [:]
        for pair in raw.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let key = Self.unescape(parts[0])
            let value = parts.count > 1 ? Self.unescape(parts[1]) : ""
            if values[key] == nil { values[key] = value }
        }
        self.values = values
    }

    public subscript(key: String) -> String? { values[key] }

    /// Go's `strconv.ParseBool` spellings.
    public func bool(_ key: String) -> Bool? {
        guard let v = values[key] else { return nil }
        switch v {
        case "1", "t", "T", "true", "TRUE", "True": return true
        case "0", "f", "F", "false", "FALSE", "False", "": return false
        default: return nil
        }
    }

    static func unescape(_ s: Substring) -> String {
        var out: [UInt8] = []
        var bytes = Array(s.utf8)[...]
        while let b = bytes.popFirst() {
            if b == UInt8(ascii: "+") { out.append(0x20); continue }
            if b == UInt8(ascii: "%"), bytes.count >= 2,
               let hi = hexValue(bytes[bytes.startIndex]), let lo = hexValue(bytes[bytes.startIndex + 1]) {
                out.append(hi << 4 | lo)
                bytes = bytes.dropFirst(2)
                continue
            }
            out.append(b)
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func hexValue(_ b: UInt8) -> UInt8? {
        switch b {
        case 0x30...0x39: b - 0x30
        case 0x41...0x46: b - 0x41 + 10
        case 0x61...0x66: b - 0x61 + 10
        default: nil
        }
    }
}

/// What a request path names, decided without I/O.
public enum Route: Sendable, Equatable {
    case version
    case legacyVersions             // /api
    case groupList                  // /apis
    case group(String)              // /apis/G
    case resourceList(group: String, version: String)  // /api/v1, /apis/G/V
    /// `/openapi/v3` (index) and `/openapi/v3/api/v1`, `/openapi/v3/apis/G/V`; "" for the index.
    case openAPIv3(String)
    case health                     // /healthz, /livez, /readyz
    case resource(ResourceRoute)
    /// Unknown resource in a known group/version: Status 404.
    case unknownResource
    /// Anything else: `404 page not found` as text/plain.
    case notFound
}

public struct ResourceRoute: Sendable, Equatable {
    public var type: ResourceType
    public var namespace: String
    public var name: String
    public var subresource: String
    /// `/api/v1/watch/...` legacy watch paths.
    public var watchPath: Bool
}

public enum Router {
    /// Resolves a path (without query) against the served resources.
    public static func route(path: String, registry: ResourceRegistry) -> Route {
        var parts = path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        if parts.isEmpty { return .notFound }
        switch parts[0] {
        case "version" where parts.count == 1: return .version
        case "healthz", "livez", "readyz": return .health
        case "openapi":
            guard parts.count >= 2, parts[1] == "v3" else { return .notFound }
            return .openAPIv3(parts.dropFirst(2).joined(separator: "/"))
        case "api":
            if parts.count == 1 { return .legacyVersions }
            guard parts[1] == "v1" else { return .notFound }
            if parts.count == 2 { return .resourceList(group: "", version: "v1") }
            parts.removeFirst(2)
            return resource(group: "", version: "v1", rest: parts, registry: registry)
        case "apis":
            if parts.count == 1 { return .groupList }
            let group = parts[1]
            guard !registry.versions(of: group).isEmpty else { return .notFound }
            if parts.count == 2 { return .group(group) }
            let version = parts[2]
            guard registry.versions(of: group).contains(version) else { return .notFound }
            if parts.count == 3 { return .resourceList(group: group, version: version) }
            parts.removeFirst(3)
            return resource(group: group, version: version, rest: parts, registry: registry)
        default:
            return .notFound
        }
    }

    static func resource(group: String, version: String, rest: [String], registry: ResourceRegistry) -> Route {
        var parts = rest
        var watchPath = false
        if parts.first == "watch" {
            watchPath = true
            parts.removeFirst()
        }
        var namespace = ""
        // namespaces/{ns}/{resource}... but namespaces/{ns}/status|finalize is the namespace's subresource.
        if parts.count >= 3, parts[0] == "namespaces", parts[2] != "status", parts[2] != "finalize" {
            namespace = parts[1]
            parts.removeFirst(2)
        }
        guard let resourceName = parts.first,
              let type = registry.lookup(group: group, version: version, resource: resourceName)
        else { return .unknownResource }
        if !namespace.isEmpty && !type.namespaced { return .unknownResource }
        let name = parts.count > 1 ? parts[1] : ""
        let subresource = parts.count > 2 ? parts[2] : ""
        if parts.count > 3 { return .unknownResource }
        if !subresource.isEmpty && !(subresource == "status" && type.hasStatus) { return .unknownResource }
        if type.resource == "namespaces" && parts.count == 2 { namespace = "" }
        return .resource(ResourceRoute(type: type, namespace: namespace, name: name, subresource: subresource, watchPath: watchPath))
    }
}

/// How the response body is encoded, from the `Accept` header.
public enum Negotiation: Sendable, Equatable {
    case json
    /// A Table was asked for (kubectl get); served as a Table.
    case table
    /// Nothing we can produce is acceptable (e.g. protobuf only): 406.
    case notAcceptable

    /// kube clients send `application/vnd.kubernetes.protobuf,application/json`;
    /// JSON is the only encoding served, so protobuf-only gets 406.
    public init(accept: String?) {
        guard let accept, !accept.trimmingCharacters(in: " ").isEmpty else {
            self = .json
            return
        }
        var sawJSON = false
        for item in accept.split(separator: ",") {
            let params = item.split(separator: ";").map { $0.trimmingCharacters(in: " ") }
            let media = params.first?.lowercased() ?? ""
            if media == "application/json" {
                if params.contains("as=Table") {
                    if !sawJSON { self = .table; return }
                    continue
                }
                if params.contains(where: { $0.hasPrefix("as=") }) { continue }
                sawJSON = true
                break
            }
            if media == "*/*" || media == "application/*" { sawJSON = true; break }
        }
        self = sawJSON ? .json : .notAcceptable
    }
}
