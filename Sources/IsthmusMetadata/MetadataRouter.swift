import IsthmusKubeTypes
import IsthmusTrust

/// What the metadata service serves at a moment: the documents and the
/// verifier for private requests. Swapped whole when a source changes.
public struct MetadataSnapshot: Sendable {
    public var documents: MetadataDocuments
    public var verifier: TokenVerifier

    public init(documents: MetadataDocuments, verifier: TokenVerifier) {
        self.documents = documents
        self.verifier = verifier
    }
}

/// The parts of a request the service looks at.
public struct MetadataRequest: Sendable {
    public var method: String
    /// The request target, query included.
    public var target: String
    /// Every `Authorization` field value, in order.
    public var authorization: [String]
    public var ifNoneMatch: String?

    public init(method: String, target: String, authorization: [String] = [], ifNoneMatch: String? = nil) {
        self.method = method
        self.target = target
        self.authorization = authorization
        self.ifNoneMatch = ifNoneMatch
    }
}

/// A complete answer. `logReason` says why a request was refused (never the
/// token); `peer` names the trusted peer a private document went to.
public struct MetadataResponse: Sendable {
    public var code: Int
    public var headers: [(String, String)]
    public var body: [UInt8]
    public var logReason: String?
    public var peer: String?

    init(code: Int, headers: [(String, String)], body: [UInt8], logReason: String? = nil, peer: String? = nil) {
        self.code = code
        self.headers = headers
        self.body = body
        self.logReason = logReason
        self.peer = peer
    }

    static func status(_ status: Status, logReason: String? = nil, extraHeaders: [(String, String)] = []) -> MetadataResponse {
        MetadataResponse(code: status.code,
                         headers: [("Content-Type", "application/json"), ("Cache-Control", "no-store")] + extraHeaders,
                         body: status.body, logReason: logReason ?? status.message)
    }

    static func text(_ code: Int, _ text: String) -> MetadataResponse {
        MetadataResponse(code: code, headers: [("Content-Type", "text/plain; charset=utf-8"), ("Cache-Control", "no-store")],
                         body: Array(text.utf8))
    }
}

/// Why a private request was refused. 401 when the caller is not a trusted
/// peer with a live token addressed to us; 403 when it is, but its token is
/// for another scope (an `api` token must not read private metadata).
public enum PrivateMetadataDenial: Error, Sendable, Hashable, CustomStringConvertible {
    case missingCredentials
    case malformedAuthorization
    case multipleAuthorization
    case invalidToken(TokenFailure)
    case wrongScope(peer: String, presented: TokenScope)

    public var code: Int {
        if case .wrongScope = self { return 403 }
        return 401
    }

    public var description: String {
        switch self {
        case .missingCredentials: "no Authorization header"
        case .malformedAuthorization: "the Authorization header is not \"Bearer <token>\""
        case .multipleAuthorization: "more than one Authorization header"
        case .invalidToken(let failure): failure.description
        case .wrongScope(let peer, let presented):
            "token from peer \(peer) has scope \"\(presented.rawValue)\", private metadata requires \"\(TokenScope.privateMulticluster.rawValue)\""
        }
    }

    /// The API server's Status shape. A 401 says only "Unauthorized", as the
    /// API server does (no oracle for forgers); a 403 says what is missing.
    public var status: Status {
        switch self {
        case .wrongScope:
            Status(message: "forbidden: private metadata requires a token with scope \"\(TokenScope.privateMulticluster.rawValue)\"",
                   reason: "Forbidden", details: Status.Details(), code: 403)
        default:
            .unauthorized
        }
    }

}

