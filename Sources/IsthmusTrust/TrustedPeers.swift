import Crypto

/// A SHA-256 value held as four words, so comparing and hashing it is cheap
/// on the request path (cache keys, cache epochs, peer-set fingerprints).
struct Digest256: Hashable, Sendable {
    let w0: UInt64, w1: UInt64, w2: UInt64, w3: UInt64

    init(_ digest: SHA256Digest) {
        var words: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        digest.withUnsafeBytes { raw in
            words = (
                raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self),
                raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self),
                raw.loadUnaligned(fromByteOffset: 16, as: UInt64.self),
                raw.loadUnaligned(fromByteOffset: 24, as: UInt64.self)
            )
        }
        (w0, w1, w2, w3) = words
    }

    var bytes: [UInt8] {
        withUnsafeBytes(of: (w0, w1, w2, w3)) { Array($0) }
    }
}

/// Identifies the content of a ``TrustedPeers`` set: the SHA-256 of its
/// canonical JSON encoding. Equal sets have equal fingerprints however the
/// file was spelt (member order, PEM label, whitespace), so a reload that
/// changes nothing keeps caches warm, and any change to a peer, a key or a
/// root CA changes it.
public struct PeersFingerprint: Hashable, Sendable, CustomStringConvertible {
    let digest: Digest256

    /// Lowercase hex of the full SHA-256.
    public var description: String { digest.bytes.map { hexByte($0) }.joined() }
}

/// Why a trusted peers file (or a peer built in code) was refused. The
/// description names the peer and the field, e.g.
/// `peer "0b7e…": authnKeyPub: no PEM block found`.
public struct PeersFileError: Error, Hashable, Sendable, CustomStringConvertible {
    public enum Problem: Hashable, Sendable {
        /// The file is not valid JSON (the reason carries a byte offset).
        case invalidJSON(String)
        /// A value has the wrong JSON type.
        case wrongType(expected: String, found: String)
        case missingField
        /// Cluster IDs are 1-64 characters of letters, digits, `.`, `_`, `-`.
        case invalidClusterID
        /// The entry is filed under one UUID but its `clusterUUID` says another.
        case clusterUUIDMismatch(clusterUUID: String)
        /// The same peer appears twice (only possible when building in code;
        /// in a file it is a duplicate JSON member, reported as invalidJSON).
        case duplicatePeer
        /// A PEM field could not be read.
        case invalidPEM(KeyError)
        /// `rootCA` holds no `CERTIFICATE` block.
        case noCertificate
    }

    /// The UUID the entry is filed under, if the problem is inside one.
    public var peer: String?
    /// The field, e.g. `authnKeyPub` or `authnKeyPubs[1]`.
    public var field: String?
    public var problem: Problem

    public init(peer: String?, field: String?, problem: Problem) {
        self.peer = peer
        self.field = field
        self.problem = problem
    }

    public var description: String {
        var parts: [String] = []
        if let peer { parts.append("peer \(JSONText.quotedForMessage(peer))") }
        if let field { parts.append(field) }
        let what: String
        switch problem {
        case .invalidJSON(let reason): what = "not valid JSON: \(reason)"
        case .wrongType(let expected, let found): what = "expected \(expected), found \(found)"
        case .missingField: what = "missing"
        case .invalidClusterID: what = "not a valid cluster ID (1-64 letters, digits, '.', '_' or '-')"
        case .clusterUUIDMismatch(let uuid):
            what = "is \(JSONText.quotedForMessage(uuid)), but the entry is filed under another UUID"
        case .duplicatePeer: what = "listed more than once"
        case .invalidPEM(let error): what = error.description
        case .noCertificate: what = "no CERTIFICATE block found"
        }
        parts.append(what)
        return (parts.count == 1 ? "trusted peers: " : "") + parts.joined(separator: ": ")
    }
}

/// One trusted peer cluster: whose tokens we accept, with which keys.
public struct TrustedPeer: Sendable, Hashable {
    /// The peer's cluster UUID: the `sub` of the tokens it mints.
    public let clusterUUID: String
    /// Its Ed25519 public keys, at least one, without duplicates. More than
    /// one during a key rotation: a token verifying with any of them is good.
    public let keys: [PeerPublicKey]
    /// The peer's Istio root CA (PEM), kept verbatim for the controller.
    public let rootCA: String

    /// - Throws: if the ID is not a valid cluster ID, there are no keys, or
    ///   `rootCA` holds no certificate block. Everything here may come from a
    ///   peer's metadata, so nothing is a precondition.
    public init(clusterUUID: String, keys: [PeerPublicKey], rootCA: String) throws(PeersFileError) {
        guard Self.isValidClusterID(clusterUUID) else {
            throw PeersFileError(peer: clusterUUID, field: "clusterUUID", problem: .invalidClusterID)
        }
        guard !keys.isEmpty else {
            throw PeersFileError(peer: clusterUUID, field: "authnKeyPub", problem: .invalidPEM(.noPEMBlock))
        }
        try Self.checkRootCA(rootCA, peer: clusterUUID)
        var unique: [PeerPublicKey] = []
        for key in keys where !unique.contains(key) { unique.append(key) }
        self.clusterUUID = clusterUUID
        self.keys = unique
        self.rootCA = rootCA
    }

