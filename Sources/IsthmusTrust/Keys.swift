import Crypto
import SwiftASN1

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Why a key could not be read. Descriptions name labels, lengths and
/// algorithm identifiers, never key bytes.
public enum KeyError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The text holds no `-----BEGIN ...-----` block at all.
    case noPEMBlock
    /// Exactly one block was expected.
    case multiplePEMBlocks(count: Int)
    case unterminatedPEMBlock(label: String)
    case mismatchedPEMEnd(begin: String, end: String)
    /// RFC 1421 headers (`Proc-Type`, `DEK-Info`): a legacy encrypted key.
    case pemHeadersUnsupported(label: String)
    case invalidBase64(label: String)
    /// The block's label is not one this reader accepts here.
    case unexpectedLabel(String, expected: [String])
    /// The DER does not have the structure the label promises.
    case malformedDER(String)
    /// A well-formed key for another algorithm (RSA, P-256, Ed448, X25519...).
    case unsupportedAlgorithm(String)
    /// RFC 8410 §3: for Ed25519 the AlgorithmIdentifier parameters MUST be absent.
    case algorithmParametersPresent
    case invalidKeyLength(Int)
    /// A PKCS#8 version other than v1 (0) and v2 (1).
    case unsupportedVersion(Int)
    /// An RFC 5958 v2 key whose embedded public key is not the one its seed derives.
    case publicKeyMismatch
    /// A problem in the n-th block (1-based) of a multi-block text.
    indirect case inBlock(Int, KeyError)

    public var description: String {
        switch self {
        case .noPEMBlock:
            return "no PEM block found"
        case .multiplePEMBlocks(let count):
            return "expected one PEM block, found \(count)"
        case .unterminatedPEMBlock(let label):
            return "PEM block \(JSONText.quotedForMessage(label)) has no matching END line"
        case .mismatchedPEMEnd(let begin, let end):
            return "PEM block begins as \(JSONText.quotedForMessage(begin)) but ends as \(JSONText.quotedForMessage(end))"
        case .pemHeadersUnsupported(let label):
            return "PEM block \(JSONText.quotedForMessage(label)) has RFC 1421 headers (an encrypted legacy key); decrypt it first"
        case .invalidBase64(let label):
            return "PEM block \(JSONText.quotedForMessage(label)) is not valid Base64"
        case .unexpectedLabel(let label, let expected):
            if label == "ENCRYPTED PRIVATE KEY" {
                return "encrypted private keys are not supported; store the key unencrypted in its Secret"
            }
            let list = expected.map { JSONText.quotedForMessage($0) }.joined(separator: " or ")
            return "PEM label is \(JSONText.quotedForMessage(label)), expected \(list)"
        case .malformedDER(let what):
            return "malformed key: \(what)"
        case .unsupportedAlgorithm(let algorithm):
            return "key algorithm is \(algorithm); only Ed25519 (1.3.101.112) is supported"
        case .algorithmParametersPresent:
            return "Ed25519 AlgorithmIdentifier must not carry parameters (RFC 8410)"
        case .invalidKeyLength(let length):
            return "Ed25519 key must be 32 bytes, found \(length)"
        case .unsupportedVersion(let version):
            return "PKCS#8 version \(version) is not supported (expected 0 or 1)"
        case .publicKeyMismatch:
            return "the public key embedded in the PKCS#8 key does not match its private key"
        case .inBlock(let index, let error):
            return "PEM block \(index): \(error.description)"
        }
    }
}

/// OIDs this module recognises, with names for error messages.
enum KeyAlgorithm {
    /// id-Ed25519, RFC 8410 §3.
    static let ed25519: ASN1ObjectIdentifier = [1, 3, 101, 112]

    static func name(of oid: ASN1ObjectIdentifier) -> String {
        let known: [(ASN1ObjectIdentifier, String)] = [
            ([1, 3, 101, 110], "X25519"),
            ([1, 3, 101, 111], "X448"),
            ([1, 3, 101, 113], "Ed448"),
            ([1, 2, 840, 113_549, 1, 1, 1], "RSA"),
            ([1, 2, 840, 113_549, 1, 1, 10], "RSA-PSS"),
            ([1, 2, 840, 10_045, 2, 1], "EC (ECDSA/ECDH, e.g. P-256)"),
            ([1, 2, 840, 10_040, 4, 1], "DSA"),
        ]
        for (candidate, name) in known where candidate == oid {
            return "\(name) (\(oid))"
        }
        return "\(oid)"
    }
}

