import Foundation
import IsthmusHTTP
import IsthmusProxy
import IsthmusTestSupport
import Testing

/// The base64 body of the first PEM certificate in `text`, for comparing certificates.
private func certificateBody(_ text: String) -> String? {
    guard let begin = text.range(of: "-----BEGIN CERTIFICATE-----"),
          let end = text.range(of: "-----END CERTIFICATE-----", range: begin.upperBound..<text.endIndex) else { return nil }
    return text[begin.upperBound..<end.lowerBound].filter { !$0.isWhitespace }
}

extension ProxyHarness {
    /// `openssl s_client` against the proxy: exit status and output.
    func openssl(_ extra: [String]) async throws -> ChildOutput {
        try await run(Executables.openssl, ["s_client", "-connect", "127.0.0.1:\(proxy.port)", "-servername", "localhost"] + extra)
    }

    /// The certificate a new TLS connection is served.
    func servedCertificate() async throws -> String? {
        certificateBody(try await openssl([]).stdout)
    }

    /// curl through the proxy with extra curl arguments first; the status code (0: no HTTP answer) and body.
    func curl(_ path: String, http1: Bool, token: String?, curlOptions: [String]) async throws -> (code: Int, body: String) {
        let output = try await run(Self.curlPath, ["-o", "-", "-w", "\n%{http_code}"] + curlOptions
                                   + curlArguments(path, http1: http1, token: token))
        var lines = output.stdout.split(separator: "\n", omittingEmptySubsequences: false)
        let code = Int(lines.popLast() ?? "") ?? -1
        return (code, lines.joined(separator: "\n"))
    }
}

/// Client certificates made with the openssl CLI, as an operator would.
private struct ClientPKI {
    let directory: URL

    func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    static func make(in directory: URL, run: (String, [String]) async throws -> ChildOutput) async throws -> ClientPKI {
        let pki = ClientPKI(directory: directory)
        func openssl(_ args: [String]) async throws {
            let out = try await run(Executables.openssl, args)
            #expect(out.status == 0, "openssl \(args.joined(separator: " ")): \(out.stderr)")
        }
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
        for ca in ["ca", "other-ca"] {
            try await openssl(["req", "-x509"] + ec + ["-keyout", pki.path("\(ca).key"), "-out", pki.path("\(ca).crt"),
                                                       "-subj", "/CN=\(ca)", "-days", "2"])
        }
        for (name, subject, ca) in [("ingress", "/O=ingress-nginx:auth/CN=ingress", "ca"),
                                    ("stranger", "/O=someone-else/CN=stranger", "ca"),
                                    ("forged", "/O=ingress-nginx:auth/CN=forged", "other-ca")] {
            try await openssl(["req"] + ec + ["-keyout", pki.path("\(name).key"), "-out", pki.path("\(name).csr"), "-subj", subject])
            try await openssl(["x509", "-req", "-in", pki.path("\(name).csr"), "-CA", pki.path("\(ca).crt"),
                               "-CAkey", pki.path("\(ca).key"), "-CAcreateserial", "-out", pki.path("\(name).crt"), "-days", "2"])
        }
        return pki
    }

    func curlOptions(_ name: String) -> [String] { ["--cert", path("\(name).crt"), "--key", path("\(name).key")] }
}

@Suite("Proxy listener: TLS versions, plain HTTP, certificate reload, client certificates", .serialized)
struct ProxyListenerTests {
    @Test("TLS 1.1 is refused, TLS 1.2 and 1.3 are accepted")
    func minimumTLSVersion() async throws {
        let h = try await ProxyHarness.start()
        // SECLEVEL=0 lets this client offer TLS 1.1 at all; the refusal must come from the proxy.
        let old = try await h.openssl(["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"])
        #expect(old.status != 0, "\(old)")
        #expect(old.stdout.contains("Cipher is (NONE)") && old.stderr.contains("protocol version"), "\(old)")
        let tls12 = try await h.openssl(["-tls1_2"])
        #expect(tls12.status == 0 && tls12.stdout.contains("TLSv1.2"), "\(tls12)")
        let tls13 = try await h.openssl(["-tls1_3"])
        #expect(tls13.status == 0 && tls13.stdout.contains("TLSv1.3"), "\(tls13)")
        await h.stop()
    }