    /// From the fields of a peer's public metadata (`clusterUUID`,
    /// `authnKeyPub`, `rootCA`); `authnKeyPub` may hold several PEM blocks.
    public init(clusterUUID: String, authnKeyPub: String, rootCA: String) throws(PeersFileError) {
        let keys: [PeerPublicKey]
        do {
            keys = try PeerPublicKey.parseAll(pem: authnKeyPub)
        } catch {
            throw PeersFileError(peer: clusterUUID, field: "authnKeyPub", problem: .invalidPEM(error))
        }
        try self.init(clusterUUID: clusterUUID, keys: keys, rootCA: rootCA)
    }

    /// Cluster IDs end up in log lines, metrics labels and Status messages, so
    /// they are held to a conservative alphabet: UUIDs and simple names pass.
    public static func isValidClusterID(_ id: String) -> Bool {
        let utf8 = id.utf8
        guard (1...64).contains(utf8.count) else { return false }
        return utf8.allSatisfy { b in
            (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "z")) || (b >= UInt8(ascii: "A") && b <= UInt8(ascii: "Z"))
                || (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9"))
                || b == UInt8(ascii: "-") || b == UInt8(ascii: "_") || b == UInt8(ascii: ".")
        }
    }

    private static func checkRootCA(_ rootCA: String, peer: String) throws(PeersFileError) {
        let blocks: [PEMBlock]
        do {
            blocks = try PEMBlock.parseAll(rootCA)
        } catch {
            throw PeersFileError(peer: peer, field: "rootCA", problem: .invalidPEM(error))
        }
        guard blocks.contains(where: { $0.label == "CERTIFICATE" }) else {
            throw PeersFileError(peer: peer, field: "rootCA", problem: .noCertificate)
        }
    }
}

/// The set of trusted peers: the content of the trusted peers file
/// (DESIGN §2), an immutable snapshot.
///
/// File format, Deckhouse's `remote-public-metadata.json`: a JSON object
/// keyed by peer cluster UUID,
/// `{"<uuid>": {"clusterUUID": "<uuid>", "authnKeyPub": "<PEM>", "rootCA": "<PEM>"}}`,
/// plus an optional Isthmus extension `"authnKeyPubs": ["<PEM>", ...]` with
/// further keys during a rotation (`authnKeyPub` itself may also hold several
/// blocks).
///
/// Reading is strict about what it uses and lenient about what it does not:
/// - each entry's key must equal its `clusterUUID`: a mismatch means the file
///   was assembled wrongly, and accepting it would let one peer's key speak
///   for another UUID;
/// - every PEM field must parse completely; one bad entry refuses the whole
///   file, and the caller keeps the previous snapshot (a partial trust set
///   would make peers disappear silently);
/// - duplicate JSON member names refuse the file (see `JSONReader`);
/// - unknown members are ignored, so a newer controller may add fields
///   without older proxies refusing the file during a rolling upgrade.
public struct TrustedPeers: Sendable, Equatable {
    private let byUUID: [String: TrustedPeer]
    /// Changes exactly when the content changes.
    public let fingerprint: PeersFingerprint
    private let encoded: [UInt8]

    /// No peers: every token is refused as from an unknown peer.
    public static let empty = TrustedPeers(validated: [:])

    /// From peers built in code (the controller, tests).
    public init(_ peers: some Sequence<TrustedPeer>) throws(PeersFileError) {
        var byUUID: [String: TrustedPeer] = [:]
        for peer in peers {
            guard byUUID.updateValue(peer, forKey: peer.clusterUUID) == nil else {
                throw PeersFileError(peer: peer.clusterUUID, field: nil, problem: .duplicatePeer)
            }
        }
        self.init(validated: byUUID)
    }

    private init(validated byUUID: [String: TrustedPeer]) {
        self.byUUID = byUUID
        self.encoded = Self.encode(byUUID)
        self.fingerprint = PeersFingerprint(digest: Digest256(SHA256.hash(data: encoded)))
    }

    /// From the file's text.
    public init(json text: String) throws(PeersFileError) {
        try self.init(json: Array(text.utf8))
    }

    /// From the file's bytes (`[UInt8]`, `Data`, ...).
    public init<Bytes: Collection<UInt8>>(json bytes: Bytes) throws(PeersFileError) {
        let root: JSONValue
        do {
            root = try JSONReader.parse(bytes)
        } catch {
            throw PeersFileError(peer: nil, field: nil, problem: .invalidJSON(error.description))
        }
        guard case .object(let object) = root else {
            throw PeersFileError(
                peer: nil, field: nil, problem: .wrongType(expected: "an object", found: root.kindDescription))
        }
        var byUUID: [String: TrustedPeer] = [:]
        for member in object.members {
            let peer = try Self.parseEntry(filedUnder: member.name, member.value)
            byUUID[peer.clusterUUID] = peer
        }
        self.init(validated: byUUID)
    }