/// Decides private-metadata access. Pure: the verifier and the time are passed in.
public enum PrivateMetadataAuthorization {
    /// The verified peer, or why not.
    public static func authorize(authorization: [String], verifier: TokenVerifier, now: Int64)
        -> Result<VerifiedToken, PrivateMetadataDenial>
    {
        guard let header = authorization.first else { return .failure(.missingCredentials) }
        guard authorization.count == 1 else { return .failure(.multipleAuthorization) }
        guard let token = BearerToken(authorizationHeader: header) else { return .failure(.malformedAuthorization) }
        do throws(TokenFailure) {
            return .success(try verifier.verify(token, scope: .privateMulticluster, now: now))
        } catch {
            guard case .wrongScope = error else { return .failure(.invalidToken(error)) }
            // Signature and audience are good. Only a token that is fully
            // valid for its own scope earns the 403; an expired one stays a 401.
            for scope in TokenScope.allCases where scope != .privateMulticluster {
                if let verified = try? verifier.verify(token, scope: scope, now: now) {
                    return .failure(.wrongScope(peer: verified.peer, presented: scope))
                }
            }
            return .failure(.invalidToken(error))
        }
    }
}

/// Routes a request to its answer (DESIGN §2, §4). Pure, so every path,
/// method and credential case is a table test.
///
/// - `GET|HEAD /metadata/public/public.json`: no authentication.
/// - `GET|HEAD /metadata/private/multicluster.json`: a `private-multicluster`
///   token from a trusted peer; `Cache-Control: no-store` so no cache in
///   between keeps it.
/// - `/healthz`, `/readyz`: probes.
/// - Other methods: 405; other paths: 404; both as a Kubernetes `Status`.
///
/// Documents carry a strong ETag; `If-None-Match` with it answers 304 (for
/// the private one, only once the caller is authorized).
public enum MetadataRouter {
    public static let publicPath = "/metadata/public/public.json"
    public static let privatePath = "/metadata/private/multicluster.json"

    public static func respond(to request: MetadataRequest, snapshot: MetadataSnapshot, now: Int64) -> MetadataResponse {
        let path = request.target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
        guard request.method == "GET" || request.method == "HEAD" else {
            return .status(.methodNotAllowed, logReason: "method \(request.method) is not allowed",
                           extraHeaders: [("Allow", "GET, HEAD")])
        }
        switch path {
        case "/healthz", "/readyz":
            return .text(200, "ok")
        case publicPath:
            return document(snapshot.documents.publicMetadata, cacheControl: "no-cache", ifNoneMatch: request.ifNoneMatch)
        case privatePath:
            switch PrivateMetadataAuthorization.authorize(authorization: request.authorization,
                                                         verifier: snapshot.verifier, now: now) {
            case .failure(let denial):
                let challenge: [(String, String)] = denial.code == 401 ? [("WWW-Authenticate", "Bearer")] : []
                return .status(denial.status, logReason: denial.description, extraHeaders: challenge)
            case .success(let verified):
                var response = document(snapshot.documents.privateMetadata, cacheControl: "no-store",
                                        ifNoneMatch: request.ifNoneMatch)
                response.peer = verified.peer
                return response
            }
        default:
            return .status(.resourceNotFound, logReason: "no such path")
        }
    }

    static func document(_ document: MetadataDocument, cacheControl: String, ifNoneMatch: String?) -> MetadataResponse {
        let headers = [("Content-Type", "application/json"), ("Cache-Control", cacheControl), ("ETag", document.etag)]
        if let ifNoneMatch, matches(ifNoneMatch, document.etag) {
            return MetadataResponse(code: 304, headers: headers, body: [])
        }
        return MetadataResponse(code: 200, headers: headers, body: document.body)
    }

    /// RFC 9110 §13.1.2: a list of entity tags or `*`; weak comparison.
    static func matches(_ header: String, _ etag: String) -> Bool {
        header.split(separator: ",").contains { candidate in
            let tag = candidate.trimmingSpaces
            return tag == "*" || tag == etag || tag == "W/" + etag
        }
    }
}

extension Substring {
    fileprivate var trimmingSpaces: String {
        String(drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
    }
}
