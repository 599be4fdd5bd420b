import Crypto
import IsthmusKubeTypes

/// Why a token was refused: the proxy answers 401 and counts the reason.
///
/// Descriptions are short sentences for logs and Status messages. They never
/// contain the token or its signature. Values taken from the token (an
/// algorithm name, an unknown `sub`, a scope) pass through
/// `JSONText.quotedForMessage` first: printable ASCII up to 64 characters, or
/// a byte count instead, so a hostile token cannot write into our logs.
public enum TokenFailure: Error, Hashable, Sendable, CustomStringConvertible {
    /// Not a well-formed compact JWS with a JSON claims set we can read.
    case malformed(Malformation)
    /// `alg` is not exactly `EdDSA` (`none` and `HS256` included). Checked
    /// before any key is looked up: the algorithm is pinned, never chosen by
    /// the token (RFC 8725 §3.1, §2.1 "alg: none", §2.2 key confusion).
    case unsupportedAlgorithm(String)
    /// The header has `crit` (RFC 7515 §4.1.11): it names extensions the
    /// token says we must understand, and we understand none.
    case criticalHeader
    /// `sub` does not name a trusted peer.
    case unknownPeer(String)
    /// No key of the named peer verifies the signature.
    case badSignature(peer: String)
    /// `aud` is not exactly this cluster's UUID.
    case wrongAudience(peer: String)
    /// `iss` is missing or not one of the accepted issuers (`d8-istio` by
    /// default): a signing key ever used for another purpose must not mint
    /// tokens this cluster accepts.
    case wrongIssuer(peer: String, presented: String)
    /// The token is for another scope than the endpoint requires.
    case wrongScope(peer: String, presented: String, required: TokenScope)
    /// `exp` + leeway has passed.
    case expired(peer: String, expiresAt: Int64)
    /// `nbf` - leeway is still in the future.
    case notYetValid(peer: String, notBefore: Int64)

    /// The ways a token can fail to parse. The claim names are ours, never
    /// copied from the token.
    public enum Malformation: Hashable, Sendable, CustomStringConvertible {
        case tooLong(limit: Int)
        /// Not three non-empty base64url parts separated by two dots.
        case notCompactSerialization
        /// A part is not canonical unpadded base64url.
        case invalidBase64(part: String)
        case headerNotJSONObject
        case claimsNotJSONObject
        case missingClaim(String)
        case invalidClaim(String)

        public var description: String {
            switch self {
            case .tooLong(let limit): "token is longer than \(limit) bytes"
            case .notCompactSerialization: "token is not a compact JWS (three base64url parts separated by dots)"
            case .invalidBase64(let part): "token \(part) is not canonical base64url"
            case .headerNotJSONObject: "token header is not a JSON object"
            case .claimsNotJSONObject: "token claims are not a JSON object"
            case .missingClaim(let name): "token has no \"\(name)\" claim"
            case .invalidClaim(let name): "token claim \"\(name)\" has the wrong type"
            }
        }
    }

    public var description: String {
        switch self {
        case .malformed(let what):
            return "malformed token: \(what.description)"
        case .unsupportedAlgorithm(let alg):
            return "token algorithm \(alg) is not accepted; only EdDSA is"
        case .criticalHeader:
            return "token header lists critical extensions (crit), which are not supported"
        case .unknownPeer(let peer):
            return "token subject \(peer) is not a trusted peer"
        case .badSignature(let peer):
            return "token signature does not verify with any key of peer \(peer)"
        case .wrongAudience(let peer):
            return "token from peer \(peer) is not addressed to this cluster"
        case .wrongIssuer(let peer, let presented):
            return "token from peer \(peer) has issuer \(presented), which is not accepted"
        case .wrongScope(let peer, let presented, let required):
            return "token from peer \(peer) has scope \(presented), this endpoint requires \"\(required.rawValue)\""
        case .expired(let peer, let expiresAt):
            return "token from peer \(peer) expired at \(expiresAt)"
        case .notYetValid(let peer, let notBefore):
            return "token from peer \(peer) is not valid before \(notBefore)"
        }
    }
}

