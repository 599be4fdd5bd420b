import IsthmusKubeTypes
import IsthmusTrust

/// A problem in a metadata document, naming the field, e.g.
/// `public metadata: authnKeyPub: no PEM block found`.
public struct MetadataError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Document: String, Sendable, Hashable {
        case `public` = "public metadata"
        case `private` = "private metadata"
    }
    public let document: Document
    /// The field, e.g. `ingressGateways[1].port`; nil for the whole document.
    public let field: String?
    public let problem: String

    public init(document: Document, field: String?, problem: String) {
        self.document = document
        self.field = field
        self.problem = problem
    }

    public var description: String {
        [document.rawValue, field, problem].compactMap { $0 }.joined(separator: ": ")
    }
}

/// Strict field readers shared by both documents: required fields must be
/// present with the right type; unknown fields are ignored, as Deckhouse
/// ignores them, so either side may add fields.
struct DocumentReader {
    let document: MetadataError.Document
    let object: JSON

    init(document: MetadataError.Document, bytes: some Collection<UInt8>) throws(MetadataError) {
        let value: JSON
        do { value = try JSON(parsing: bytes) } catch {
            throw MetadataError(document: document, field: nil, problem: "not valid JSON: \(error.description)")
        }
        try self.init(document: document, value: value)
    }

    init(document: MetadataError.Document, value: JSON) throws(MetadataError) {
        self.document = document
        guard value.isObject else {
            throw MetadataError(document: document, field: nil, problem: "must be a JSON object, found \(value.kindName)")
        }
        self.object = value
    }

    func fail(_ field: String?, _ problem: String) -> MetadataError {
        MetadataError(document: document, field: field, problem: problem)
    }

    func requiredString(_ field: String, allowEmpty: Bool = false) throws(MetadataError) -> String {
        switch object[field] {
        case .string(let s)?:
            guard allowEmpty || !s.isEmpty else { throw fail(field, "must not be empty") }
            return s
        case nil: throw fail(field, "is missing")
        case let other?: throw fail(field, "must be a string, found \(other.kindName)")
        }
    }

    func optionalString(_ field: String) throws(MetadataError) -> String? {
        switch object[field] {
        case nil, .null?: return nil
        case .string(let s)?: return s.isEmpty ? nil : s
        case let other?: throw fail(field, "must be a string, found \(other.kindName)")
        }
    }
}

/// `GET <endpoint>/public/public.json`: who the peer is and what it signs
/// with. `{"clusterUUID": "...", "authnKeyPub": "<PEM>", "rootCA": "<PEM>"}`.
public struct PublicMetadata: Sendable, Hashable {
    public let clusterUUID: String
    /// PEM, one or more Ed25519 public keys, kept verbatim.
    public let authnKeyPub: String
    /// PEM of the peer's Istio root CA, kept verbatim.
    public let rootCA: String
    /// The peer as the trusted peers file holds it; parsing proved it valid.
    public let trustedPeer: TrustedPeer

    /// From the body of `GET <endpoint>/public/public.json`.
    public init(json bytes: some Collection<UInt8>) throws(MetadataError) {
        try self.init(reader: DocumentReader(document: .public, bytes: bytes))
    }

    /// From the `metadataCache.public` value of a status.
    public init(value: JSON) throws(MetadataError) {
        try self.init(reader: DocumentReader(document: .public, value: value))
    }

    private init(reader: DocumentReader) throws(MetadataError) {
        let uuid = try reader.requiredString("clusterUUID")
        guard TrustedPeer.isValidClusterID(uuid) else {
            throw reader.fail("clusterUUID", "\(MessageText.quoted(uuid, limit: 80)) is not a valid cluster ID (1-64 letters, digits, '.', '_' or '-')")
        }
        let key = try reader.requiredString("authnKeyPub")
        let ca = try reader.requiredString("rootCA")
        do {
            self.trustedPeer = try TrustedPeer(clusterUUID: uuid, authnKeyPub: key, rootCA: ca)
        } catch {
            throw reader.fail(error.field, Self.problem(of: error))
        }
        self.clusterUUID = uuid
        self.authnKeyPub = key
        self.rootCA = ca
    }

    private static func problem(of error: PeersFileError) -> String {
        switch error.problem {
        case .invalidPEM(let keyError): keyError.description
        case .noCertificate: "no CERTIFICATE block found"
        default: error.description
        }
    }

    /// Deckhouse's member order, for `status.metadataCache.public`.
    public var json: JSON {
        .object([("clusterUUID", .string(clusterUUID)), ("authnKeyPub", .string(authnKeyPub)), ("rootCA", .string(rootCA))])
    }
}

/// One ingress gateway of a peer: where east-west traffic enters it.
public struct PeerIngressGateway: Sendable, Hashable, Comparable {
    public let address: String
    public let port: Int

    public init(address: String, port: Int) {
        self.address = address
        self.port = port
    }