    @Test("plain HTTP serves HTTP/1.1 and h2c with prior knowledge, only when asked for")
    func plainHTTP() async throws {
        let h = try await ProxyHarness.start(configure: { $0.plainHTTP = true })
        let url = "http://127.0.0.1:\(h.proxy.port)"
        let tokenHeader = h.directory.appendingPathComponent("plain.header")
        try "Authorization: Bearer \(h.peerToken)\n".write(to: tokenHeader, atomically: true, encoding: .utf8)
        let list = try await h.run(ProxyHarness.curlPath, ["-sS", "-w", "\n%{http_code}", "-H", "@" + tokenHeader.path,
                                                           url + "/api/v1/namespaces/demo/services"])
        #expect(list.stdout.hasSuffix("\n200") && list.stdout.contains("ServiceList"), "\(list)")
        let h2c = try await h.run(ProxyHarness.curlPath, ["-sS", "--http2-prior-knowledge", "-w", "\n%{http_version} %{http_code}",
                                                          "-H", "@" + tokenHeader.path, url + "/api/v1/namespaces/demo/services"])
        #expect(h2c.stdout.hasSuffix("\n2 200") && h2c.stdout.contains("ServiceList"), "\(h2c)")
        let denied = try await h.run(ProxyHarness.curlPath, ["-sS", "-w", "\n%{http_code}", url + "/api/v1/namespaces/demo/services"])
        #expect(denied.stdout.hasSuffix("\n401"), "\(denied)")
        let tls = try await h.openssl(["-tls1_2"])
        #expect(tls.status != 0, "a TLS handshake succeeded on the plain HTTP port")
        await h.stop()

        let tlsDefault = try await ProxyHarness.start()
        let cleartext = try await tlsDefault.run(ProxyHarness.curlPath, ["-sS", "-o", "/dev/null", "-w", "%{http_code}",
                                                                          "http://127.0.0.1:\(tlsDefault.proxy.port)/healthz"])
        #expect(cleartext.stdout != "200", "the TLS listener answered cleartext HTTP by default")
        await tlsDefault.stop()
    }

    @Test("changed certificate files are served to new connections; a mismatched pair keeps the old one")
    func certificateReload() async throws {
        let first = try ServingCertificates.generate(commonName: "first")
        let second = try ServingCertificates.generate(commonName: "second")
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("isthmus-tls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let certFile = directory.appendingPathComponent("tls.crt"), keyFile = directory.appendingPathComponent("tls.key")
        try first.certificatePEM.write(to: certFile, atomically: true, encoding: .utf8)
        try first.privateKeyPEM.write(to: keyFile, atomically: true, encoding: .utf8)
        let h = try await ProxyHarness.start(configure: {
            $0.tlsFiles = ServingCertificateFiles(certificate: certFile.path, key: keyFile.path)
            $0.reloadInterval = .milliseconds(100)
        })
        #expect(try await h.servedCertificate() == certificateBody(first.certificatePEM))

        try second.certificatePEM.write(to: certFile, atomically: true, encoding: .utf8)
        try second.privateKeyPEM.write(to: keyFile, atomically: true, encoding: .utf8)
        await eventually("new connections are served the second certificate", deadline: .seconds(30)) {
            (try? await h.servedCertificate()) == certificateBody(second.certificatePEM)
        }
        #expect(h.proxy.certificates.certificatePEM == second.certificatePEM)
        #expect(h.proxy.reloadStatus[.servingCertificate].successes >= 1)

        // A half-written update: the first certificate with the second key.
        try first.certificatePEM.write(to: certFile, atomically: true, encoding: .utf8)
        await eventually("the mismatched pair is refused", deadline: .seconds(30)) { h.proxy.reloadStatus[.servingCertificate].failures == 1 }
        #expect(h.proxy.reloadStatus[.servingCertificate].lastError?.contains("does not belong to the certificate") == true,
                "\(h.proxy.reloadStatus)")
        #expect(try await h.servedCertificate() == certificateBody(second.certificatePEM))
        await h.stop()
    }

