import IsthmusPolicy
import IsthmusRequestInfo
import IsthmusTrust

/// A request that passed every stage: what to forward, and who asked.
public struct AdmittedRequest: Sendable {
    public var attributes: RequestAttributes
    /// The calling peer's cluster UUID (from the verified token's `sub`).
    public var peer: String
    /// The rule that allowed it, for the audit trail.
    public var rule: RuleReference?
    /// The policy's reason for allowing it (`allowed by FILE:…`), built once per rule when the policy loaded.
    public var reason: String
    /// The client's headers that may go upstream (see ``ForwardedHeaders``).
    /// The proxy adds its own `Authorization`; the client's never leaves.
    public var forwardHeaders: [(name: String, value: String)]
    /// `path?query` exactly as parsed: what the API server will see.
    public var forwardTarget: String { attributes.forwardTarget }
}

/// The client headers the proxy forwards: an allowlist, not a denylist, so a
/// header nobody thought about (a new `Impersonate-Uid`, `Cookie`, a
/// hop-by-hop field) is dropped by default.
///
/// - `Accept` carries protobuf, Table and aggregated-discovery negotiation.
/// - `If-None-Match` / `If-Modified-Since`: discovery and OpenAPI caching.
/// - `Kubectl-Command` / `Kubectl-Session` appear in the API server's audit log.
public enum ForwardedHeaders {
    public static let names: Set<String> = [
        "accept", "accept-encoding", "accept-language", "user-agent", "content-type",
        "if-none-match", "if-modified-since", "kubectl-command", "kubectl-session",
    ]
}

/// The proxy's admission of one request, DESIGN §3 steps 2–4 in order,
/// cheapest rejection first: request shape, then the token, then RequestInfo
/// and the allowlist. Pure: time, keys and policy come in as values, so every
/// rule is tested without a socket; the channel handlers only call ``admit``.
///
/// A snapshot: a reload of peers or policy builds a new pipeline and swaps it
/// in atomically, so one request is always decided against one state.
public struct AdmissionPipeline: Sendable {
    public let verifier: TokenVerifier
    public let policy: PolicySet
    public let cache: VerifiedTokenCache
    public let limits: ProxyRequestLimits

    public init(verifier: TokenVerifier, policy: PolicySet, cache: VerifiedTokenCache,
                limits: ProxyRequestLimits = ProxyRequestLimits()) {
        self.verifier = verifier
        self.policy = policy
        self.cache = cache
        self.limits = limits
    }

    public func admit(_ head: ProxyRequestHead, now: Int64) throws(RequestRejection) -> AdmittedRequest {
        let shaped = try RequestShape.check(head, limits: limits)
        let verified = try authenticate(shaped.authorization, now: now)
        let decision = policy.decide(shaped.attributes, peer: verified.peer)
        guard decision.allowed else { throw .forbidden(shaped.attributes, peer: verified.peer) }
        return AdmittedRequest(attributes: shaped.attributes, peer: verified.peer, rule: decision.rule, reason: decision.reason,
                               forwardHeaders: shaped.forwardHeaders)
    }

    private func authenticate(_ authorization: RequestShape.Authorization, now: Int64) throws(RequestRejection) -> VerifiedToken {
        let value: String
        switch authorization {
        case .none: throw .unauthorized(.missingCredentials)
        case .several: throw .unauthorized(.multipleAuthorization)
        case .one(let header): value = header
        }
        guard let token = BearerToken(authorizationHeader: value) else {
            throw .unauthorized(.malformedAuthorization)
        }
        do {
            return try verifier.verify(token, scope: .api, now: now, cache: cache)
        } catch {
            throw .unauthorized(.token(error))
        }
    }
}

/// Stage 1: refuse what a read-only Kubernetes client never sends.
enum RequestShape {
    enum Authorization: Sendable {
        case none
        case one(String)
        case several
    }

    struct Shaped: Sendable {
        var attributes: RequestAttributes
        var authorization: Authorization
        var forwardHeaders: [(name: String, value: String)]
    }

    static func check(_ head: ProxyRequestHead, limits: ProxyRequestLimits) throws(RequestRejection) -> Shaped {
        // Bounds first: they cost a count and a sum.
        guard head.headers.count <= limits.maxHeaderCount else { throw .badRequest(.tooManyHeaders) }
        var headerBytes = 0
        for header in head.headers { headerBytes += header.name.utf8.count + header.value.utf8.count }
        guard headerBytes <= limits.maxHeaderBytes else { throw .badRequest(.headersTooLarge) }

        let attributes: RequestAttributes
        do {
            attributes = try RequestAttributes(method: head.method, target: head.target)
        } catch {
            throw .badRequest(.target(error))
        }
        // Exactly GET and HEAD (methods are case-sensitive): the method is
        // checked before the body so `kubectl delete`, which sends one, hears
        // the clearer answer.
        guard head.method == "GET" || head.method == "HEAD" else {
            throw .readOnly(method: head.method, attributes)
        }

        var authorization = Authorization.none
        var forward: [(name: String, value: String)] = []
        forward.reserveCapacity(head.headers.count)
        for header in head.headers {
            let name = header.name.lowercasedIfNeeded()
            switch name {
            case "authorization":
                if case .none = authorization { authorization = .one(header.value) } else { authorization = .several }
                continue
            case "upgrade":
                throw .badRequest(.upgrade)
            case "connection":
                // `Connection: Upgrade` (any case, any position in the list).
                if header.value.split(separator: ",").contains(where: {
                    $0.trimmingSpaces().lowercased() == "upgrade"
                }) {
                    throw .badRequest(.upgrade)
                }
            case "http2-settings":
                throw .badRequest(.http2Settings)
            case "transfer-encoding":
                throw .badRequest(.requestBody)
            case "content-length":
                if header.value.trimmingSpaces() != "0" { throw .badRequest(.requestBody) }
            default:
                if name.hasPrefix("impersonate-") { throw .impersonation }
            }
            if ForwardedHeaders.names.contains(name) { forward.append((name, header.value)) }
        }
        return Shaped(attributes: attributes, authorization: authorization, forwardHeaders: forward)
    }
}

extension String {
    /// Lowercased, without the copy when it already is (HTTP/2 field names
    /// always are): header names are lowercased on every request.
    func lowercasedIfNeeded() -> String {
        utf8.contains(where: { $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") || $0 >= 0x80 }) ? lowercased() : self
    }
}

extension StringProtocol {
    /// Without leading and trailing spaces and tabs (HTTP's optional whitespace).
    func trimmingSpaces() -> Substring {
        var s = Substring(self)
        while let first = s.first, first == " " || first == "\t" { s = s.dropFirst() }
        while let last = s.last, last == " " || last == "\t" { s = s.dropLast() }
        return s
    }
}