    public static func < (a: PeerIngressGateway, b: PeerIngressGateway) -> Bool {
        (a.address, a.port) < (b.address, b.port)
    }
}

/// `GET <endpoint>/private/multicluster.json` (JWT scope
/// `private-multicluster`): how to reach the peer.
/// `{"apiHost": "host[:port]", "networkName": "...", "ingressGateways": [{"address": "...", "port": 15443}]}`,
/// plus the Isthmus additions `clusterDomain`, `podSubnetCIDR` and
/// `serviceSubnetCIDR` (absent from a Deckhouse peer, so optional).
public struct PrivateMetadata: Sendable, Hashable {
    public let apiHost: String
    public let networkName: String
    public let ingressGateways: [PeerIngressGateway]
    public let clusterDomain: String?
    /// As published (comma-separated for dual stack); parsed in `podSubnets`.
    public let podSubnetCIDR: String?
    public let serviceSubnetCIDR: String?
    public let podSubnets: CIDRList?
    public let serviceSubnets: CIDRList?

    /// From the body of `GET <endpoint>/private/multicluster.json`.
    public init(json bytes: some Collection<UInt8>) throws(MetadataError) {
        try self.init(reader: DocumentReader(document: .private, bytes: bytes))
    }

    /// From the `metadataCache.private` value of a status.
    public init(value: JSON) throws(MetadataError) {
        try self.init(reader: DocumentReader(document: .private, value: value))
    }

    private init(reader: DocumentReader) throws(MetadataError) {
        let apiHost = try reader.requiredString("apiHost")
        guard Self.isValidHostPort(apiHost) else {
            throw reader.fail("apiHost", "\(MessageText.quoted(apiHost)) is not host[:port] (no scheme, path or spaces)")
        }
        self.apiHost = apiHost
        self.networkName = try reader.requiredString("networkName", allowEmpty: true)
        var gateways: [PeerIngressGateway] = []
        switch reader.object["ingressGateways"] {
        case nil, .null?:
            break  // Go marshals an empty slice as null
        case .array(let items)?:
            for (index, item) in items.enumerated() {
                let field = "ingressGateways[\(index)]"
                guard item.isObject else { throw reader.fail(field, "must be an object, found \(item.kindName)") }
                guard case .string(let address)? = item["address"], !address.isEmpty,
                    address.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F })
                else { throw reader.fail(field + ".address", "must be a non-empty host name or IP address") }
                guard let port = item["port"]?.intValue, (1...65535).contains(port) else {
                    throw reader.fail(field + ".port", "must be an integer port (1-65535)")
                }
                gateways.append(PeerIngressGateway(address: address, port: port))
            }
        case let other?:
            throw reader.fail("ingressGateways", "must be an array, found \(other.kindName)")
        }
        self.ingressGateways = gateways
        self.clusterDomain = try reader.optionalString("clusterDomain")
        func subnets(_ field: String) throws(MetadataError) -> (String?, CIDRList?) {
            guard let text = try reader.optionalString(field) else { return (nil, nil) }
            switch CIDRList.parse(text) {
            case .success(let list): return (text, list)
            case .failure(let error): throw reader.fail(field, error.description)
            }
        }
        (self.podSubnetCIDR, self.podSubnets) = try subnets("podSubnetCIDR")
        (self.serviceSubnetCIDR, self.serviceSubnets) = try subnets("serviceSubnetCIDR")
    }

    /// `host`, `host:port`, `[v6]` or `[v6]:port`: what goes after `https://`.
    static func isValidHostPort(_ text: String) -> Bool {
        guard !text.isEmpty, text.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else { return false }
        guard !text.contains("/"), !text.contains("@"), !text.contains("?"), !text.contains("#") else { return false }
        var host = Substring(text)
        var port: Substring? = nil
        if host.first == "[" {
            guard let end = host.firstIndex(of: "]") else { return false }
            let after = host[host.index(after: end)...]
            if !after.isEmpty {
                guard after.first == ":" else { return false }
                port = after.dropFirst()
            }
            guard IPAddress(host[host.index(after: host.startIndex)..<end])?.family == .v6 else { return false }
            host = host[...end]
        } else {
            if let colon = host.firstIndex(of: ":") {
                port = host[host.index(after: colon)...]
                host = host[..<colon]
            }
            // A DNS name or an IPv4 address: nothing else (found by FuzzPeerDocuments: a
            // `\`, which WHATWG URL parsers read as `/`, was accepted in the host).
            guard !host.isEmpty, host.utf8.allSatisfy({ byte in
                (byte >= 0x30 && byte <= 0x39) || ((byte | 0x20) >= 0x61 && (byte | 0x20) <= 0x7A)
                    || byte == UInt8(ascii: "-") || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_")
            }) else { return false }
        }
        if let port {
            guard let value = Int(port), (1...65535).contains(value), port.allSatisfy(\.isASCII) else { return false }
        }
        return true
    }

    /// Deckhouse's member order, then the Isthmus additions that are set,
    /// for `status.metadataCache.private`.
    public var json: JSON {
        var members: [(String, JSON)] = [
            ("apiHost", .string(apiHost)), ("networkName", .string(networkName)),
            ("ingressGateways", .array(ingressGateways.map { .object([("address", .string($0.address)), ("port", .int($0.port))]) })),
        ]
        if let clusterDomain { members.append(("clusterDomain", .string(clusterDomain))) }
        if let podSubnetCIDR { members.append(("podSubnetCIDR", .string(podSubnetCIDR))) }
        if let serviceSubnetCIDR { members.append(("serviceSubnetCIDR", .string(serviceSubnetCIDR))) }
        return .object(members)
    }
}