/// A token that passed every check.
public struct VerifiedToken: Sendable, Hashable {
    /// The calling cluster's UUID (`sub`), proven by its signature.
    public let peer: String
    public let claims: TokenClaims
    /// `exp` as signed (the verifier's leeway is not added).
    public var expiresAt: Int64 { claims.expiresAt }

    public init(peer: String, claims: TokenClaims) {
        self.peer = peer
        self.claims = claims
    }
}

/// Checks bearer tokens against a snapshot of the trusted peers.
///
/// Immutable and cheap to copy: when the peers file reloads, build a new
/// verifier and swap it in; requests in flight finish with the old one.
///
/// The checks, cheapest and least trusting first (DESIGN §3 step 3):
/// 1. compact JWS shape: at most ``maximumTokenLength`` bytes, exactly three
///    base64url parts, no padding or whitespace;
/// 2. header: a JSON object whose `alg` is exactly `EdDSA`, without `crit`.
///    Nothing else in the header is used: `kid`, `jwk`, `jku`, `x5u`, `x5c`
///    never select or supply a key (RFC 8725 §3.10), so they are ignored;
/// 3. claims: a JSON object; `sub`, `aud`, `scope` and `exp` present with the
///    right types, `iss` and `nbf` optional. Duplicate member names anywhere
///    make the token malformed (see `JSONReader`);
/// 4. `sub` names a trusted peer;
/// 5. the signature verifies with one of that peer's keys (several during a
///    key rotation);
/// 6. `aud` is this cluster's UUID: a string, or an array of exactly one
///    string. A multi-audience token is refused even if it names us, since
///    it would also open every other cluster it names; then `iss` is one of
///    ``acceptedIssuers`` (a missing `iss` never is);
/// 7. `scope` equals the endpoint's;
/// 8. time, in whole Unix seconds with leeway `L` (RFC 7519 §4.1.4, §4.1.5):
///    valid while `now < exp + L` and, when `nbf` is present,
///    `now >= nbf - L`. So `exp + L - 1` is the last accepted second.
///    `exp` is required (a token that never expires could not be revoked
///    short of removing the peer); `nbf` is optional because Deckhouse's
///    verifier never required it, though Deckhouse always sends it.
///
/// Numeric claims must be JSON integers that fit in Int64: `1.7e9`,
/// `1700000000.0` and `"1700000000"` are malformed. Go's encoding/json (and
/// so Deckhouse) always writes integers; refusing the rest removes rounding
/// questions near the boundaries.
public struct TokenVerifier: Sendable {
    /// Default clock skew tolerated on `nbf` and `exp`.
    public static let defaultLeeway: Duration = .seconds(60)
    /// Tokens longer than this are refused before anything is decoded.
    /// Deckhouse tokens are about 300 bytes; 8 KiB leaves room for any sane
    /// `kid` and still bounds the work a hostile request can cause.
    public static let maximumTokenLength = 8 * 1024

    /// This cluster's UUID: the only accepted `aud`.
    public let localClusterUUID: String
    public let peers: TrustedPeers
    /// Leeway in whole seconds (sub-second parts of the Duration are dropped).
    public let leewaySeconds: Int64
    /// The `iss` values accepted; Deckhouse and Isthmus always send `d8-istio`.
    public let acceptedIssuers: Set<String>
    public static let defaultAcceptedIssuers: Set<String> = [TokenClaims.deckhouseIssuer]
    /// Identifies everything a verdict depends on besides the token and the
    /// time, so a cache can tell when its entries were decided by other rules.
    let epoch: Digest256

