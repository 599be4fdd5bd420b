import Foundation
import Crypto
import IsthmusKubeTypes
import IsthmusTrust

/// One address peers reach this cluster's ingress gateway on (DESIGN §2
/// `ingressGateways[]`): an IP or a DNS name, and a TCP port.
public struct IngressGateway: Sendable, Hashable, CustomStringConvertible {
    public var address: String
    public var port: Int

    public init(address: String, port: Int) {
        self.address = address
        self.port = port
    }

    /// From `ADDRESS:PORT`; an IPv6 address is written in brackets, `[fd00::1]:15443`.
    public init?(parsing text: String) {
        let address: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else { return nil }
            address = text[text.index(after: text.startIndex)..<close]
            portText = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":") else { return nil }
            address = text[..<colon]
            portText = text[text.index(after: colon)...]
            guard !address.contains(":") else { return nil }  // unbracketed IPv6
        }
        guard let port = Int(portText), !address.isEmpty else { return nil }
        self.init(address: String(address), port: port)
    }

    public var description: String { address.contains(":") ? "[\(address)]:\(port)" : "\(address):\(port)" }

    /// Deckhouse's shape, `{"address": "...", "port": 15443}`.
    var json: JSON { .object([("address", .string(address)), ("port", .int(port))]) }
}

/// Why metadata sources were refused: the field (as the operator names it,
/// a flag or a config key) and what is wrong with it. One line.
public struct MetadataSourceError: Error, Sendable, Hashable, CustomStringConvertible {
    public var field: String
    public var problem: String

    public init(field: String, problem: String) {
        self.field = field
        self.problem = problem
    }

    public var description: String { "\(field): \(problem)" }
}

/// Everything the two metadata documents are made of, already read and parsed.
/// A plain value, so documents are a pure function of it.
public struct MetadataSources: Sendable, Equatable {
    /// This cluster's UUID (`clusterUUID`, and the `aud` peers put in tokens).
    public var clusterUUID: String
    /// The keys peers verify our tokens with, current first. Published together
    /// in `authnKeyPub` (several PEM blocks during a rotation).
    public var authnKeys: [PeerPublicKey]
    /// The Istio root CA (PEM), published verbatim as `rootCA`.
    public var rootCA: String
    /// Where peers reach this cluster's API (the proxy's Ingress): `host[:port]`, no scheme.
    public var apiHost: String
    /// The Istio network this cluster's workloads are on (`values.global.network`).
    public var networkName: String
    public var ingressGateways: [IngressGateway]
    /// The cluster's DNS domain; peers require it to equal theirs.
    public var clusterDomain: String
    /// Pod and Service CIDRs (IPv4 and/or IPv6); peers require them not to overlap theirs.
    public var podSubnetCIDRs: [String]
    public var serviceSubnetCIDRs: [String]

    public init(
        clusterUUID: String, authnKeys: [PeerPublicKey], rootCA: String, apiHost: String, networkName: String,
        ingressGateways: [IngressGateway], clusterDomain: String = "cluster.local",
        podSubnetCIDRs: [String] = [], serviceSubnetCIDRs: [String] = []
    ) {
        self.clusterUUID = clusterUUID
        self.authnKeys = authnKeys
        self.rootCA = rootCA
        self.apiHost = apiHost
        self.networkName = networkName
        self.ingressGateways = ingressGateways
        self.clusterDomain = clusterDomain
        self.podSubnetCIDRs = podSubnetCIDRs
        self.serviceSubnetCIDRs = serviceSubnetCIDRs
    }