/// `AlgorithmIdentifier ::= SEQUENCE { algorithm OID, parameters ANY OPTIONAL }`
/// (RFC 5280 §4.1.1.2), checked for Ed25519.
private func parseEd25519AlgorithmIdentifier(_ nodes: inout ASN1NodeCollection.Iterator) throws -> KeyError? {
    guard let node = nodes.next() else {
        return .malformedDER("missing AlgorithmIdentifier")
    }
    var problem: KeyError? = nil
    try DER.sequence(node, identifier: .sequence) { inner in
        let oid = try ASN1ObjectIdentifier(derEncoded: &inner)
        let parameters = inner.next()
        // The algorithm is checked before its parameters so an RSA or P-256
        // key is reported as such, not as "parameters present".
        if oid != KeyAlgorithm.ed25519 {
            problem = .unsupportedAlgorithm(KeyAlgorithm.name(of: oid))
        } else if parameters != nil {
            problem = .algorithmParametersPresent
        }
        while inner.next() != nil {}
    }
    return problem
}

/// A peer's Ed25519 public key: what verifies the tokens that peer mints.
///
/// Read from PKIX SubjectPublicKeyInfo PEM (RFC 5280 §4.1.2.7 with RFC 8410),
/// under either label Deckhouse and OpenSSL use: `PUBLIC KEY` (OpenSSL, RFC
/// 7468) or `ED25519 PUBLIC KEY` (what Deckhouse's istio module writes into
/// `authnKeyPub`). Written back as `PUBLIC KEY`, which both read. Any other
/// algorithm is refused by name, so a misconfigured RSA or P-256 key is an
/// obvious error at load rather than a silent "bad signature" per request.
public struct PeerPublicKey: Sendable, Hashable, CustomStringConvertible {
    /// The labels accepted for a public key block.
    public static let acceptedPEMLabels = ["PUBLIC KEY", "ED25519 PUBLIC KEY"]

    /// DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410 §4); the 32 key
    /// bytes follow. `SEQUENCE { SEQUENCE { OID 1.3.101.112 }, BIT STRING }`.
    static let spkiPrefix: [UInt8] = [0x30, 0x2A, 0x30, 0x05, 0x06, 0x03, 0x2B, 0x65, 0x70, 0x03, 0x21, 0x00]

    let key: Curve25519.Signing.PublicKey
    /// The 32-byte encoding (RFC 8032 §5.1.5).
    public let rawRepresentation: [UInt8]

    /// From the 32 raw key bytes.
    public init<Bytes: Collection<UInt8>>(rawRepresentation bytes: Bytes) throws(KeyError) {
        let raw = Array(bytes)
        guard raw.count == 32 else { throw KeyError.invalidKeyLength(raw.count) }
        do {
            self.key = try Curve25519.Signing.PublicKey(rawRepresentation: raw)
        } catch {
            throw KeyError.invalidKeyLength(raw.count)
        }
        self.rawRepresentation = raw
    }

    /// From a DER SubjectPublicKeyInfo.
    public init<Bytes: Collection<UInt8>>(spkiDER bytes: Bytes) throws(KeyError) {
        let raw: ArraySlice<UInt8>
        do {
            raw = try Self.parseSPKI(Array(bytes))
        } catch let error as KeyError {
            throw error
        } catch {
            throw KeyError.malformedDER("not a DER SubjectPublicKeyInfo")
        }
        try self.init(rawRepresentation: raw)
    }

    private static func parseSPKI(_ der: [UInt8]) throws -> ArraySlice<UInt8> {
        let root = try DER.parse(der)
        return try DER.sequence(root, identifier: .sequence) { nodes in
            if let problem = try parseEd25519AlgorithmIdentifier(&nodes) { throw problem }
            let bits = try ASN1BitString(derEncoded: &nodes)
            guard bits.paddingBits == 0 else {
                throw KeyError.malformedDER("public key BIT STRING has unused bits")
            }
            guard bits.bytes.count == 32 else { throw KeyError.invalidKeyLength(bits.bytes.count) }
            return bits.bytes
        }
    }

    /// From text holding exactly one PEM block.
    public init(pem: String) throws(KeyError) {
        let blocks = try PEMBlock.parseAll(pem)
        guard !blocks.isEmpty else { throw KeyError.noPEMBlock }
        guard blocks.count == 1 else { throw KeyError.multiplePEMBlocks(count: blocks.count) }
        try self.init(block: blocks[0])
    }

    /// From one parsed block, checking its label.
    public init(block: PEMBlock) throws(KeyError) {
        guard Self.acceptedPEMLabels.contains(block.label) else {
            throw KeyError.unexpectedLabel(block.label, expected: Self.acceptedPEMLabels)
        }
        try self.init(spkiDER: block.der)
    }

