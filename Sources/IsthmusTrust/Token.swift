import IsthmusKubeTypes

/// What a token may be used for. One token, one scope: a token minted for the
/// public API of a peer cannot read its private metadata, and vice versa.
/// The raw values are the strings Deckhouse's istio module puts in `scope`.
public enum TokenScope: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// Reading the Kubernetes API through the proxy (istiod's remote secret).
    case api
    /// `GET /private/multicluster.json` on the metadata service.
    case privateMulticluster = "private-multicluster"
    /// The federation flavour of private metadata.
    case privateFederation = "private-federation"

    public var description: String { rawValue }
}

/// The claims Isthmus and Deckhouse put in a token (RFC 7519 §4.1 names).
public struct TokenClaims: Sendable, Hashable {
    /// What Deckhouse's istio module sends as `iss`.
    public static let deckhouseIssuer = "d8-istio"

    /// `iss`. Informational: the verifier does not check it, because the
    /// trust anchor is the key of the peer named by `sub`, and Deckhouse's
    /// own verifier ignores it too. Empty means "absent" (and is not written).
    public var issuer: String
    /// `sub`: the calling cluster's UUID.
    public var subject: String
    /// `aud`: the called cluster's UUID. Written as a string.
    public var audience: String
    /// `scope`.
    public var scope: TokenScope
    /// `nbf`, Unix seconds. Optional when verifying (Deckhouse's verifier never
    /// checked it); always written by ``mint(_:with:keyID:)`` when set.
    public var notBefore: Int64?
    /// `exp`, Unix seconds. Required.
    public var expiresAt: Int64

    public init(
        issuer: String = TokenClaims.deckhouseIssuer,
        subject: String,
        audience: String,
        scope: TokenScope,
        notBefore: Int64?,
        expiresAt: Int64
    ) {
        self.issuer = issuer
        self.subject = subject
        self.audience = audience
        self.scope = scope
        self.notBefore = notBefore
        self.expiresAt = expiresAt
    }

    /// Claims valid from `now` for `lifetime` seconds: `nbf = now`,
    /// `exp = now + lifetime`, as Deckhouse mints them.
    public init(
        issuer: String = TokenClaims.deckhouseIssuer,
        subject: String,
        audience: String,
        scope: TokenScope,
        now: Int64,
        lifetime: Int64
    ) {
        let (exp, overflow) = now.addingReportingOverflow(lifetime)
        self.init(
            issuer: issuer, subject: subject, audience: audience, scope: scope,
            notBefore: now, expiresAt: overflow ? Int64.max : exp)
    }
}

/// A bearer token as received or minted. Holding one is holding a credential,
/// so every textual form of it is `<redacted>`: interpolating it into a log
/// line, `print`, `dump` or an error message shows nothing. Use ``rawValue``
/// only where the token must go on the wire or into a kubeconfig.
///
/// Not `Equatable` on purpose: comparing secrets with `==` invites timing
/// leaks; the cache compares SHA-256 digests instead.
public struct BearerToken: Sendable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// The compact JWS text.
    public let rawValue: String

    public init(_ rawValue: String) {
        self.rawValue = rawValue
    }

    /// From an `Authorization` header value: `Bearer <token>` (RFC 6750 §2.1),
    /// the scheme matched case-insensitively (RFC 9110 §11.1). Nil for any
    /// other scheme, a missing token or a token containing spaces.
    public init?(authorizationHeader value: String) {
        let utf8 = value.utf8
        let scheme = "bearer".utf8
        guard utf8.count > scheme.count + 1,
            zip(utf8.prefix(scheme.count), scheme).allSatisfy({ ($0 | 0x20) == $1 })
        else { return nil }
        var rest = utf8.dropFirst(scheme.count)
        guard rest.first == 0x20 else { return nil }
        while rest.first == 0x20 { rest = rest.dropFirst() }
        while rest.last == 0x20 { rest = rest.dropLast() }
        guard !rest.isEmpty, !rest.contains(where: { $0 == 0x20 || $0 == 0x09 }) else { return nil }
        self.rawValue = String(Substring(rest))
    }

    public var description: String { "<redacted>" }
    public var debugDescription: String { "<redacted>" }
    public var customMirror: Mirror { Mirror(self, children: [], displayStyle: .struct) }
}