/// Why fetching a metadata document failed, phrased so an operator knows
/// what to fix. Built by the fetcher (transport) or by
/// ``PeerMetadataResponse/interpret(document:status:contentType:body:)``.
public enum FetchFailure: Error, Sendable, Hashable, CustomStringConvertible {
    /// No HTTP response: DNS, connection, TLS, timeout. The text is the
    /// transport's own error.
    case unreachable(String)
    /// The peer refused our token (401/403): it does not trust this cluster
    /// yet, or trusts an old key of ours.
    case refused(code: Int, message: String?)
    /// Another HTTP status.
    case httpStatus(code: Int, message: String?)
    /// A body that is not JSON by its media type (an ingress error page, a
    /// login page).
    case wrongContentType(String)
    case invalidDocument(MetadataError)
    /// The document is well-formed but names a peer we must not trust under
    /// this object (our own UUID, or one another object already claims).
    case rejected(String)

    public var description: String {
        switch self {
        case .unreachable(let text): return "unreachable: \(text)"
        case .refused(let code, let message):
            return "HTTP \(code)\(message.map { " (\($0))" } ?? ""): the peer does not accept this cluster's token; "
                + "make sure the peer has an IstioMulticluster pointing at this cluster and has fetched our current key"
        case .httpStatus(let code, let message): return "HTTP \(code)\(message.map { " (\($0))" } ?? "")"
        case .wrongContentType(let type):
            return "the response is \(MessageText.quoted(type)), not JSON: is the endpoint the peer's metadata service and not an ingress error page?"
        case .invalidDocument(let error): return error.description
        case .rejected(let text): return text
        }
    }

    /// A short CamelCase reason for conditions and the metrics label.
    public var reason: String {
        switch self {
        case .unreachable: "EndpointUnreachable"
        case .refused: "TokenRefused"
        case .httpStatus: "HTTPError"
        case .wrongContentType: "WrongContentType"
        case .invalidDocument: "InvalidMetadata"
        case .rejected: "ClusterUUIDRejected"
        }
    }
}

/// Turns an HTTP response into a metadata document or a ``FetchFailure``.
public enum PeerMetadataResponse {
    /// Media types taken as JSON. Absent is accepted (a static file server
    /// or `file://`); `text/plain` too, since some static servers label
    /// `.json` files so. Anything else, HTML above all, is an error page.
    static func isAcceptable(contentType: String?) -> Bool {
        guard let contentType else { return true }
        let media = contentType.split(separator: ";").first.map { String($0.trimmingASCIISpaces()).lowercased() } ?? ""
        return media == "application/json" || media == "text/plain" || media.isEmpty
            || (media.hasPrefix("application/") && media.hasSuffix("+json"))
    }

    /// The `message` of a Kubernetes-style Status body, if it is one, cut short.
    static func statusMessage(_ body: [UInt8]) -> String? {
        guard let json = try? JSON(parsing: body), let message = json["message"]?.stringValue else { return nil }
        return MessageText.truncated(message, limit: 200)
    }

    /// A public metadata response: 200 with a JSON body, or why not.
    public static func interpretPublic(status: Int, contentType: String?, body: [UInt8]) -> Result<PublicMetadata, FetchFailure> {
        if let failure = check(status: status, contentType: contentType, body: body) { return .failure(failure) }
        do { return .success(try PublicMetadata(json: body)) } catch { return .failure(.invalidDocument(error)) }
    }

    /// A private metadata response: 200 with a JSON body, or why not (401/403: our token was refused).
    public static func interpretPrivate(status: Int, contentType: String?, body: [UInt8]) -> Result<PrivateMetadata, FetchFailure> {
        if let failure = check(status: status, contentType: contentType, body: body) { return .failure(failure) }
        do { return .success(try PrivateMetadata(json: body)) } catch { return .failure(.invalidDocument(error)) }
    }

    static func check(status: Int, contentType: String?, body: [UInt8]) -> FetchFailure? {
        switch status {
        case 200: break
        case 401, 403: return .refused(code: status, message: statusMessage(body))
        default: return .httpStatus(code: status, message: statusMessage(body))
        }
        guard isAcceptable(contentType: contentType) else { return .wrongContentType(contentType ?? "") }
        return nil
    }
}
