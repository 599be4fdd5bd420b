import IsthmusRequestInfo

/// What the proxy knows about a request before any byte of its body: the part
/// every admission stage decides on. Built by the HTTP/1.1 and HTTP/2 front
/// ends alike, so the stages never see a protocol difference.
public struct ProxyRequestHead: Sendable {
    /// The method as received (HTTP methods are case-sensitive).
    public var method: String
    /// The request target (`/path?query`); for HTTP/2 the `:path` pseudo-header.
    public var target: String
    /// Header fields in order, names as received.
    public var headers: [(name: String, value: String)]

    public init(method: String, target: String, headers: [(name: String, value: String)]) {
        self.method = method
        self.target = target
        self.headers = headers
    }
}

/// Bounds on what a request head may carry. A read-only Kubernetes client sends
/// a handful of short headers; anything far beyond that is an attack or a bug.
public struct ProxyRequestLimits: Sendable, Hashable {
    /// Header fields at most.
    public var maxHeaderCount = 64
    /// Sum of header name and value bytes at most.
    public var maxHeaderBytes = 16 * 1024

    public init() {}
}
