import Foundation
import IsthmusHTTP
import IsthmusTestSupport
import Testing

@Suite("ServingCertificates")
struct CertificatesTests {
    /// openssl's status and its stdout and stderr together.
    func openssl(_ args: [String]) async throws -> (Int32, String) {
        let output = try await ChildProcess.run(Executables.openssl, args)
        return (output.status, output.stdout + output.stderr)
    }

    @Test("the serving certificate verifies against its CA for localhost and 127.0.0.1")
    func verifies() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("isthmus-certs-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let certs = try ServingCertificates.loadOrGenerate(directory: dir.path)
        for check in [["-verify_hostname", "localhost"], ["-verify_ip", "127.0.0.1"], ["-verify_ip", "::1"]] {
            let (status, output) = try await openssl(["verify", "-purpose", "sslserver"] + check + ["-CAfile", dir.path + "/ca.crt", dir.path + "/tls.crt"])
            #expect(status == 0, "\(check): \(output)")
        }
        // A second load reuses the files.
        #expect(try ServingCertificates.loadOrGenerate(directory: dir.path) == certs)
        let mode = try FileManager.default.attributesOfItem(atPath: dir.path + "/tls.key")[.posixPermissions] as? Int
        #expect(mode == 0o600)
    }

    @Test("a wrong hostname does not verify")
    func wrongHost() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("isthmus-certs-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        _ = try ServingCertificates.loadOrGenerate(directory: dir.path)
        let (status, _) = try await openssl(["verify", "-verify_hostname", "example.com", "-CAfile", dir.path + "/ca.crt", dir.path + "/tls.crt"])
        #expect(status != 0)
    }
}