    /// Every key in `pem`, in order; at least one.
    ///
    /// For key rotation: a peer publishing its next key beside the current one
    /// puts both blocks in one `authnKeyPub`. Every block must be an Ed25519
    /// public key; a bad block fails the whole text (``KeyError/inBlock(_:_:)``
    /// says which), because silently dropping it would hide a broken rotation
    /// until the old key is retired.
    public static func parseAll(pem: String) throws(KeyError) -> [PeerPublicKey] {
        let blocks = try PEMBlock.parseAll(pem)
        guard !blocks.isEmpty else { throw KeyError.noPEMBlock }
        var keys: [PeerPublicKey] = []
        keys.reserveCapacity(blocks.count)
        for (offset, block) in blocks.enumerated() {
            do {
                keys.append(try PeerPublicKey(block: block))
            } catch {
                throw blocks.count == 1 ? error : KeyError.inBlock(offset + 1, error)
            }
        }
        return keys
    }

    /// DER SubjectPublicKeyInfo (44 bytes).
    public var spkiDER: [UInt8] { Self.spkiPrefix + rawRepresentation }

    /// `-----BEGIN PUBLIC KEY-----` PEM, byte-identical to `openssl pkey -pubout`.
    public var pemRepresentation: String {
        PEMBlock(label: "PUBLIC KEY", der: spkiDER).pemString
    }

    /// A short, stable name for logs: `ed25519:` and the first 8 bytes of the
    /// SHA-256 of the SPKI, in hex. Public, but still not the key itself.
    public var fingerprint: String {
        let digest = SHA256.hash(data: spkiDER)
        return "ed25519:" + digest.prefix(8).map { hexByte($0) }.joined()
    }

    public var description: String { "Ed25519 public key \(fingerprint)" }

    /// RFC 8032 verification (BoringSSL's, which also refuses non-canonical S,
    /// so a valid signature cannot be re-spelt into a second valid one).
    func isValidSignature(_ signature: [UInt8], for message: ArraySlice<UInt8>) -> Bool {
        key.isValidSignature(signature, for: message)
    }

    public static func == (lhs: PeerPublicKey, rhs: PeerPublicKey) -> Bool {
        lhs.rawRepresentation == rhs.rawRepresentation
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(rawRepresentation)
    }
}

