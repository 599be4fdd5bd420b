import Foundation
import IsthmusKubeClient
import IsthmusKubeTypes
import IsthmusTestSupport
import Testing

/// Mutual TLS with the kubeconfig's client-certificate / client-key files,
/// against `openssl s_server -Verify`, which refuses a client without a
/// certificate its CA signed (the embedded API server only takes tokens).
@Suite struct ClientCertificateTests {
    static let openssl = "/usr/bin/openssl"

    func run(_ script: String, in directory: String) async throws {
        let output = try await ChildProcess.run("/bin/sh", ["-ec", script], workingDirectory: directory)
        #expect(output.status == 0, "\(script)")
    }

    @Test func clientCertificateFromKubeconfigFilesIsPresented() async throws {
        let dir = try TemporaryDirectory()
        let o = Self.openssl
        try await run("""
            \(o) req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.crt -subj /CN=test-ca -days 1
            \(o) req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server.key -out server.csr -subj /CN=apiserver
            printf 'subjectAltName=IP:127.0.0.1\\nextendedKeyUsage=serverAuth\\n' > server.ext
            \(o) x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 1 -extfile server.ext
            \(o) req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout client.key -out client.csr -subj /CN=isthmus-controller
            printf 'extendedKeyUsage=clientAuth\\n' > client.ext
            \(o) x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out client.crt -days 1 -extfile client.ext
            mkdir -p api/v1/namespaces/default/configmaps
            printf 'HTTP/1.0 200 OK\\r\\nContent-Type: application/json\\r\\n\\r\\n{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"mtls"},"data":{"via":"client-certificate"}}\\n' \\
              > api/v1/namespaces/default/configmaps/mtls
            """, in: dir.path)

        // -HTTP serves files relative to the working directory, the file holding the whole response.
        let server = try RunningChild(o, ["s_server", "-accept", "127.0.0.1:0", "-cert", "server.crt", "-key", "server.key",
                                          "-CAfile", "ca.crt", "-Verify", "1", "-HTTP"], workingDirectory: dir.path)
        // s_server does not end on SIGTERM while it serves.
        defer { server.send(SIGKILL) }
        let line = try #require(await server.waitForLine(containing: "ACCEPT ", on: .stdout, deadline: .seconds(30)),
                                "s_server to listen")
        let port = String(line.split(separator: ":").last ?? "")

        func kubeconfig(withClientCertificate: Bool) throws -> String {
            try dir.write(withClientCertificate ? "with-cert" : "without-cert", """
                clusters:
                - name: s
                  cluster: {server: "https://127.0.0.1:\(port)", certificate-authority: ca.crt}
                users:
                - name: u
                  user:
                \(withClientCertificate ? "    client-certificate: client.crt\n    client-key: client.key" : "    token: not-a-certificate")
                contexts:
                - name: c
                  context: {cluster: s, user: u}
                current-context: c
                """)
        }

        let client = try KubeClient(configuration: .kubeconfig(path: kubeconfig(withClientCertificate: true)))
        let object = try await client.get(.configMaps, name: "mtls")
        #expect(object.value(at: ["data", "via"])?.stringValue == "client-certificate")

        let anonymous = try KubeClient(configuration: .kubeconfig(path: kubeconfig(withClientCertificate: false)))
        await #expect { _ = try await anonymous.get(.configMaps, name: "mtls") } throws: { error in
            if case .transport = error as! KubeClientError { return true }
            return false
        }
    }
}