    private static func parseEntry(filedUnder uuid: String, _ value: JSONValue) throws(PeersFileError) -> TrustedPeer {
        func fail(_ field: String?, _ problem: PeersFileError.Problem) -> PeersFileError {
            PeersFileError(peer: uuid, field: field, problem: problem)
        }
        guard TrustedPeer.isValidClusterID(uuid) else { throw fail(nil, .invalidClusterID) }
        guard case .object(let entry) = value else {
            throw fail(nil, .wrongType(expected: "an object", found: value.kindDescription))
        }
        func requiredString(_ field: String) throws(PeersFileError) -> String {
            switch entry[field] {
            case .string(let s)?: return s
            case nil: throw fail(field, .missingField)
            case let other?: throw fail(field, .wrongType(expected: "a string", found: other.kindDescription))
            }
        }

        let clusterUUID = try requiredString("clusterUUID")
        guard clusterUUID == uuid else { throw fail("clusterUUID", .clusterUUIDMismatch(clusterUUID: clusterUUID)) }

        let authnKeyPub = try requiredString("authnKeyPub")
        var keys: [PeerPublicKey]
        do {
            keys = try PeerPublicKey.parseAll(pem: authnKeyPub)
        } catch {
            throw fail("authnKeyPub", .invalidPEM(error))
        }

        switch entry["authnKeyPubs"] {
        case nil:
            break
        case .array(let extras)?:
            for (index, extra) in extras.enumerated() {
                let field = "authnKeyPubs[\(index)]"
                guard case .string(let pem) = extra else {
                    throw fail(field, .wrongType(expected: "a string", found: extra.kindDescription))
                }
                do {
                    keys.append(contentsOf: try PeerPublicKey.parseAll(pem: pem))
                } catch {
                    throw fail(field, .invalidPEM(error))
                }
            }
        case let other?:
            throw fail("authnKeyPubs", .wrongType(expected: "an array", found: other.kindDescription))
        }

        return try TrustedPeer(clusterUUID: clusterUUID, keys: keys, rootCA: try requiredString("rootCA"))
    }

    public subscript(clusterUUID: String) -> TrustedPeer? { byUUID[clusterUUID] }

    public var count: Int { byUUID.count }
    public var isEmpty: Bool { byUUID.isEmpty }

    /// The peers' UUIDs in byte order.
    public var clusterUUIDs: [String] { Self.sortedUUIDs(byUUID) }

    /// All peers, ordered by UUID.
    public var peers: [TrustedPeer] { clusterUUIDs.compactMap { byUUID[$0] } }

    /// The canonical file: UUIDs in byte order (as Go's encoding/json orders
    /// map keys), each entry's members in Deckhouse's order `clusterUUID`,
    /// `authnKeyPub`, `rootCA`. `authnKeyPub` is the first key alone, as one
    /// `PUBLIC KEY` block, because that is all Deckhouse reads; further keys
    /// go to `authnKeyPubs`. No whitespace.
    public func encodedJSON() -> [UInt8] { encoded }

    public func encodedJSONString() -> String { String(decoding: encoded, as: UTF8.self) }

    public static func == (lhs: TrustedPeers, rhs: TrustedPeers) -> Bool {
        lhs.fingerprint == rhs.fingerprint
    }

    private static func sortedUUIDs(_ byUUID: [String: TrustedPeer]) -> [String] {
        byUUID.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
    }

    private static func encode(_ byUUID: [String: TrustedPeer]) -> [UInt8] {
        var out: [UInt8] = [UInt8(ascii: "{")]
        for (index, uuid) in sortedUUIDs(byUUID).enumerated() {
            guard let peer = byUUID[uuid] else { continue }
            if index > 0 { out.append(UInt8(ascii: ",")) }
            JSONText.appendQuoted(uuid, to: &out)
            out.append(contentsOf: #":{"clusterUUID":"#.utf8)
            JSONText.appendQuoted(peer.clusterUUID, to: &out)
            out.append(contentsOf: #","authnKeyPub":"#.utf8)
            JSONText.appendQuoted(peer.keys[0].pemRepresentation, to: &out)
            out.append(contentsOf: #","rootCA":"#.utf8)
            JSONText.appendQuoted(peer.rootCA, to: &out)
            if peer.keys.count > 1 {
                out.append(contentsOf: #","authnKeyPubs":["#.utf8)
                for (i, key) in peer.keys.dropFirst().enumerated() {
                    if i > 0 { out.append(UInt8(ascii: ",")) }
                    JSONText.appendQuoted(key.pemRepresentation, to: &out)
                }
                out.append(UInt8(ascii: "]"))
            }
            out.append(UInt8(ascii: "}"))
        }
        out.append(UInt8(ascii: "}"))
        return out
    }
}
