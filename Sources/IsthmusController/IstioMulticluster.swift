import IsthmusKubeTypes
import IsthmusTrust

/// A problem in an `IstioMulticluster` spec, naming the field, e.g.
/// `spec.metadata.endpoint: must start with https:// or file://`.
public struct SpecError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The JSON path of the field, e.g. `spec.metadata.ca`.
    public let field: String
    public let problem: String
    /// - Parameters:
    ///   - field: the JSON path of the field.
    ///   - problem: what is wrong, worded for the operator.
    public init(field: String, problem: String) {
        self.field = field
        self.problem = problem
    }
    public var description: String { "\(field): \(problem)" }
}

/// Where a peer's metadata service lives: the `metadataEndpoint` of the
/// seed, e.g. `https://istio.k8s-a.example.com/metadata/`.
///
/// `https://` is the normal case. `file://` reads the documents from a
/// directory (air-gapped setups and tests: `<dir>/public/public.json`).
/// `http://` is accepted only for loopback hosts, so plain text never
/// crosses a network: the public document carries the key we will trust.
public struct MetadataEndpoint: Sendable, Hashable, CustomStringConvertible {
    public enum Scheme: String, Sendable, Hashable { case https, http, file }

    public let scheme: Scheme
    /// The endpoint without trailing slashes; documents are appended to it.
    public let base: String

    /// `<endpoint>/public/public.json`, fetched without authentication.
    public var publicURL: String { base + "/public/public.json" }
    /// `<endpoint>/private/multicluster.json`, fetched with a JWT of scope
    /// `private-multicluster`.
    public var privateURL: String { base + "/private/multicluster.json" }
    /// For `file://` endpoints, the directory path.
    public var filePath: String? { scheme == .file ? String(base.dropFirst("file://".count)) : nil }

    public var description: String { base }

    /// - Parameter field: the spec field the text came from, for errors.
    public init(parsing text: String, field: String) throws(SpecError) {
        func fail(_ problem: String) -> SpecError { SpecError(field: field, problem: problem) }
        guard !text.isEmpty else { throw fail("must not be empty") }
        guard text.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            throw fail("must be a URL without spaces or control characters")
        }
        let lower = text.lowercased()
        let scheme: Scheme
        if lower.hasPrefix("https://") { scheme = .https }
        else if lower.hasPrefix("http://") { scheme = .http }
        else if lower.hasPrefix("file://") { scheme = .file }
        else { throw fail("must start with https:// (or file:// for a local directory), found \(MessageText.quoted(text))") }
        let rest = text.dropFirst(scheme.rawValue.count + 3)
        guard !rest.contains("?"), !rest.contains("#") else { throw fail("must not have a query or fragment") }
        var trimmed = Substring(rest)
        while trimmed.last == "/" { trimmed = trimmed.dropLast() }
        if scheme == .file {
            guard trimmed.first == "/" else { throw fail("a file:// endpoint needs an absolute path (file:///dir)") }
        } else {
            let authority = trimmed.prefix { $0 != "/" }
            guard !authority.isEmpty else { throw fail("has no host") }
            guard !authority.contains("@") else { throw fail("must not carry credentials") }
            if scheme == .http {
                let host = Self.host(ofAuthority: authority)
                guard ["127.0.0.1", "localhost", "[::1]"].contains(host.lowercased()) else {
                    throw fail("plain http:// is allowed only for loopback hosts; use https://")
                }
            }
        }
        self.scheme = scheme
        self.base = scheme.rawValue + "://" + trimmed
    }

    static func host(ofAuthority authority: Substring) -> Substring {
        if authority.first == "[" {
            guard let end = authority.firstIndex(of: "]") else { return authority }
            return authority[...end]
        }
        return authority.prefix { $0 != ":" }
    }
}

/// The desired state an `IstioMulticluster` describes.
///
/// Both spec forms are accepted: the seed's `spec.metadataEndpoint`, and the
/// newer `spec.metadata.{endpoint, ca, insecureSkipVerify}`. When both name
/// an endpoint they must agree, so an edit to one is never silently ignored.
public struct IstioMulticlusterSpec: Sendable, Hashable {
    public var endpoint: MetadataEndpoint
    /// PEM of the CA that signs the peer's metadata and API endpoints
    /// (`spec.metadata.ca`); nil means the system trust store.
    public var ca: String?
    /// `spec.metadata.insecureSkipVerify`: no TLS verification of the peer.
    public var insecureSkipVerify: Bool
    /// `spec.enableIngressGateway` (default true): whether the peer's
    /// ingress gateways go into the mesh networks.
    public var enableIngressGateway: Bool

    /// From parsed values (tests, code); `init(json:)` reads an object's spec.
    public init(endpoint: MetadataEndpoint, ca: String? = nil, insecureSkipVerify: Bool = false, enableIngressGateway: Bool = true) {
        self.endpoint = endpoint
        self.ca = ca
        self.insecureSkipVerify = insecureSkipVerify
        self.enableIngressGateway = enableIngressGateway
    }

