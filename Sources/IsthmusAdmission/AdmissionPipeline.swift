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
    /// What the API server will see: `path?query` exactly as parsed, with the
    /// exclusions of ``ProtectedObjects`` in front of a list's or watch's selectors.
    public var forwardTarget: String
    /// A get of a Secret by name: its type and labels are checked upstream
    /// (``ProtectedObjects/judgeSecret(type:labels:)``) before it is forwarded.
    public var checkSecretFirst: Bool
    /// The client's token, kept (in memory only) so an open watch can be
    /// decided again when peers or policy change (``AdmissionPipeline/redecide(_:now:)``).
    /// Never forwarded, never logged (its description is redacted).
    public var token: BearerToken
    /// The first Unix second the token is no longer accepted (`exp` + leeway):
    /// a watch opened with it ends then.
    public var tokenValidUntil: Int64
}

/// Why an open watch was ended by the proxy before its client or the API
/// server ended it: its access was taken away. Bounded metric labels.
public enum WatchRevocation: String, Sendable, Hashable, CaseIterable {
    /// The peer is no longer in the trusted peers file.
    case peerRemoved = "peer_removed"
    /// The peer is still trusted, but no key of it verifies the token any more.
    case keyRevoked = "key_revoked"
    /// The policy no longer allows the request.
    case policy
    /// The request now falls under ``ProtectedObjects``.
    case protected
    /// The token reached `exp` (plus the leeway).
    case tokenExpired = "token_expired"
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
    /// What is never served, whatever the policy (DESIGN §3 step 4b).
    public let protected: ProtectedObjects

    public init(verifier: TokenVerifier, policy: PolicySet, cache: VerifiedTokenCache,
                limits: ProxyRequestLimits = ProxyRequestLimits(), protected: ProtectedObjects = ProtectedObjects()) {
        self.verifier = verifier
        self.policy = policy
        self.cache = cache
        self.limits = limits
        self.protected = protected
    }

    /// The same pipeline with other peers or another policy (a reload).
    public func replacing(verifier: TokenVerifier? = nil, policy: PolicySet? = nil) -> AdmissionPipeline {
        AdmissionPipeline(verifier: verifier ?? self.verifier, policy: policy ?? self.policy, cache: cache, limits: limits,
                          protected: protected)
    }

    public func admit(_ head: ProxyRequestHead, now: Int64) throws(RequestRejection) -> AdmittedRequest {
        let shaped = try RequestShape.check(head, limits: limits)
        let (token, verified) = try authenticate(shaped.authorization, now: now)
        let attributes = shaped.attributes
        // Protected objects first, so no policy can reach them.
        let (forwardTarget, checkSecretFirst) = try protectedForward(attributes, peer: verified.peer)
        let decision = policy.decide(attributes, peer: verified.peer)
        guard decision.allowed else { throw .forbidden(attributes, peer: verified.peer) }
        return AdmittedRequest(attributes: attributes, peer: verified.peer, rule: decision.rule, reason: decision.reason,
                               forwardHeaders: shaped.forwardHeaders, forwardTarget: forwardTarget,
                               checkSecretFirst: checkSecretFirst, token: token,
                               tokenValidUntil: verified.expiresAt &+ verifier.leewaySeconds)
    }

    /// Decides an open watch again against this pipeline's peers and policy:
    /// nil when it may go on, else why it must end. The same checks as
    /// ``admit(_:now:)`` minus the request's shape (which cannot change).
    public func redecide(_ watch: AdmittedRequest, now: Int64) -> WatchRevocation? {
        do {
            _ = try verifier.verify(watch.token, scope: .api, now: now, cache: cache)
        } catch {
            switch error {
            case .expired: return .tokenExpired
            case .unknownPeer: return .peerRemoved
            default: return .keyRevoked
            }
        }
        // Refused now, or forwarded otherwise than when it opened.
        guard let forwarding = try? protectedForward(watch.attributes, peer: watch.peer),
              forwarding.target == watch.forwardTarget else {
            return .protected
        }
        return policy.decide(watch.attributes, peer: watch.peer).allowed ? nil : .policy
    }

    /// What ``ProtectedObjects`` makes of a request: refused, or the target
    /// to forward and whether a Secret must be checked first.
    private func protectedForward(_ attributes: RequestAttributes, peer: String) throws(RequestRejection)
        -> (target: String, checkSecretFirst: Bool)
    {
        switch protected.decide(attributes) {
        case .unrestricted:
            return (attributes.forwardTarget, false)
        case .refuse(let reason):
            throw .protected(attributes, peer: peer, reason, isthmusNamespace: protected.isthmusNamespace)
        case .narrow(let narrowing):
            let target = narrowing.target(for: attributes)
            // Only what the proxy itself would accept is forwarded (found by FuzzProtectedObjects:
            // a target just under the limit went over it with the exclusions).
            guard target.utf8.count <= RequestInfoLimits.maxTargetBytes else { throw .badRequest(.target(.targetTooLong)) }
            return (target, false)
        case .checkSecretFirst:
            return (attributes.forwardTarget, true)
        }
    }

    private func authenticate(_ authorization: RequestShape.Authorization, now: Int64) throws(RequestRejection)
        -> (BearerToken, VerifiedToken)
    {
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
            return (token, try verifier.verify(token, scope: .api, now: now, cache: cache))
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
            guard isFieldName(header.name), isFieldValue(header.value) else { throw .badRequest(.invalidHeaderField) }
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

    /// RFC 9110 §5.6.2 `token`: the only bytes a field name may hold (found by
    /// FuzzAdmission: a name with a non-ASCII byte was lowercased and matched).
    static func isFieldName(_ name: String) -> Bool {
        !name.utf8.isEmpty && name.utf8.allSatisfy { tokenBytes[Int($0)] }
    }

    /// RFC 9110 §5.5: visible characters, obs-text, and spaces or tabs; no CR,
    /// LF, NUL or other control character.
    static func isFieldValue(_ value: String) -> Bool {
        value.utf8.allSatisfy { $0 == 0x09 || ($0 >= 0x20 && $0 != 0x7F) }
    }

    private static let tokenBytes: [Bool] = (0..<256).map { byte in
        switch UInt8(byte) {
        case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"):
            true
        default:
            "!#$%&'*+-.^_`|~".utf8.contains(UInt8(byte))
        }
    }
}

extension String {
    /// Lowercased, without the copy when it already is (HTTP/2 field names
    /// always are): header names are lowercased on every request.
    package func lowercasedIfNeeded() -> String {
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
