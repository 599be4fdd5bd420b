import Foundation
import IsthmusHTTP
import Testing

@Suite("ServingCertificates")
struct CertificatesTests {
    func openssl(_ args: [String]) throws -> (Int32, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["openssl"] + args
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    @Test("the serving certificate verifies against its CA for localhost and 127.0.0.1")
    func verifies() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("isthmus-certs-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let certs = try ServingCertificates.loadOrGenerate(directory: dir.path)
        for check in [["-verify_hostname", "localhost"], ["-verify_ip", "127.0.0.1"], ["-verify_ip", "::1"]] {
            let (status, output) = try openssl(["verify", "-purpose", "sslserver"] + check + ["-CAfile", dir.path + "/ca.crt", dir.path + "/tls.crt"])
            #expect(status == 0, "\(check): \(output)")
        }
        // A second load reuses the files.
        #expect(try ServingCertificates.loadOrGenerate(directory: dir.path) == certs)
        let mode = try FileManager.default.attributesOfItem(atPath: dir.path + "/tls.key")[.posixPermissions] as? Int
        #expect(mode == 0o600)
    }

    @Test("a wrong hostname does not verify")
    func wrongHost() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("isthmus-certs-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        _ = try ServingCertificates.loadOrGenerate(directory: dir.path)
        let (status, _) = try openssl(["verify", "-verify_hostname", "example.com", "-CAfile", dir.path + "/ca.crt", dir.path + "/tls.crt"])
        #expect(status != 0)
    }
}
