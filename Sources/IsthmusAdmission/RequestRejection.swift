import IsthmusPolicy
import IsthmusRequestInfo
import IsthmusTrust

/// Why a request's shape was refused before authentication: things a
/// read-only Kubernetes client never sends.
public enum ShapeViolation: Sendable, Hashable, CustomStringConvertible {
    case target(TargetRejection)
    /// `Upgrade` or `Connection: upgrade`: exec, attach and port-forward
    /// streams ride on upgrades, and a proxy must never switch protocols for a peer.
    case upgrade
    /// `HTTP2-Settings`: an h2c upgrade attempt.
    case http2Settings
    /// A body on a read: `Content-Length` above 0 or any `Transfer-Encoding`.
    case requestBody
    case tooManyHeaders
    case headersTooLarge
    /// A field name that is not an RFC 9110 token, or a value holding CR, LF,
    /// NUL or another control character: never forwarded, so no front end's
    /// leniency can split or smuggle a header into the upstream request.
    case invalidHeaderField

    public var description: String {
        switch self {
        case .target(let rejection): rejection.description
        case .upgrade: "protocol upgrades are not allowed through this proxy"
        case .http2Settings: "HTTP2-Settings (an h2c upgrade) is not allowed"
        case .requestBody: "a read request must not carry a body"
        case .tooManyHeaders: "the request has too many header fields"
        case .headersTooLarge: "the request header fields are too large"
        case .invalidHeaderField: "a header field name or value is not valid HTTP (RFC 9110 tokens and visible characters)"
        }
    }

    /// A bounded label for metrics.
    public var metricLabel: String {
        switch self {
        case .target: "target"
        case .upgrade: "upgrade"
        case .http2Settings: "http2_settings"
        case .requestBody: "body"
        case .tooManyHeaders, .headersTooLarge: "header_limits"
        case .invalidHeaderField: "invalid_header"
        }
    }
}

/// Why authentication failed. The client only ever hears "Unauthorized", as
/// from the API server (no oracle for token forgers); the reason is for logs.
public enum AuthenticationFailure: Sendable, Hashable, CustomStringConvertible {
    case missingCredentials
    /// Not `Bearer <token>`.
    case malformedAuthorization
    /// More than one `Authorization` field: which one counts would be ambiguous.
    case multipleAuthorization
    case token(TokenFailure)

    public var description: String {
        switch self {
        case .missingCredentials: "no Authorization header"
        case .malformedAuthorization: "the Authorization header is not \"Bearer <token>\""
        case .multipleAuthorization: "more than one Authorization header"
        case .token(let failure): failure.description
        }
    }
}

/// A request the proxy refuses, with everything needed to answer it in the
/// API server's `Status` shape. No case carries a token.
public enum RequestRejection: Error, Sendable, Hashable {
    case badRequest(ShapeViolation)
    /// A method other than GET and HEAD: refused before authentication,
    /// whatever the policy says, because Isthmus is read-only.
    case readOnly(method: String, RequestAttributes)
    /// `Impersonate-*` (kubectl `--as`): would make the API server act as
    /// another user with the proxy's own credentials. A 403, as the API server
    /// answers an impersonation it does not allow; refused before authentication.
    case impersonation
    case unauthorized(AuthenticationFailure)
    /// The policy did not allow the request.
    case forbidden(RequestAttributes, peer: String)
    /// The request names something no peer is ever served (``ProtectedObjects``),
    /// whatever the policy says. `namespace` is the Isthmus namespace, for the message.
    case protected(RequestAttributes, peer: String, ProtectedObjects.Reason, isthmusNamespace: String)

    /// The HTTP status code, as `Status.code`.
    public var code: Int {
        switch self {
        case .badRequest: 400
        case .unauthorized: 401
        case .readOnly, .impersonation, .forbidden, .protected: 403
        }
    }

    /// `Status.reason`.
    public var reason: String {
        switch self {
        case .badRequest: "BadRequest"
        case .unauthorized: "Unauthorized"
        case .readOnly, .impersonation, .forbidden, .protected: "Forbidden"
        }
    }

    /// `Status.message`, worded as the API server words it.
    public var message: String {
        switch self {
        case .badRequest(let violation): violation.description
        case .unauthorized: "Unauthorized"
        case .readOnly(let method, let request):
            forbiddenMessage(for: request, reason: "the Isthmus proxy is read-only and never allows \(method)")
        case .impersonation: "forbidden: the Isthmus proxy never allows impersonation (Impersonate-* headers, kubectl --as)"
        case .forbidden(let request, let peer): forbiddenMessage(for: request, peer: peer)
        case .protected(let request, _, let reason, let namespace):
            forbiddenMessage(for: request, reason: ProtectedObjects(isthmusNamespace: namespace).message(reason))
        }
    }

    /// `Status.details` of a 403, as the API server fills it: name, group and
    /// kind (the resource); nil for other codes and non-resource requests.
    public var details: (name: String, group: String, kind: String)? {
        switch self {
        case .readOnly(_, let request), .forbidden(let request, _), .protected(let request, _, _, _):
            guard request.isResourceRequest else { return nil }
            return (request.name, request.apiGroup, request.resource)
        case .badRequest, .unauthorized, .impersonation: return nil
        }
    }

    /// For logs and the audit trail (never sent to the client for a 401).
    public var logReason: String {
        switch self {
        case .badRequest(let violation): violation.description
        case .unauthorized(let failure): failure.description
        case .readOnly(let method, _): "method \(method) on a read-only proxy"
        case .impersonation: "an Impersonate-* header"
        case .forbidden: "no policy rule allows this request"
        case .protected(_, _, let reason, _): "never served (\(reason.rawValue)), whatever the policy"
        }
    }

    /// The parsed request, when the rejection came after parsing it.
    public var attributes: RequestAttributes? {
        switch self {
        case .readOnly(_, let request), .forbidden(let request, _), .protected(let request, _, _, _): request
        case .badRequest, .impersonation, .unauthorized: nil
        }
    }

    /// The peer whose token was verified before the refusal (only a policy denial has one).
    public var authenticatedPeer: String? {
        switch self {
        case .forbidden(_, let peer), .protected(_, let peer, _, _): peer
        default: nil
        }
    }

    /// A bounded label for the denials metric.
    public var metricLabel: String {
        switch self {
        case .badRequest(let violation): "bad_request_" + violation.metricLabel
        case .unauthorized: "unauthorized"
        case .readOnly: "read_only"
        case .impersonation: "impersonation"
        case .forbidden: "forbidden"
        case .protected(_, _, let reason, _): reason.metricLabel
        }
    }
}