/// Mints a compact JWS (RFC 7515 §7.1) signed with EdDSA/Ed25519 (RFC 8037).
///
/// The header is `{"alg":"EdDSA"}` (with `"kid"` after `alg` when given), the
/// claims object has its members in the order Go's encoding/json writes a map
/// (`aud, exp, iss, nbf, scope, sub`), so for the same key and claims the
/// token is byte-for-byte what Deckhouse's go-jose minting produces (Ed25519
/// signatures are deterministic).
public func mint(_ claims: TokenClaims, with key: SigningKeyPair, keyID: String? = nil) -> String {
    var header: [UInt8] = Array(#"{"alg":"EdDSA""#.utf8)
    if let keyID {
        header.append(contentsOf: #","kid":"#.utf8)
        JSONText.appendQuoted(keyID, to: &header)
    }
    header.append(UInt8(ascii: "}"))

    var payload: [UInt8] = Array(#"{"aud":"#.utf8)
    JSONText.appendQuoted(claims.audience, to: &payload)
    payload.append(contentsOf: #","exp":"#.utf8)
    JSONText.appendInteger(claims.expiresAt, to: &payload)
    if !claims.issuer.isEmpty {
        payload.append(contentsOf: #","iss":"#.utf8)
        JSONText.appendQuoted(claims.issuer, to: &payload)
    }
    if let notBefore = claims.notBefore {
        payload.append(contentsOf: #","nbf":"#.utf8)
        JSONText.appendInteger(notBefore, to: &payload)
    }
    payload.append(contentsOf: #","scope":"#.utf8)
    JSONText.appendQuoted(claims.scope.rawValue, to: &payload)
    payload.append(contentsOf: #","sub":"#.utf8)
    JSONText.appendQuoted(claims.subject, to: &payload)
    payload.append(UInt8(ascii: "}"))

    let signingInput = Base64.encodeURL(header) + "." + Base64.encodeURL(payload)
    let signature = key.signature(for: Array(signingInput.utf8))
    return signingInput + "." + Base64.encodeURL(signature)
}

/// The three parts of a compact JWS, located but not yet interpreted.
///
/// Kept apart from claim checking so the signature layer can be tested on its
/// own (RFC 8037 Appendix A.4 signs a payload that is not a claims set).
struct CompactJWS {
    let bytes: [UInt8]
    let firstDot: Int
    let secondDot: Int

    /// RFC 7515 §7.1: `BASE64URL(header) "." BASE64URL(payload) "." BASE64URL(signature)`.
    ///
    /// Strict on purpose: exactly two dots, only the base64url alphabet (no
    /// `=` padding, no whitespace, nothing else), non-empty header and
    /// payload, and a size cap checked before anything is copied. The
    /// signature part may be empty here so that an unsigned `alg: none`
    /// token reaches the algorithm check and is reported as what it is.
    init(_ token: String, maximumLength: Int) throws(TokenFailure) {
        guard token.utf8.count <= maximumLength else { throw .malformed(.tooLong(limit: maximumLength)) }
        let bytes = Array(token.utf8)
        guard let first = bytes.firstIndex(of: UInt8(ascii: ".")),
            let second = bytes[(first + 1)...].firstIndex(of: UInt8(ascii: ".")),
            !bytes[(second + 1)...].contains(UInt8(ascii: ".")),
            first > 0, second > first + 1,
            Base64.isURLAlphabet(bytes[..<first]),
            Base64.isURLAlphabet(bytes[(first + 1)..<second]),
            Base64.isURLAlphabet(bytes[(second + 1)...])
        else { throw .malformed(.notCompactSerialization) }
        self.bytes = bytes
        self.firstDot = first
        self.secondDot = second
    }

    var headerPart: ArraySlice<UInt8> { bytes[..<firstDot] }
    var payloadPart: ArraySlice<UInt8> { bytes[(firstDot + 1)..<secondDot] }
    var signaturePart: ArraySlice<UInt8> { bytes[(secondDot + 1)...] }
    /// RFC 7515 §5.2 step 8: the signature covers the ASCII of `header.payload`.
    var signingInput: ArraySlice<UInt8> { bytes[..<secondDot] }

    /// True when one of `keys` verifies the signature over `header.payload`.
    /// The key list is short (a peer's current key, plus the next one during
    /// a rotation), so trying each is cheaper than any key-id bookkeeping and
    /// does not trust the unauthenticated `kid` header.
    func isSignatureValid(with keys: [PeerPublicKey]) -> Bool {
        guard let signature = Base64.decodeURL(signaturePart), signature.count == 64 else { return false }
        let message = signingInput
        for key in keys where key.isValidSignature(signature, for: message) {
            return true
        }
        return false
    }
}
