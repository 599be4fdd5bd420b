/// What a Kubernetes API request asks for, derived from its method and request
/// target exactly as kube-apiserver's `RequestInfo` derives it
/// (staging/src/k8s.io/apiserver/pkg/endpoints/request/requestinfo.go).
///
/// The authorizer decides on these attributes, and the proxy forwards `path`
/// (the canonical, decoded path) and `query` verbatim, so what was decided on
/// is exactly what the API server sees.
public struct RequestAttributes: Sendable, Hashable {
    /// True for `/api/...` and `/apis/...` requests naming a resource; false for
    /// discovery, `/version`, `/openapi/...` and every other path.
    public var isResourceRequest: Bool
    /// The decoded, canonical path (no `%`, no dot segments); what is forwarded.
    public var path: String
    /// The raw query string without the leading `?` (empty when absent); forwarded as is.
    public var query: String
    /// For resource requests a Kubernetes verb (`get`, `list`, `watch`, `create`, …,
    /// `proxy` for the legacy `/proxy/` prefix, and empty for a method the API server
    /// does not map, e.g. `OPTIONS`); for non-resource requests the lowercased HTTP
    /// method (HEAD is reported as `get`).
    public var verb: Verb
    /// `api` or `apis` for resource requests; empty otherwise.
    public var apiPrefix: String
    /// Empty for the core group (`/api/v1`).
    public var apiGroup: String
    public var apiVersion: String
    /// Empty for cluster-scoped requests. For `/api/v1/namespaces/NAME` it is NAME,
    /// as the API server sets it.
    public var namespace: String
    public var resource: String
    public var subresource: String
    /// The object name from the path, or from `fieldSelector=metadata.name=X` on list/watch.
    public var name: String

    public init(
        isResourceRequest: Bool, path: String, query: String = "", verb: Verb,
        apiPrefix: String = "", apiGroup: String = "", apiVersion: String = "",
        namespace: String = "", resource: String = "", subresource: String = "", name: String = ""
    ) {
        self.isResourceRequest = isResourceRequest
        self.path = path
        self.query = query
        self.verb = verb
        self.apiPrefix = apiPrefix
        self.apiGroup = apiGroup
        self.apiVersion = apiVersion
        self.namespace = namespace
        self.resource = resource
        self.subresource = subresource
        self.name = name
    }

    /// The request target to forward upstream: `path` plus `?query` when present.
    public var forwardTarget: String { query.isEmpty ? path : path + "?" + query }
}

/// A Kubernetes authorization verb. A struct rather than a closed enum because
/// non-resource requests carry any lowercased HTTP method.
public struct Verb: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    public var rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public init(_ rawValue: String) { self.rawValue = rawValue }
    public var description: String { rawValue }

    public static let get = Verb("get")
    public static let list = Verb("list")
    public static let watch = Verb("watch")
    public static let create = Verb("create")
    public static let update = Verb("update")
    public static let patch = Verb("patch")
    public static let delete = Verb("delete")
    public static let deletecollection = Verb("deletecollection")

    /// The only verbs Isthmus ever allows: it is a read-only proxy by construction.
    public static let readOnly: Set<Verb> = [.get, .list, .watch]
    public var isReadOnly: Bool { Verb.readOnly.contains(self) }
}