/// This cluster's Ed25519 key pair: signs the tokens we present to peers.
///
/// Stored as PKCS#8 (RFC 5208/5958 with RFC 8410) PEM. Written in the exact
/// 48-byte form Go's `x509.MarshalPKCS8PrivateKey` and OpenSSL produce
/// (`302e020100300506032b657004220420` + 32-byte seed). Read: that form, the
/// RFC 5958 v2 form with attributes and the optional embedded public key
/// (checked against the seed), under the label `PRIVATE KEY` or
/// `ED25519 PRIVATE KEY` (Deckhouse's istio module writes PKCS#8 bytes under
/// the latter).
///
/// `description`, `debugDescription` and the mirror are redacted so the key
/// cannot reach a log line by accident.
public struct SigningKeyPair: Sendable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// The labels accepted for a private key block.
    public static let acceptedPEMLabels = ["PRIVATE KEY", "ED25519 PRIVATE KEY"]

    /// DER prefix of a v1 Ed25519 PKCS#8 key; the 32-byte seed follows.
    static let pkcs8Prefix: [UInt8] = [
        0x30, 0x2E, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2B, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
    ]

    let privateKey: Curve25519.Signing.PrivateKey
    public let publicKey: PeerPublicKey

    /// A fresh key pair from the system's secure random source.
    public init() {
        self.init(privateKey: Curve25519.Signing.PrivateKey())
    }

    private init(privateKey: Curve25519.Signing.PrivateKey) {
        self.privateKey = privateKey
        // swift-crypto always yields 32 bytes here; the guard keeps `try!` out.
        guard let publicKey = try? PeerPublicKey(rawRepresentation: privateKey.publicKey.rawRepresentation) else {
            preconditionFailure("swift-crypto returned an Ed25519 public key that is not 32 bytes")
        }
        self.publicKey = publicKey
    }

    /// From the 32-byte seed (RFC 8032 §5.1.5 "private key").
    public init<Bytes: Collection<UInt8>>(seed bytes: Bytes) throws(KeyError) {
        let seed = Array(bytes)
        guard seed.count == 32,
            let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: seed)
        else { throw KeyError.invalidKeyLength(seed.count) }
        self.init(privateKey: key)
    }

    /// From text holding exactly one PEM block.
    public init(pem: String) throws(KeyError) {
        let blocks = try PEMBlock.parseAll(pem)
        guard !blocks.isEmpty else { throw KeyError.noPEMBlock }
        guard blocks.count == 1 else { throw KeyError.multiplePEMBlocks(count: blocks.count) }
        let block = blocks[0]
        guard Self.acceptedPEMLabels.contains(block.label) else {
            throw KeyError.unexpectedLabel(block.label, expected: Self.acceptedPEMLabels)
        }
        try self.init(pkcs8DER: block.der)
    }

    /// From DER PKCS#8 `OneAsymmetricKey` (RFC 5958 §2):
    /// `SEQUENCE { version, AlgorithmIdentifier, OCTET STRING { OCTET STRING seed },
    /// [0] attributes OPTIONAL, [1] publicKey OPTIONAL (v2 only) }`.
    public init<Bytes: Collection<UInt8>>(pkcs8DER bytes: Bytes) throws(KeyError) {
        let parsed: (seed: ArraySlice<UInt8>, publicKey: ArraySlice<UInt8>?)
        do {
            parsed = try Self.parsePKCS8(Array(bytes))
        } catch let error as KeyError {
            throw error
        } catch {
            throw KeyError.malformedDER("not a DER PKCS#8 private key")
        }
        try self.init(seed: parsed.seed)
        if let embedded = parsed.publicKey, Array(embedded) != publicKey.rawRepresentation {
            throw KeyError.publicKeyMismatch
        }
    }

    private static func parsePKCS8(_ der: [UInt8]) throws -> (seed: ArraySlice<UInt8>, publicKey: ArraySlice<UInt8>?) {
        let root = try DER.parse(der)
        return try DER.sequence(root, identifier: .sequence) { nodes in
            let version = try Int(derEncoded: &nodes)
            guard version == 0 || version == 1 else { throw KeyError.unsupportedVersion(version) }
            if let problem = try parseEd25519AlgorithmIdentifier(&nodes) { throw problem }
            let wrapped = try ASN1OctetString(derEncoded: &nodes)
            // RFC 8410 §7: the OCTET STRING holds `CurvePrivateKey ::= OCTET STRING`.
            let inner = try ASN1OctetString(derEncoded: DER.parse(wrapped.bytes))
            guard inner.bytes.count == 32 else { throw KeyError.invalidKeyLength(inner.bytes.count) }
            // [0] IMPLICIT Attributes: allowed and ignored (RFC 8410 §10.3 shows one).
            _ = DER.optionalImplicitlyTagged(&nodes, tagNumber: 0, tagClass: .contextSpecific) { _ in }
            let publicKey = try DER.optionalImplicitlyTagged(
                &nodes, tag: ASN1Identifier(tagWithNumber: 1, tagClass: .contextSpecific)) as ASN1BitString?
            if let publicKey {
                // RFC 5958 §2: the public key appears only in version 2 (v2 = 1).
                guard version == 1 else {
                    throw KeyError.malformedDER("a version 1 PKCS#8 key must not carry a public key")
                }
                guard publicKey.paddingBits == 0, publicKey.bytes.count == 32 else {
                    throw KeyError.invalidKeyLength(publicKey.bytes.count)
                }
            }
            return (inner.bytes, publicKey?.bytes)
        }
    }

    /// DER PKCS#8 v1, the 48-byte form OpenSSL and Go write.
    public var pkcs8DER: [UInt8] { Self.pkcs8Prefix + Array(privateKey.rawRepresentation) }

    /// `-----BEGIN PRIVATE KEY-----` PEM, byte-identical to `openssl genpkey
    /// -algorithm ed25519`. This is the secret: store it only in a Secret.
    public var pemRepresentation: String {
        PEMBlock(label: "PRIVATE KEY", der: pkcs8DER).pemString
    }

    /// Signs `message` (RFC 8032 Ed25519, deterministic).
    func signature(for message: [UInt8]) -> [UInt8] {
        // BoringSSL's ED25519_sign fails only when it cannot allocate, where
        // the process is lost anyway; a throwing `mint` would burden every
        // caller with an error that cannot happen.
        guard let signature = try? privateKey.signature(for: message) else {
            preconditionFailure("Ed25519 signing failed inside swift-crypto")
        }
        return Array(signature)
    }

    public var description: String { "<redacted>" }
    public var debugDescription: String { "<redacted>" }
    public var customMirror: Mirror { Mirror(self, children: [], displayStyle: .struct) }
}

func hexByte(_ byte: UInt8) -> String {
    let digits: [Character] = Array("0123456789abcdef")
    return String([digits[Int(byte >> 4)], digits[Int(byte & 0xF)]])
}