    /// - Parameters:
    ///   - localClusterUUID: this cluster's UUID.
    ///   - peers: the trusted peers snapshot.
    ///   - leeway: tolerated clock skew, at least zero.
    ///   - acceptedIssuers: the `iss` values accepted, at least one.
    public init(localClusterUUID: String, peers: TrustedPeers, leeway: Duration = TokenVerifier.defaultLeeway,
                acceptedIssuers: Set<String> = TokenVerifier.defaultAcceptedIssuers) {
        let seconds = leeway.components.seconds
        precondition(seconds >= 0, "token leeway must not be negative")
        precondition(!acceptedIssuers.isEmpty, "at least one accepted issuer")
        self.localClusterUUID = localClusterUUID
        self.peers = peers
        self.leewaySeconds = seconds
        self.acceptedIssuers = acceptedIssuers

        var material = peers.fingerprint.digest.bytes
        material.append(contentsOf: withUnsafeBytes(of: seconds.littleEndian) { Array($0) })
        material.append(contentsOf: localClusterUUID.utf8)
        // The issuers decide verdicts too: a cache filled under others is emptied.
        for issuer in acceptedIssuers.sorted() {
            material.append(0)
            material.append(contentsOf: issuer.utf8)
        }
        self.epoch = Digest256(SHA256.hash(data: material))
    }

    /// Verifies `token` for an endpoint that requires `scope`, at Unix time `now`.
    public func verify(_ token: BearerToken, scope: TokenScope, now: Int64) throws(TokenFailure) -> VerifiedToken {
        let checked = try verifyIgnoringScopeAndTime(token)
        try checkScopeAndTime(checked, scope: scope, now: now)
        return checked.verified(scope: scope)
    }

    /// Steps 1-6: everything that does not depend on the endpoint or the clock.
    /// The result can be cached for as long as this verifier is current.
    func verifyIgnoringScopeAndTime(_ token: BearerToken) throws(TokenFailure) -> CheckedToken {
        let jws = try CompactJWS(token.rawValue, maximumLength: Self.maximumTokenLength)
        try Self.checkHeader(jws)
        let claims = try Self.decodeClaims(jws)

        guard let peer = peers[claims.subject] else {
            throw .unknownPeer(JSONText.quotedForMessage(claims.subject))
        }
        guard jws.isSignatureValid(with: peer.keys) else {
            throw .badSignature(peer: peer.clusterUUID)
        }
        guard claims.audiences.count == 1, claims.audiences[0] == localClusterUUID else {
            throw .wrongAudience(peer: peer.clusterUUID)
        }
        guard acceptedIssuers.contains(claims.issuer) else {
            throw .wrongIssuer(peer: peer.clusterUUID,
                               presented: claims.issuer.isEmpty ? "(missing)" : JSONText.quotedForMessage(claims.issuer))
        }
        return CheckedToken(
            peer: peer.clusterUUID,
            presentedScope: claims.scope,
            issuer: claims.issuer,
            notBefore: claims.notBefore,
            expiresAt: claims.expiresAt,
            audience: claims.audiences[0],
            leeway: leewaySeconds)
    }

    /// Steps 7-8, shared with the cache so a cached verdict is decided by the
    /// same rules, in the same order, as a fresh one.
    func checkScopeAndTime(_ checked: CheckedToken, scope: TokenScope, now: Int64) throws(TokenFailure) {
        guard checked.scope == scope else {
            throw .wrongScope(
                peer: checked.peer, presented: JSONText.quotedForMessage(checked.presentedScope), required: scope)
        }
        guard now < checked.validUntil else {
            throw .expired(peer: checked.peer, expiresAt: checked.expiresAt)
        }
        guard now >= checked.validFrom else {
            throw .notYetValid(peer: checked.peer, notBefore: checked.notBefore ?? Int64.min)
        }
    }

    // MARK: header and claims

    private static func checkHeader(_ jws: CompactJWS) throws(TokenFailure) {
        guard let headerBytes = Base64.decodeURL(jws.headerPart) else {
            throw .malformed(.invalidBase64(part: "header"))
        }
        guard case .object(let header)? = try? JSONReader.parse(headerBytes) else {
            throw .malformed(.headerNotJSONObject)
        }
        switch header["alg"] {
        case .string("EdDSA"):
            break
        case .string(let other):
            throw .unsupportedAlgorithm(JSONText.quotedForMessage(other))
        case nil:
            throw .unsupportedAlgorithm("(missing)")
        case let value?:
            throw .unsupportedAlgorithm("(\(value.kindDescription))")
        }
        if header["crit"] != nil {
            throw .criticalHeader
        }
    }