    @Test("a mismatched certificate and key at start are refused naming tlsCert")
    func mismatchedPairAtStart() async throws {
        let first = try ServingCertificates.generate(commonName: "first")
        let second = try ServingCertificates.generate(commonName: "second")
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("isthmus-tls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let certFile = directory.appendingPathComponent("tls.crt"), keyFile = directory.appendingPathComponent("tls.key")
        try first.certificatePEM.write(to: certFile, atomically: true, encoding: .utf8)
        try second.privateKeyPEM.write(to: keyFile, atomically: true, encoding: .utf8)
        do {
            let h = try await ProxyHarness.start(configure: {
                $0.tlsFiles = ServingCertificateFiles(certificate: certFile.path, key: keyFile.path)
            })
            await h.stop()
            Issue.record("the proxy started with a key that is not the certificate's")
        } catch let error as ProxyConfigurationError {
            #expect(error.field == "tlsCert" && error.problem.contains("does not belong to the certificate"), "\(error)")
        }
    }

    @Test("with a client CA, only /healthz and /readyz answer without a client certificate of the allowed subject",
          arguments: [true, false])
    func clientCertificates(http1: Bool) async throws {
        let pkiDirectory = FileManager.default.temporaryDirectory.appendingPathComponent("isthmus-pki-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: pkiDirectory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: pkiDirectory) }
        let pki = try await ClientPKI.make(in: pkiDirectory) { executable, args in
            try await ChildProcess.run(executable, args)
        }
        let ca = try String(contentsOfFile: pki.path("ca.crt"), encoding: .utf8)
        let h = try await ProxyHarness.start(configure: {
            $0.clientCertificateCAPEM = ca
            $0.clientSubject = try? ClientSubjectRequirement(parsing: "O=ingress-nginx:auth")
        })
        let services = "/api/v1/namespaces/demo/services"

        let anonymous = try await h.curl(services, http1: http1, token: h.peerToken, curlOptions: [])
        #expect(anonymous.code == 403, "\(anonymous)")
        #expect(anonymous.body.contains(#""reason":"Forbidden""#) && anonymous.body.contains("client certificate"))
        #expect(!h.upstream.recentRequests.contains { $0.uri.hasPrefix(services) })
        let healthz = try await h.curl("/healthz", http1: http1, token: nil, curlOptions: [])
        #expect(healthz.code == 200 && healthz.body == "ok")
        // /readyz passes the gate (whatever then answers it is not the certificate check).
        let readyz = try await h.curl("/readyz", http1: http1, token: nil, curlOptions: [])
        #expect(readyz.code != 403 && !readyz.body.contains("client certificate"), "\(readyz)")

        let ingress = try await h.curl(services, http1: http1, token: h.peerToken, curlOptions: pki.curlOptions("ingress"))
        #expect(ingress.code == 200 && ingress.body.contains("ServiceList"), "\(ingress)")
        // The certificate admits the connection; the peer's token is still required.
        let noToken = try await h.curl(services, http1: http1, token: nil, curlOptions: pki.curlOptions("ingress"))
        #expect(noToken.code == 401)

        let stranger = try await h.curl(services, http1: http1, token: h.peerToken, curlOptions: pki.curlOptions("stranger"))
        #expect(stranger.code == 403 && stranger.body.contains("client certificate"), "\(stranger)")
        // A certificate from another CA fails the handshake: no HTTP answer at all.
        let forged = try await h.curl(services, http1: http1, token: h.peerToken, curlOptions: pki.curlOptions("forged"))
        #expect(forged.code == 0, "\(forged)")
        await h.stop()
    }

    @Test("client subjects parse and match attribute by attribute")
    func clientSubjectParsing() throws {
        #expect(try ClientSubjectRequirement(parsing: "O=ingress-nginx:auth").description == "O=ingress-nginx:auth")
        #expect(try ClientSubjectRequirement(parsing: "cn = ingress , O=edge").description == "CN=ingress,O=edge")
        #expect(throws: ClientSubjectRequirementError.self) { try ClientSubjectRequirement(parsing: "X=1") }
        #expect(throws: ClientSubjectRequirementError.self) { try ClientSubjectRequirement(parsing: "O=") }
        #expect(throws: ClientSubjectRequirementError.self) { try ClientSubjectRequirement(parsing: "ingress") }
    }
}
