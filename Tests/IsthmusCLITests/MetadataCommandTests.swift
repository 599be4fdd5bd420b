import Foundation
import IsthmusTestSupport
import IsthmusTrust
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("isthmus metadata", .serialized)
struct MetadataCommandTests {
    private let clusterUUID = "0b4e3f66-7a2d-4e55-8f0c-5d1e9b7c3a22"
    private let peerUUID = "8d5f5d2e-1c1a-4a8e-9a53-2f6f4a3d2c11"

    /// Keys for this cluster and a peer, made by `isthmus keys generate`; the
    /// peer trusted by `isthmus peers add`; a root CA made by openssl.
    private func prepare(_ dir: String) async throws {
        for name in ["self", "peer"] {
            let generated = try await CLI.run(["keys", "generate", "--out", dir + "/" + name])
            #expect(generated.status == 0, "\(generated.stderr)")
        }
        let openssl = try await CLI.runExecutable("/usr/bin/openssl", [
            "req", "-x509", "-newkey", "ed25519", "-nodes", "-subj", "/O=cluster.local/CN=Istio root CA", "-days", "1",
            "-keyout", dir + "/root-key.pem", "-out", dir + "/root-cert.pem",
        ])
        #expect(openssl.status == 0, "\(openssl.stderr)")
        let added = try await CLI.run(["peers", "add", "--file", dir + "/peers.json", "--cluster-uuid", peerUUID,
                                 "--public-key", dir + "/peer/public.pem", "--root-ca", dir + "/root-cert.pem"])
        #expect(added.status == 0, "\(added.stderr)")
    }

    private func curl(_ url: String, ca: String, tokenFile: String? = nil) async throws -> (code: Int, body: String) {
        var args = ["-sS", "--cacert", ca, "-w", "\n%{http_code}"]
        if let tokenFile { args += ["-H", "@" + tokenFile] }
        let result = try await CLI.runExecutable("/usr/bin/curl", args + [url])
        var lines = result.stdout.split(separator: "\n", omittingEmptySubsequences: false)
        let code = Int(lines.popLast() ?? "") ?? -1
        return (code, lines.joined(separator: "\n"))
    }