    struct DecodedClaims {
        var issuer: String
        var subject: String
        var audiences: [String]
        var scope: String
        var notBefore: Int64?
        var expiresAt: Int64
    }

    static func decodeClaims(_ jws: CompactJWS) throws(TokenFailure) -> DecodedClaims {
        guard let payload = Base64.decodeURL(jws.payloadPart) else {
            throw .malformed(.invalidBase64(part: "claims"))
        }
        guard case .object(let object)? = try? JSONReader.parse(payload) else {
            throw .malformed(.claimsNotJSONObject)
        }

        func string(_ name: String, required: Bool) throws(TokenFailure) -> String? {
            switch object[name] {
            case .string(let value)?: return value
            case nil where !required: return nil
            case nil: throw .malformed(.missingClaim(name))
            case _?: throw .malformed(.invalidClaim(name))
            }
        }
        func integer(_ name: String, required: Bool) throws(TokenFailure) -> Int64? {
            switch object[name] {
            case .integer(let value)?: return value
            case nil where !required: return nil
            case nil: throw .malformed(.missingClaim(name))
            case _?: throw .malformed(.invalidClaim(name))
            }
        }

        let audiences: [String]
        switch object["aud"] {
        case .string(let value)?:
            audiences = [value]
        case .array(let values)?:
            var strings: [String] = []
            for value in values {
                guard case .string(let s) = value else { throw .malformed(.invalidClaim("aud")) }
                strings.append(s)
            }
            audiences = strings
        case nil:
            throw .malformed(.missingClaim("aud"))
        case _?:
            throw .malformed(.invalidClaim("aud"))
        }

        return DecodedClaims(
            issuer: try string("iss", required: false) ?? "",
            subject: try string("sub", required: true) ?? "",
            audiences: audiences,
            scope: try string("scope", required: true) ?? "",
            notBefore: try integer("nbf", required: false),
            expiresAt: try integer("exp", required: true) ?? 0)
    }
}

/// What verification established about a token apart from scope and time;
/// also what the cache stores.
struct CheckedToken: Sendable {
    let peer: String
    /// The `scope` string as signed; ``scope`` is nil when it is not one we know.
    let presentedScope: String
    let scope: TokenScope?
    let issuer: String
    let notBefore: Int64?
    let expiresAt: Int64
    let audience: String
    /// First second at which the token is refused as expired: `exp + leeway`.
    let validUntil: Int64
    /// First second at which it is accepted: `nbf - leeway`, or the dawn of time.
    let validFrom: Int64

    init(
        peer: String, presentedScope: String, issuer: String, notBefore: Int64?, expiresAt: Int64,
        audience: String, leeway: Int64
    ) {
        self.peer = peer
        self.presentedScope = presentedScope
        self.scope = TokenScope(rawValue: presentedScope)
        self.issuer = issuer
        self.notBefore = notBefore
        self.expiresAt = expiresAt
        self.audience = audience
        // Saturating: an `exp` near Int64.max must not wrap into the past.
        let (until, overflow) = expiresAt.addingReportingOverflow(leeway)
        self.validUntil = overflow ? Int64.max : until
        if let notBefore {
            let (from, underflow) = notBefore.subtractingReportingOverflow(leeway)
            self.validFrom = underflow ? Int64.min : from
        } else {
            self.validFrom = Int64.min
        }
    }

    /// The result, once the scope check established that the token's scope is `scope`.
    func verified(scope: TokenScope) -> VerifiedToken {
        VerifiedToken(
            peer: peer,
            claims: TokenClaims(
                issuer: issuer, subject: peer, audience: audience, scope: scope,
                notBefore: notBefore, expiresAt: expiresAt))
    }
}