    /// Checks every field a peer will read, so a mistake fails at load (naming
    /// the field) instead of as a puzzling condition in every peer cluster.
    public func validate() throws(MetadataSourceError) {
        guard TrustedPeer.isValidClusterID(clusterUUID) else {
            throw MetadataSourceError(field: "clusterUUID", problem: "not a cluster UUID (1-64 letters, digits, '.', '_' or '-')")
        }
        guard !authnKeys.isEmpty else { throw MetadataSourceError(field: "key", problem: "no public key") }
        do {
            let blocks = try PEMBlock.parseAll(rootCA)
            guard blocks.contains(where: { $0.label == "CERTIFICATE" }) else {
                throw MetadataSourceError(field: "rootCA", problem: "no CERTIFICATE block found")
            }
        } catch let error as MetadataSourceError {
            throw error
        } catch {
            throw MetadataSourceError(field: "rootCA", problem: "\(error)")
        }
        if let problem = Self.apiHostProblem(apiHost) { throw MetadataSourceError(field: "apiHost", problem: problem) }
        guard !networkName.isEmpty, networkName.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            throw MetadataSourceError(field: "networkName", problem: "must be a non-empty name without spaces")
        }
        for (index, gateway) in ingressGateways.enumerated() {
            guard !gateway.address.isEmpty, gateway.address.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "/") }) else {
                throw MetadataSourceError(field: "ingressGateways[\(index)].address", problem: "must be an IP address or a DNS name")
            }
            guard (1...65535).contains(gateway.port) else {
                throw MetadataSourceError(field: "ingressGateways[\(index)].port", problem: "\(gateway.port) is not a TCP port (1-65535)")
            }
        }
        guard !clusterDomain.isEmpty, !clusterDomain.hasSuffix("."),
              clusterDomain.split(separator: ".", omittingEmptySubsequences: false).allSatisfy(Self.isDNSLabel)
        else {
            throw MetadataSourceError(field: "clusterDomain", problem: "\(clusterDomain.debugDescription) is not a DNS domain such as cluster.local")
        }
        for (field, list) in [("podSubnetCIDR", podSubnetCIDRs), ("serviceSubnetCIDR", serviceSubnetCIDRs)] {
            for cidr in list where !CIDRSyntax.isValid(cidr) {
                throw MetadataSourceError(field: field, problem: "\(cidr.debugDescription) is not an IPv4 or IPv6 CIDR such as 10.111.0.0/16")
            }
        }
    }

    /// `host[:port]` only: a scheme or a path would be doubled when the peer
    /// writes `https://<apiHost>` into istiod's kubeconfig.
    static func apiHostProblem(_ host: String) -> String? {
        if host.isEmpty { return "must be set (host[:port] of the proxy's public address)" }
        if host.contains("://") { return "must be host[:port] without a scheme, got \(host.debugDescription)" }
        if host.contains("/") || host.contains("?") || host.contains("#") {
            return "must be host[:port] without a path, got \(host.debugDescription)"
        }
        if !host.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) { return "must not contain spaces or control characters" }
        return nil
    }

    static func isDNSLabel(_ label: Substring) -> Bool {
        let bytes = Array(label.utf8)
        guard (1...63).contains(bytes.count), bytes.first != UInt8(ascii: "-"), bytes.last != UInt8(ascii: "-") else { return false }
        return bytes.allSatisfy { b in
            (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "z")) || (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9"))
                || b == UInt8(ascii: "-")
        }
    }
}

/// One serialized document: the bytes served, and their strong ETag.
public struct MetadataDocument: Sendable, Equatable {
    public let body: [UInt8]
    /// `"<first 16 bytes of the body's SHA-256, hex>"`: changes exactly when the body does.
    public let etag: String

    init(_ json: JSON) {
        let body = json.bytes()
        self.body = body
        let digest = SHA256.hash(data: body)
        self.etag = "\"" + digest.prefix(16).map { byte in
            let digits = Array("0123456789abcdef")
            return String([digits[Int(byte >> 4)], digits[Int(byte & 0xF)]])
        }.joined() + "\""
    }

    public var text: String { String(decoding: body, as: UTF8.self) }
}