    @Test("serves public metadata to anyone and private metadata to a peer's token minted by isthmus token mint")
    func endToEnd() async throws {
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try await prepare(dir)
        let metadata = try RunningChild(CLI.binary, [
            "metadata", "--listen", "127.0.0.1:0", "--cluster-uuid", clusterUUID, "--key", dir + "/self/private.pem",
            "--root-ca", dir + "/root-cert.pem", "--api-host", "istio-api.k8s-a.example.com", "--network-name", "network-a",
            "--ingress-gateway", "203.0.113.10:15443", "--ingress-gateway", "[2001:db8::10]:15443",
            "--pod-cidr", "10.111.0.0/16,fd00:111::/56", "--service-cidr", "10.222.0.0/16",
            "--peers", dir + "/peers.json", "--write-ca", dir + "/serving-ca.crt",
        ])
        defer { metadata.send(SIGKILL) }
        let line = try #require(await metadata.waitForLine(containing: "serving https://"))
        #expect(line.contains("for cluster \(clusterUUID) (2 ingress gateways, 1 trusted peers)"), "\(line)")
        let port = try #require(CLI.port(in: line))
        let base = "https://127.0.0.1:\(port)/metadata"
        let ca = dir + "/serving-ca.crt"

        let publicDocument = try await curl(base + "/public/public.json", ca: ca)
        #expect(publicDocument.code == 200)
        let ownPublicKey = try String(contentsOfFile: dir + "/self/public.pem", encoding: .utf8)
        let rootCA = try String(contentsOfFile: dir + "/root-cert.pem", encoding: .utf8)
        // Exactly DESIGN §2's shape; the peer-side parser accepts it.
        let peer = try TrustedPeers(json: "{\"\(clusterUUID)\":" + publicDocument.body + "}")
        #expect(peer[clusterUUID]?.keys == [try PeerPublicKey(pem: ownPublicKey)])
        #expect(peer[clusterUUID]?.rootCA == rootCA)

        func mint(_ scope: String) async throws -> String {
            let minted = try await CLI.run(["token", "mint", "--key", dir + "/peer/private.pem", "--subject", peerUUID,
                                      "--audience", clusterUUID, "--scope", scope, "--ttl", "1m"])
            #expect(minted.status == 0, "\(minted.stderr)")
            let file = dir + "/\(scope).header"
            try "Authorization: Bearer \(minted.stdout.trimmingCharacters(in: .whitespacesAndNewlines))\n"
                .write(toFile: file, atomically: true, encoding: .utf8)
            return file
        }
        let privateDocument = try await curl(base + "/private/multicluster.json", ca: ca, tokenFile: try mint("private-multicluster"))
        #expect(privateDocument.code == 200)
        // Configured gateways keep the operator's order.
        #expect(privateDocument.body == #"{"apiHost":"istio-api.k8s-a.example.com","networkName":"network-a","ingressGateways":[{"address":"203.0.113.10","port":15443},{"address":"2001:db8::10","port":15443}],"clusterDomain":"cluster.local","podSubnetCIDR":"10.111.0.0/16,fd00:111::/56","serviceSubnetCIDR":"10.222.0.0/16"}"#,
                "\(privateDocument.body)")
        let apiScoped = try await curl(base + "/private/multicluster.json", ca: ca, tokenFile: try mint("api"))
        #expect(apiScoped.code == 403)
        #expect(apiScoped.body.contains(#""reason":"Forbidden""#))
        let anonymous = try await curl(base + "/private/multicluster.json", ca: ca)
        #expect(anonymous.code == 401)
        #expect(anonymous.body.contains(#""reason":"Unauthorized""#))
    }

    @Test("a missing setting or a bad file exits 2 with one line naming the flag and the file")
    func configurationErrors() async throws {
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try await prepare(dir)
        let common = ["metadata", "--listen", "127.0.0.1:0", "--cluster-uuid", clusterUUID, "--key", dir + "/self/private.pem",
                      "--peers", dir + "/peers.json", "--network-name", "network-a"]
        let noAPIHost = try await CLI.run(common + ["--root-ca", dir + "/root-cert.pem"])
        #expect(noAPIHost.status == 2)
        #expect(noAPIHost.stderr == "isthmus metadata: --api-host (apiHost): must be set\n")

        let badRootCA = try await CLI.run(common + ["--root-ca", dir + "/self/public.pem", "--api-host", "api.example.com"])
        #expect(badRootCA.status == 2)
        #expect(badRootCA.stderr == "isthmus metadata: --root-ca (rootCA): \(dir)/self/public.pem: no CERTIFICATE block found\n")

        try "apiHost: https://api.example.com\n".write(toFile: dir + "/metadata.yaml", atomically: true, encoding: .utf8)
        let fromConfig = try await CLI.run(common + ["--root-ca", dir + "/root-cert.pem", "--config", dir + "/metadata.yaml"])
        #expect(fromConfig.status == 2)
        #expect(fromConfig.stderr.hasPrefix("isthmus metadata: --api-host (apiHost): must be host[:port] without a scheme"),
                "\(fromConfig.stderr)")
        #expect(!noAPIHost.stderr.contains("PRIVATE KEY") && !badRootCA.stderr.contains("PRIVATE KEY"))

        let badGateway = try await CLI.run(common + ["--ingress-gateway", "203.0.113.10"])
        #expect(badGateway.status != 0)
        #expect(badGateway.stderr.contains("--ingress-gateway must be ADDRESS:PORT"), "\(badGateway.stderr)")
    }

    @Test("SIGHUP re-reads the files at once: a new root CA is served without a restart")
    func hangupReloads() async throws {
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try await prepare(dir)
        let metadata = try RunningChild(CLI.binary, [
            "metadata", "--listen", "127.0.0.1:0", "--cluster-uuid", clusterUUID, "--key", dir + "/self/public.pem",
            "--root-ca", dir + "/root-cert.pem", "--api-host", "api.example.com", "--network-name", "network-a",
            "--peers", dir + "/peers.json", "--write-ca", dir + "/serving-ca.crt", "--reload-interval", "1h",
        ])
        defer { metadata.send(SIGKILL) }
        let line = try #require(await metadata.waitForLine(containing: "serving https://"))
        let url = "https://127.0.0.1:\(try #require(CLI.port(in: line)))/metadata/public/public.json"
        let before = try await curl(url, ca: dir + "/serving-ca.crt")
        #expect(before.code == 200)

        let openssl = try await CLI.runExecutable("/usr/bin/openssl", [
            "req", "-x509", "-newkey", "ed25519", "-nodes", "-subj", "/CN=Istio root CA 2", "-days", "1",
            "-keyout", dir + "/root-key-2.pem", "-out", dir + "/root-cert-2.pem",
        ])
        #expect(openssl.status == 0)
        let newRootCA = try String(contentsOfFile: dir + "/root-cert-2.pem", encoding: .utf8)
        try newRootCA.write(toFile: dir + "/root-cert.pem", atomically: true, encoding: .utf8)
        metadata.send(SIGHUP)

        // Polled with a generous deadline; the one-hour interval means only the SIGHUP can do it.
        let deadline = Date().addingTimeInterval(30)
        var served = before.body
        while Date() < deadline {
            served = try await curl(url, ca: dir + "/serving-ca.crt").body
            if served.contains(Self.jsonEscaped(newRootCA)) { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(served.contains(Self.jsonEscaped(newRootCA)), "\(served)")
        #expect(metadata.isRunning)
        #expect(await metadata.waitForLine(containing: "SIGHUP: rebuilt") != nil, "\(metadata.output(.stderr))")

        // SIGTERM is a graceful shutdown: logged, exit 0.
        metadata.send(SIGTERM)
        #expect(await metadata.waitForExit() == 0)
        #expect(metadata.output(.stderr).contains(#""message":"shutting down""#), "\(metadata.output(.stderr))")
    }

    @Test("--kubeconfig: root CA and ingress gateways from `isthmus apiserver`, objects made by kubectl; a status change is republished")
    func fromKubernetesAPI() async throws {
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try await prepare(dir)
        let kubeconfig = dir + "/kubeconfig"
        let apiserver = try RunningChild(CLI.binary, ["apiserver", "--listen", "127.0.0.1:0", "--token", "metadata-reader",
                                            "--cert-dir", dir + "/pki", "--kubeconfig-out", kubeconfig])
        defer { apiserver.send(SIGKILL) }
        #expect(await apiserver.waitForLine(containing: "serving https://") != nil)
        @discardableResult
        func kubectl(_ args: [String], stdin: String? = nil) async throws -> String {
            let result = try await CLI.runExecutable("/usr/bin/kubectl", ["--kubeconfig", kubeconfig, "--cache-dir", dir + "/kube-cache"] + args,
                                               stdin: stdin)
            #expect(result.status == 0, "kubectl \(args): \(result.stderr)")
            return result.stdout
        }
        // `create -f` with JSON, the form every kind accepts (the embedded API server decodes
        // protobuf bodies only for the kinds kubectl's typed generators create).
        try await kubectl(["create", "-f", "-"], stdin: #"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"istio-system"}}"#)
        try await kubectl(["create", "-f", "-"], stdin: """
            {"apiVersion":"v1","kind":"Service","metadata":{"name":"istio-ingressgateway","namespace":"istio-system"},
             "spec":{"type":"LoadBalancer","selector":{"istio":"ingressgateway"},"ports":[{"name":"tls","port":15443}]},
             "status":{"loadBalancer":{"ingress":[{"ip":"203.0.113.30"}]}}}
            """)

        let metadataArgs = [
            "metadata", "--listen", "127.0.0.1:0", "--cluster-uuid", clusterUUID, "--key", dir + "/self/public.pem",
            "--kubeconfig", kubeconfig, "--root-ca-configmap", "istio-system/istio-ca-root-cert",
            "--ingress-gateway-service", "istio-system/istio-ingressgateway",
            "--api-host", "api.example.com", "--network-name", "network-a",
            "--peers", dir + "/peers.json", "--write-ca", dir + "/serving-ca.crt", "--reload-interval", "1h",
        ]
        // Before istiod has written the ConfigMap: exit 2, naming the flag.
        let early = try await CLI.run(metadataArgs)
        #expect(early.status == 2)
        #expect(early.stderr == "isthmus metadata: --root-ca-configmap (rootCAConfigMap): configmap istio-system/istio-ca-root-cert not found\n")

        let configMap = try await kubectl(["create", "configmap", "istio-ca-root-cert", "-n", "istio-system",
                                     "--from-file=root-cert.pem=\(dir)/root-cert.pem", "--dry-run=client", "-o", "json"])
        try await kubectl(["create", "-f", "-"], stdin: configMap)
        let metadata = try RunningChild(CLI.binary, metadataArgs)
        defer { metadata.send(SIGKILL) }
        let line = try #require(await metadata.waitForLine(containing: "serving https://"))
        #expect(line.contains("(1 ingress gateways, 1 trusted peers)"), "\(line)")
        let base = "https://127.0.0.1:\(try #require(CLI.port(in: line)))/metadata"
        let ca = dir + "/serving-ca.crt"
        let rootCA = try String(contentsOfFile: dir + "/root-cert.pem", encoding: .utf8)
        await #expect(try curl(base + "/public/public.json", ca: ca).body.contains(Self.jsonEscaped(rootCA)))

        let minted = try await CLI.run(["token", "mint", "--key", dir + "/peer/private.pem", "--subject", peerUUID,
                                  "--audience", clusterUUID, "--scope", "private-multicluster", "--ttl", "5m"])
        let tokenFile = dir + "/token.header"
        try "Authorization: Bearer \(minted.stdout.trimmingCharacters(in: .whitespacesAndNewlines))\n"
            .write(toFile: tokenFile, atomically: true, encoding: .utf8)
        let first = try await curl(base + "/private/multicluster.json", ca: ca, tokenFile: tokenFile)
        #expect(first.code == 200)
        #expect(first.body.contains(#""ingressGateways":[{"address":"203.0.113.30","port":15443}]"#), "\(first.body)")

        // The load balancer's address changes; with a one-hour poll interval only the watch can tell the service.
        try await kubectl(["patch", "service", "istio-ingressgateway", "-n", "istio-system", "--subresource=status", "--type=merge",
                     "-p", #"{"status":{"loadBalancer":{"ingress":[{"ip":"203.0.113.31"}]}}}"#])
        let deadline = Date().addingTimeInterval(30)
        var served = first.body
        while Date() < deadline {
            served = try await curl(base + "/private/multicluster.json", ca: ca, tokenFile: tokenFile).body
            if served.contains(#""address":"203.0.113.31""#) { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(served.contains(#""ingressGateways":[{"address":"203.0.113.31","port":15443}]"#), "\(served)")
    }

    @Test("Kubernetes sources that cannot work exit 2 naming the flag")
    func kubernetesSourceErrors() async throws {
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try await prepare(dir)
        let common = ["metadata", "--listen", "127.0.0.1:0", "--cluster-uuid", clusterUUID, "--key", dir + "/self/public.pem",
                      "--peers", dir + "/peers.json", "--network-name", "network-a", "--api-host", "api.example.com"]
        let noKubeconfig = try await CLI.run(common + ["--root-ca-configmap", "istio-system/istio-ca-root-cert",
                                                 "--kubeconfig", dir + "/missing-kubeconfig"])
        #expect(noKubeconfig.status == 2)
        #expect(noKubeconfig.stderr.hasPrefix("isthmus metadata: --kubeconfig (kubeconfig): \(dir)/missing-kubeconfig"),
                "\(noKubeconfig.stderr)")
        let badReference = try await CLI.run(common + ["--ingress-gateway-service", "istio-ingressgateway"])
        #expect(badReference.status != 0)
        #expect(badReference.stderr.contains("--ingress-gateway-service must be NAMESPACE/NAME"), "\(badReference.stderr)")
        let noRootCA = try await CLI.run(common)
        #expect(noRootCA.stderr == "isthmus metadata: --root-ca (rootCA): must be set (or rootCAConfigMap)\n")
    }

    /// A PEM as it appears inside a JSON string.
    static func jsonEscaped(_ text: String) -> String {
        text.replacingOccurrences(of: "\n", with: "\\n")
    }
}