    /// From the object's `spec` value.
    public init(json spec: JSON?) throws(SpecError) {
        guard let spec else { throw SpecError(field: "spec", problem: "is missing") }
        guard spec.isObject else { throw SpecError(field: "spec", problem: "must be an object") }
        func string(_ value: JSON?, _ field: String) throws(SpecError) -> String? {
            switch value {
            case nil, .null?: return nil
            case .string(let s)?: return s
            case let other?: throw SpecError(field: field, problem: "must be a string, found \(other.kindName)")
            }
        }
        func bool(_ value: JSON?, _ field: String) throws(SpecError) -> Bool? {
            switch value {
            case nil, .null?: return nil
            case .bool(let b)?: return b
            case let other?: throw SpecError(field: field, problem: "must be true or false, found \(other.kindName)")
            }
        }
        let legacy = try string(spec["metadataEndpoint"], "spec.metadataEndpoint")
        var nestedEndpoint: String? = nil
        var ca: String? = nil
        var insecure = false
        switch spec["metadata"] {
        case nil, .null?:
            break
        case .object?:
            let metadata = spec["metadata"]
            nestedEndpoint = try string(metadata?["endpoint"], "spec.metadata.endpoint")
            ca = try string(metadata?["ca"], "spec.metadata.ca")
            insecure = try bool(metadata?["insecureSkipVerify"], "spec.metadata.insecureSkipVerify") ?? false
        case let other?:
            throw SpecError(field: "spec.metadata", problem: "must be an object, found \(other.kindName)")
        }
        let endpoint: MetadataEndpoint
        switch (legacy, nestedEndpoint) {
        case (nil, nil):
            throw SpecError(field: "spec.metadata.endpoint", problem: "is required (or the older spec.metadataEndpoint)")
        case (let l?, nil):
            endpoint = try MetadataEndpoint(parsing: l, field: "spec.metadataEndpoint")
        case (nil, let n?):
            endpoint = try MetadataEndpoint(parsing: n, field: "spec.metadata.endpoint")
        case (let l?, let n?):
            let a = try MetadataEndpoint(parsing: l, field: "spec.metadataEndpoint")
            endpoint = try MetadataEndpoint(parsing: n, field: "spec.metadata.endpoint")
            guard a == endpoint else {
                throw SpecError(
                    field: "spec.metadataEndpoint",
                    problem: "is \(MessageText.quoted(l)) but spec.metadata.endpoint is \(MessageText.quoted(n)); set only one of them")
            }
        }
        if let ca {
            let blocks: [PEMBlock]
            do { blocks = try PEMBlock.parseAll(ca) } catch {
                throw SpecError(field: "spec.metadata.ca", problem: "is not PEM: \(error)")
            }
            guard blocks.contains(where: { $0.label == "CERTIFICATE" }) else {
                throw SpecError(field: "spec.metadata.ca", problem: "holds no CERTIFICATE block")
            }
        }
        self.init(
            endpoint: endpoint, ca: ca, insecureSkipVerify: insecure,
            enableIngressGateway: try bool(spec["enableIngressGateway"], "spec.enableIngressGateway") ?? true)
    }
}

/// An `IstioMulticluster` object (`deckhouse.io/v1alpha1`, cluster-scoped)
/// as the controller sees it: identity, the parsed spec (or why it is
/// invalid) and the status last written.
public struct IstioMulticluster: Sendable {
    public static let apiVersion = "deckhouse.io/v1alpha1"
    public static let kind = "IstioMulticluster"

    public var name: String
    public var generation: Int
    /// `metadata.creationTimestamp`; the older of two objects claiming the
    /// same peer keeps it.
    public var creationTimestamp: String
    public var spec: Result<IstioMulticlusterSpec, SpecError>
    /// The `status` value as stored (may be absent).
    public var status: JSON?

    /// From parsed values (tests, code); `init(json:)` reads an object.
    public init(name: String, generation: Int = 1, creationTimestamp: String = "",
                spec: Result<IstioMulticlusterSpec, SpecError>, status: JSON? = nil) {
        self.name = name
        self.generation = generation
        self.creationTimestamp = creationTimestamp
        self.spec = spec
        self.status = status
    }

    /// From the object as the API server returns it. Only a missing name is
    /// an error: a bad spec is carried as `spec = .failure` so the
    /// controller can say so in the object's own status.
    public init(json: JSON) throws(SpecError) {
        guard let name = json.value(at: ["metadata", "name"])?.stringValue, !name.isEmpty else {
            throw SpecError(field: "metadata.name", problem: "is missing")
        }
        self.name = name
        self.generation = json.value(at: ["metadata", "generation"])?.intValue ?? 0
        self.creationTimestamp = json.value(at: ["metadata", "creationTimestamp"])?.stringValue ?? ""
        do throws(SpecError) {
            self.spec = .success(try IstioMulticlusterSpec(json: json["spec"]))
        } catch {
            self.spec = .failure(error)
        }
        self.status = json["status"]
    }
}

extension JSON {
    /// "a string", "a number"... for messages.
    var kindName: String {
        switch self {
        case .object: "an object"
        case .array: "an array"
        case .string: "a string"
        case .number: "a number"
        case .bool: "a boolean"
        case .null: "null"
        }
    }
}