/// The public and private metadata of DESIGN §2, built once per change of
/// their sources and then served as bytes.
///
/// Member order is fixed, Deckhouse's: public `clusterUUID, authnKeyPub,
/// rootCA`; private `apiHost, networkName, ingressGateways`, then the Isthmus
/// additions `clusterDomain, podSubnetCIDR, serviceSubnetCIDR` (Deckhouse
/// ignores unknown fields). The CIDR lists are one comma-separated string each,
/// as Deckhouse's ClusterConfiguration and kube-controller-manager's
/// `--cluster-cidr` spell dual-stack; an empty list omits its field, so a peer
/// can tell "not configured" from a value.
public struct MetadataDocuments: Sendable, Equatable {
    public let sources: MetadataSources
    /// `GET /metadata/public/public.json`, served to anyone.
    public let publicMetadata: MetadataDocument
    /// `GET /metadata/private/multicluster.json`, served to trusted peers.
    public let privateMetadata: MetadataDocument

    /// Validates `sources` (see ``MetadataSources/validate()``) and serializes both documents.
    public init(_ sources: MetadataSources) throws(MetadataSourceError) {
        try sources.validate()
        self.sources = sources
        self.publicMetadata = MetadataDocument(Self.publicJSON(sources))
        self.privateMetadata = MetadataDocument(Self.privateJSON(sources))
    }

    static func publicJSON(_ sources: MetadataSources) -> JSON {
        .object([
            ("clusterUUID", .string(sources.clusterUUID)),
            ("authnKeyPub", .string(sources.authnKeys.map(\.pemRepresentation).joined())),
            ("rootCA", .string(sources.rootCA)),
        ])
    }

    static func privateJSON(_ sources: MetadataSources) -> JSON {
        var members: [(String, JSON)] = [
            ("apiHost", .string(sources.apiHost)),
            ("networkName", .string(sources.networkName)),
            ("ingressGateways", .array(sources.ingressGateways.map(\.json))),
            ("clusterDomain", .string(sources.clusterDomain)),
        ]
        if !sources.podSubnetCIDRs.isEmpty {
            members.append(("podSubnetCIDR", .string(sources.podSubnetCIDRs.joined(separator: ","))))
        }
        if !sources.serviceSubnetCIDRs.isEmpty {
            members.append(("serviceSubnetCIDR", .string(sources.serviceSubnetCIDRs.joined(separator: ","))))
        }
        return .object(members)
    }
}

/// Syntax of an IPv4 or IPv6 CIDR (`10.111.0.0/16`, `fd00:10::/56`). Only the
/// syntax: whether two clusters' ranges overlap is the controller's check.
enum CIDRSyntax {
    static func isValid(_ text: String) -> Bool {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let prefix = Int(parts[1]), parts[1].allSatisfy(\.isASCII) else { return false }
        if parts[0].contains(":") {
            return (0...128).contains(prefix) && isIPv6(parts[0])
        }
        return (0...32).contains(prefix) && isIPv4(parts[0])
    }

    static func isIPv4(_ text: Substring) -> Bool {
        let octets = text.split(separator: ".", omittingEmptySubsequences: false)
        return octets.count == 4 && octets.allSatisfy { octet in
            !octet.isEmpty && octet.count <= 3 && octet.allSatisfy { $0.isASCII && $0.isNumber }
                && (Int(octet) ?? 256) <= 255 && !(octet.count > 1 && octet.first == "0")
        }
    }

    /// RFC 4291 §2.2 text forms, including `::` compression and a trailing dotted quad.
    static func isIPv6(_ text: Substring) -> Bool {
        var groups = text.components(separatedBy: ":")
        var budget = 8
        if let last = groups.last, last.contains(".") {
            guard isIPv4(Substring(last)) else { return false }
            groups.removeLast()
            groups.append("0")
            groups.append("0")
            budget = 8
        }
        let text = groups.joined(separator: ":")
        let halves = text.components(separatedBy: "::")
        guard halves.count <= 2 else { return false }
        func hexGroups(_ s: String) -> Int? {
            if s.isEmpty { return 0 }
            let parts = s.split(separator: ":", omittingEmptySubsequences: false)
            for part in parts {
                guard (1...4).contains(part.count), part.allSatisfy(\.isHexDigit) else { return nil }
            }
            return parts.count
        }
        if halves.count == 1 {
            return hexGroups(halves[0]) == budget
        }
        guard let left = hexGroups(halves[0]), let right = hexGroups(halves[1]) else { return false }
        return left + right < budget
    }
}
