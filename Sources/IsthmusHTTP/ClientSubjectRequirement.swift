import SwiftASN1
import X509

/// The subject a client certificate must carry, written as `O=ingress-nginx:auth`
/// or `CN=ingress,O=edge`: every attribute named must appear in the
/// certificate's subject with exactly that value (other attributes may too).
///
/// Only the certificate's chain to the configured CA is checked by TLS; this
/// narrows which of that CA's certificates count (a cluster CA signs many).
public struct ClientSubjectRequirement: Sendable, Hashable, CustomStringConvertible {
    public struct Attribute: Sendable, Hashable {
        /// The short name as written: CN, O, OU, C, L or ST.
        public var name: String
        public var value: String
    }

    public var attributes: [Attribute]

    static let attributeTypes: [String: ASN1ObjectIdentifier] = [
        "CN": .RDNAttributeType.commonName,
        "O": .RDNAttributeType.organizationName,
        "OU": .RDNAttributeType.organizationalUnitName,
        "C": .RDNAttributeType.countryName,
        "L": .RDNAttributeType.localityName,
        "ST": .RDNAttributeType.stateOrProvinceName,
    ]

    /// Parses `NAME=value[,NAME=value...]`; the error says what is wrong.
    public init(parsing text: String) throws(ClientSubjectRequirementError) {
        var attributes: [Attribute] = []
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            let pair = part.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = pair[0].trimmingSpaces.uppercased()
            guard pair.count == 2, Self.attributeTypes[name] != nil else {
                throw ClientSubjectRequirementError(
                    "expected NAME=value[,NAME=value...] with NAME one of CN, O, OU, C, L, ST; got \"\(part)\"")
            }
            let value = pair[1].trimmingSpaces
            guard !value.isEmpty else { throw ClientSubjectRequirementError("\(name) has an empty value") }
            attributes.append(Attribute(name: name, value: value))
        }
        self.attributes = attributes
    }

    public var description: String { attributes.map { "\($0.name)=\($0.value)" }.joined(separator: ",") }

    /// Whether `subject` holds every required attribute.
    public func matches(_ subject: DistinguishedName) -> Bool {
        attributes.allSatisfy { required in
            let type = Self.attributeTypes[required.name]
            return subject.contains { rdn in
                rdn.contains { $0.type == type && String(describing: $0.value) == required.value }
            }
        }
    }

    /// Whether the DER certificate's subject matches; false when it does not parse.
    public func matches(certificateDER der: [UInt8]) -> Bool {
        guard let certificate = try? Certificate(derEncoded: der) else { return false }
        return matches(certificate.subject)
    }
}

/// Why a `--client-subject` value was refused.
public struct ClientSubjectRequirementError: Error, Sendable, Hashable, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}

extension Substring {
    fileprivate var trimmingSpaces: String {
        String(drop { $0 == " " }.reversed().drop { $0 == " " }.reversed())
    }
}
