import Crypto
import Foundation
import SwiftASN1
import X509

/// A private CA and the serving certificate it signs, as PEM.
///
/// For dev mode and tests: a server that runs with no cluster needs TLS that
/// kubectl and client-go verify (they refuse a certificate without a SAN for
/// the address they dial), so the CA is written into the kubeconfig.
public struct ServingCertificates: Sendable, Equatable {
    public var caCertificatePEM: String
    public var certificatePEM: String
    public var privateKeyPEM: String

    public init(caCertificatePEM: String, certificatePEM: String, privateKeyPEM: String) {
        self.caCertificatePEM = caCertificatePEM
        self.certificatePEM = certificatePEM
        self.privateKeyPEM = privateKeyPEM
    }

    /// A fresh P-256 CA and a serving certificate for `dnsNames` and `ipAddresses`.
    public static func generate(
        commonName: String = "isthmus-fake-apiserver",
        dnsNames: [String] = ["localhost"],
        ipAddresses: [String] = ["127.0.0.1", "::1"],
        now: Date = Date(),
        validity: TimeInterval = 365 * 24 * 3600
    ) throws -> ServingCertificates {
        let caKey = P256.Signing.PrivateKey()
        let caName = try DistinguishedName { CommonName("\(commonName)-ca") }
        let notBefore = now.addingTimeInterval(-3600)
        let notAfter = now.addingTimeInterval(validity)
        let caKeyID = ArraySlice(Insecure.SHA1.hash(data: caKey.publicKey.derRepresentation))
        let ca = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(),
            publicKey: Certificate.PublicKey(caKey.publicKey),
            notValidBefore: notBefore, notValidAfter: notAfter,
            issuer: caName, subject: caName,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: nil))
                Critical(KeyUsage(digitalSignature: true, keyCertSign: true, cRLSign: true))
                SubjectKeyIdentifier(keyIdentifier: caKeyID)
            },
            issuerPrivateKey: Certificate.PrivateKey(caKey))

        let key = P256.Signing.PrivateKey()
        let subject = try DistinguishedName { CommonName(commonName) }
        var names: [GeneralName] = dnsNames.map { .dnsName($0) }
        for ip in ipAddresses {
            guard let bytes = Self.ipBytes(ip) else { continue }
            names.append(.ipAddress(ASN1OctetString(contentBytes: ArraySlice(bytes))))
        }
        let leaf = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(),
            publicKey: Certificate.PublicKey(key.publicKey),
            notValidBefore: notBefore, notValidAfter: notAfter,
            issuer: caName, subject: subject,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([.serverAuth])
                SubjectAlternativeNames(names)
                AuthorityKeyIdentifier(keyIdentifier: caKeyID)
            },
            issuerPrivateKey: Certificate.PrivateKey(caKey))
        return ServingCertificates(
            caCertificatePEM: try ca.serializeAsPEM().pemString + "\n",
            certificatePEM: try leaf.serializeAsPEM().pemString + "\n",
            privateKeyPEM: key.pemRepresentation + "\n")
    }

    /// Throws unless the private key is the one the leaf certificate names:
    /// TLS libraries accept a mismatched pair and only fail at handshake time.
    public func checkKeyMatchesCertificate() throws {
        let certificate: Certificate
        do {
            // The leaf comes first in a chain file.
            guard let leaf = try PEMDocument.parseMultiple(pemString: certificatePEM).first else {
                throw ServingCertificateError("no CERTIFICATE block")
            }
            certificate = try Certificate(pemDocument: leaf)
        } catch {
            throw ServingCertificateError("the certificate is not a PEM certificate: \(error)")
        }
        let key: Certificate.PrivateKey
        do {
            key = try Certificate.PrivateKey(pemEncoded: privateKeyPEM)
        } catch {
            throw ServingCertificateError("the key is not a PEM private key: \(error)")
        }
        guard key.publicKey == certificate.publicKey else {
            throw ServingCertificateError("the private key does not belong to the certificate")
        }
    }

    /// IPv4 dotted quad or IPv6 (with `::`) to network-order bytes.
    static func ipBytes(_ text: String) -> [UInt8]? {
        if text.contains(".") {
            let parts = text.split(separator: ".", omittingEmptySubsequences: false).compactMap { UInt8($0) }
            return parts.count == 4 ? parts : nil
        }
        guard text.contains(":") else { return nil }
        let halves = text.components(separatedBy: "::")
        guard halves.count <= 2 else { return nil }
        func groups(_ s: String) -> [UInt16]? {
            if s.isEmpty { return [] }
            let g = s.split(separator: ":", omittingEmptySubsequences: false).map { UInt16($0, radix: 16) }
            return g.contains(nil) ? nil : g.compactMap { $0 }
        }
        guard let head = groups(halves[0]) else { return nil }
        let tail = halves.count == 2 ? groups(halves[1]) : []
        guard let tail else { return nil }
        let fill = 8 - head.count - tail.count
        guard fill >= 0, halves.count == 2 || fill == 0 else { return nil }
        let all = head + Array(repeating: 0, count: fill) + tail
        return all.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xFF)] }
    }

    /// Loads `ca.crt`, `tls.crt` and `tls.key` from `directory`, or generates and
    /// writes them there (mode 0600 for the key) when any is missing.
    public static func loadOrGenerate(directory: String) throws -> ServingCertificates {
        let fm = FileManager.default
        let paths = ["ca.crt", "tls.crt", "tls.key"].map { (directory as NSString).appendingPathComponent($0) }
        if paths.allSatisfy({ fm.fileExists(atPath: $0) }) {
            let contents = try paths.map { try String(contentsOfFile: $0, encoding: .utf8) }
            return ServingCertificates(caCertificatePEM: contents[0], certificatePEM: contents[1], privateKeyPEM: contents[2])
        }
        try fm.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let generated = try generate()
        try generated.caCertificatePEM.write(toFile: paths[0], atomically: true, encoding: .utf8)
        try generated.certificatePEM.write(toFile: paths[1], atomically: true, encoding: .utf8)
        try generated.privateKeyPEM.write(toFile: paths[2], atomically: true, encoding: .utf8)
        try fm.setAttributes([.posixPermissions: 0o600], ofItemAtPath: paths[2])
        return generated
    }
}

/// Why a serving certificate, key or client CA cannot be used.
public struct ServingCertificateError: Error, Sendable, Hashable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
