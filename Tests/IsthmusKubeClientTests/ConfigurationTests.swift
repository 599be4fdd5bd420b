import Foundation
import IsthmusHTTP
import IsthmusKubeClient
import Testing

@Suite struct KubeconfigTests {
    static let certificates = try! ServingCertificates.generate()

    @Test func inlineDataFieldsAndCurrentContext() throws {
        let c = Self.certificates
        let yaml = """
            apiVersion: v1
            kind: Config
            current-context: second
            clusters:
            - name: one
              cluster: {server: "https://one.example:6443"}
            - name: two
              cluster:
                server: https://10.0.0.2:6443/
                certificate-authority-data: \(Data(c.caCertificatePEM.utf8).base64EncodedString())
            users:
            - name: cert-user
              user:
                client-certificate-data: \(Data(c.certificatePEM.utf8).base64EncodedString())
                client-key-data: \(Data(c.privateKeyPEM.utf8).base64EncodedString())
            - name: token-user
              user: {token: abc.def}
            contexts:
            - name: first
              context: {cluster: one, user: token-user}
            - name: second
              context: {cluster: two, user: cert-user, namespace: istio-system}
            """
        let config = try KubeClientConfiguration.kubeconfig(yaml: yaml, file: "kc.yaml")
        #expect(config.server == "https://10.0.0.2:6443")
        #expect(config.certificateAuthorityPEM == Array(c.caCertificatePEM.utf8))
        #expect(config.clientCertificate?.certificatePEM == Array(c.certificatePEM.utf8))
        #expect(config.clientCertificate?.privateKeyPEM == Array(c.privateKeyPEM.utf8))
        #expect(config.namespace == "istio-system")
        guard case .none = config.credentials else { Issue.record("expected no token, got \(config.credentials)"); return }
        // The key never shows in a description.
        #expect(!String(describing: config).contains("PRIVATE KEY"))
        _ = try KubeClient(configuration: config)

        let first = try KubeClientConfiguration.kubeconfig(yaml: yaml, file: "kc.yaml", context: "first")
        #expect(first.server == "https://one.example:6443")
        #expect(first.namespace == "default")
        #expect(first.certificateAuthorityPEM == nil)
        guard case .bearerToken("abc.def") = first.credentials else { Issue.record("token not read"); return }
        #expect(!String(describing: first).contains("abc.def"))
    }

    /// A `-data` field reads as Go's encoding/json reads a []byte: line breaks
    /// inside the Base64 are ignored, nothing else is.
    @Test func dataFieldsWithLineBreaks() throws {
        let encoded = Data(Self.certificates.caCertificatePEM.utf8).base64EncodedString()
        let wrapped = stride(from: 0, to: encoded.count, by: 76).map { start in
            let from = encoded.index(encoded.startIndex, offsetBy: start)
            return String(encoded[from..<(encoded.index(from, offsetBy: 76, limitedBy: encoded.endIndex) ?? encoded.endIndex)])
        }
        #expect(wrapped.count > 1)
        let yaml = """
            current-context: x
            contexts: [{name: x, context: {cluster: c}}]
            clusters:
            - name: c
              cluster:
                server: https://x
                certificate-authority-data: |
            \(wrapped.map { "      " + $0 }.joined(separator: "\n"))
            """
        let config = try KubeClientConfiguration.kubeconfig(yaml: yaml, file: "kc.yaml")
        #expect(config.certificateAuthorityPEM == Array(Self.certificates.caCertificatePEM.utf8))
    }

    @Test func fileFieldsRelativeToTheKubeconfig() throws {
        let c = Self.certificates
        let dir = try TemporaryDirectory()
        _ = try dir.write("ca.crt", c.caCertificatePEM)
        _ = try dir.write("client.crt", c.certificatePEM)
        _ = try dir.write("client.key", c.privateKeyPEM)
        let tokenPath = try dir.write("token", "file-token\n")
        let path = try dir.write("config", """
            clusters:
            - name: c
              cluster:
                server: https://127.0.0.1:1
                certificate-authority: ca.crt
                insecure-skip-tls-verify: true
            users:
            - name: u
              user:
                tokenFile: \(tokenPath)
                client-certificate: client.crt
                client-key: \(dir.path)/client.key
            contexts:
            - name: ctx
              context: {cluster: c, user: u, namespace: ns1}
            current-context: ctx
            """)
        let config = try KubeClientConfiguration.kubeconfig(path: path)
        #expect(config.certificateAuthorityPEM == Array(c.caCertificatePEM.utf8))
        #expect(config.insecureSkipTLSVerify)
        #expect(config.clientCertificate?.privateKeyPEM == Array(c.privateKeyPEM.utf8))
        #expect(config.namespace == "ns1")
        guard case .tokenFile(let file) = config.credentials else { Issue.record("tokenFile not read"); return }
        #expect(try file.read() == "file-token")
    }

    @Test func basicAuth() throws {
        let config = try KubeClientConfiguration.kubeconfig(yaml: """
            clusters: [{name: c, cluster: {server: "http://127.0.0.1:8080"}}]
            users: [{name: u, user: {username: alice, password: s3cret}}]
            contexts: [{name: x, context: {cluster: c, user: u}}]
            current-context: x
            """, file: "kc")
        guard case .basic("alice", "s3cret") = config.credentials else { Issue.record("basic auth not read"); return }
        #expect(!config.description.contains("s3cret"))
    }

    /// Each bad input names the file and the field.
    @Test(arguments: [
        ("clusters: [{name: c, cluster: {server: https://x}}]\ncontexts: [{name: x, context: {cluster: c}}]", "current-context"),
        ("current-context: nope\ncontexts: [{name: x, context: {cluster: c}}]", "contexts"),
        ("current-context: x\ncontexts: [{name: x, context: {user: u}}]", "contexts[x].context.cluster"),
        ("current-context: x\ncontexts: [{name: x, context: {cluster: c}}]\nclusters: [{name: c, cluster: {}}]", "clusters[c].cluster.server"),
        ("current-context: x\ncontexts: [{name: x, context: {cluster: c}}]\nclusters: [{name: c, cluster: {server: ftp://x}}]", "clusters[c].cluster.server"),
        ("current-context: x\ncontexts: [{name: x, context: {cluster: c}}]\nclusters: [{name: c, cluster: {server: https://x, certificate-authority-data: bm90IGEgY2VydA==}}]",
         "clusters[c].cluster.certificate-authority"),
        ("current-context: x\ncontexts: [{name: x, context: {cluster: c}}]\nclusters: [{name: c, cluster: {server: https://x, certificate-authority-data: 'bm90IGEg*2VydA=='}}]",
         "clusters[c].cluster.certificate-authority-data"),
        ("current-context: x\ncontexts: [{name: x, context: {cluster: c}}]\nclusters: [{name: c, cluster: {server: https://x, certificate-authority: /nonexistent/ca.crt}}]",
         "clusters[c].cluster.certificate-authority"),
        ("current-context: x\ncontexts: [{name: x, context: {cluster: c}}]\nclusters: [{name: c, cluster: {server: https://x, insecure-skip-tls-verify: maybe}}]",
         "clusters[c].cluster.insecure-skip-tls-verify"),
        ("current-context: x\ncontexts: [{name: x, context: {cluster: c, user: u}}]\nclusters: [{name: c, cluster: {server: https://x}}]\nusers: [{name: u, user: {exec: {command: aws}}}]",
         "users[u].user.exec"),
        ("current-context: x\ncontexts: [{name: x, context: {cluster: c, user: u}}]\nclusters: [{name: c, cluster: {server: https://x}}]\nusers: [{name: u, user: {client-key-data: eA==}}]",
         "users[u].user.client-certificate"),
        ("current-context: x\ncontexts: [{name: x, context: {cluster: c, user: u}}]\nclusters: [{name: c, cluster: {server: https://x}}]\nusers: [{name: u, user: {tokenFile: /nonexistent/token}}]",
         "users[u].user.tokenFile"),
    ])
    func errorsNameFileAndField(yaml: String, field: String) {
        do {
            _ = try KubeClientConfiguration.kubeconfig(yaml: yaml, file: "/etc/kc.yaml")
            Issue.record("accepted: \(yaml)")
        } catch {
            #expect(error.file == "/etc/kc.yaml")
            #expect(error.field == field, "\(error)")
            #expect(error.description.hasPrefix("/etc/kc.yaml: \(field): "))
        }
    }

    /// A mapping used as a key made Yams' untyped load trap (found by FuzzKubeconfig).
    @Test(arguments: [
        "current-contex: x\ncontexts: [{name:  sru:ue, {exce: {command: aws}}}]\n",
        "current-context: x\n? {a: b}\n: c\n",
        "clusters:\n- name: c\n  cluster:\n    ? [server]\n    : https://x\n",
    ])
    func complexKeysAreRefused(yaml: String) {
        do {
            _ = try KubeClientConfiguration.kubeconfig(yaml: yaml, file: "/etc/kc.yaml")
            Issue.record("accepted: \(yaml)")
        } catch {
            #expect(error.description.hasPrefix("/etc/kc.yaml: line "), "\(error)")
            #expect(error.description.hasSuffix("a mapping key is not a string"), "\(error)")
        }
    }

    /// Yams' own integer conversion traps on a sexagesimal number that overflows
    /// (found by FuzzKubeconfig: `9999999992949989:9:49:9:44`); the reader never converts one.
    @Test func longSexagesimalNumbersAreNeverConverted() throws {
        let big = "1:2:3:4:5:6:7:8:9:10:11"
        let valid = "current-context: x\ncontexts: [{name: x, context: {cluster: c, user: u, namespace: \(big)}}]\n"
            + "clusters: [{name: c, cluster: {server: https://x}}]\nusers: [{name: u, user: {token: t}}]\npreferences: {n: \(big)}\n"
        #expect(throws: KubeConfigError(file: "/etc/kc.yaml", field: "contexts[x].context.namespace", message: "not a string")) {
            try KubeClientConfiguration.kubeconfig(yaml: valid, file: "/etc/kc.yaml")
        }
        let ignored = valid.replacingOccurrences(of: ", namespace: \(big)", with: "")
        #expect(try KubeClientConfiguration.kubeconfig(yaml: ignored, file: "/etc/kc.yaml").namespace == "default")
        #expect(throws: KubeConfigError(file: "/etc/kc.yaml", field: "", message: "not a YAML mapping")) {
            try KubeClientConfiguration.kubeconfig(yaml: "9999999992949989:9:49:9:44", file: "/etc/kc.yaml")
        }
    }

    @Test func missingFileNamesIt() {
        #expect(throws: KubeConfigError(file: "/nonexistent/kubeconfig", field: "", message: "cannot read /nonexistent/kubeconfig")) {
            try KubeClientConfiguration.kubeconfig(path: "/nonexistent/kubeconfig")
        }
    }
}

@Suite struct InClusterTests {
    @Test func serviceAccountDirectoryAndEnvironment() throws {
        let dir = try TemporaryDirectory()
        _ = try dir.write("token", "first-token\n")
        _ = try dir.write("ca.crt", KubeconfigTests.certificates.caCertificatePEM)
        _ = try dir.write("namespace", "d8-istio")
        let config = try KubeClientConfiguration.inCluster(
            environment: ["KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"], directory: dir.path)
        #expect(config.server == "https://10.96.0.1:443")
        #expect(config.namespace == "d8-istio")
        #expect(config.certificateAuthorityPEM == Array(KubeconfigTests.certificates.caCertificatePEM.utf8))
        guard case .tokenFile(let file) = config.credentials else { Issue.record("no token file"); return }
        #expect(try file.read() == "first-token")

        let v6 = try KubeClientConfiguration.inCluster(
            environment: ["KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "6443"], directory: dir.path)
        #expect(v6.server == "https://[fd00::1]:6443")
    }

    /// Kubelet rotates the token by swapping the `..data` symlink; the next read sees the new one.
    @Test func tokenRotatedThroughSymlinkSwapIsReRead() throws {
        let dir = try TemporaryDirectory()
        let fm = FileManager.default
        try fm.createDirectory(atPath: dir.path + "/..v1", withIntermediateDirectories: true)
        _ = try dir.write("..v1/token", "token-one")
        try fm.createSymbolicLink(atPath: dir.path + "/..data", withDestinationPath: "..v1")
        try fm.createSymbolicLink(atPath: dir.path + "/token", withDestinationPath: "..data/token")
        let file = TokenFile(path: dir.path + "/token", maximumAge: .seconds(3600))
        #expect(try file.read() == "token-one")

        try fm.createDirectory(atPath: dir.path + "/..v2", withIntermediateDirectories: true)
        _ = try dir.write("..v2/token", "token-two")
        try fm.createSymbolicLink(atPath: dir.path + "/..data-tmp", withDestinationPath: "..v2")
        #expect(rename(dir.path + "/..data-tmp", dir.path + "/..data") == 0)
        #expect(try file.read() == "token-two")
    }

    @Test func tokenReReadAfterMaximumAgeEvenIfTheFileLooksTheSame() async throws {
        let dir = try TemporaryDirectory()
        let path = try dir.write("token", "aaaa")
        let file = TokenFile(path: path, maximumAge: .milliseconds(1))
        #expect(try file.read() == "aaaa")
        // Same size, and the modification time may not move within its resolution.
        let handle = try #require(FileHandle(forWritingAtPath: path))
        try handle.write(contentsOf: Data("bbbb".utf8))
        try handle.close()
        try await Task.sleep(for: .milliseconds(5))
        #expect(try file.read() == "bbbb")
    }

    @Test(arguments: [
        ([String: String](), "KUBERNETES_SERVICE_HOST"),
        (["KUBERNETES_SERVICE_HOST": "10.0.0.1"], "KUBERNETES_SERVICE_PORT"),
        (["KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "https"], "KUBERNETES_SERVICE_PORT"),
    ])
    func environmentErrorsNameTheVariable(environment: [String: String], field: String) throws {
        #expect {
            try KubeClientConfiguration.inCluster(environment: environment, directory: "/nonexistent")
        } throws: { error in
            (error as? KubeConfigError)?.field == field && (error as? KubeConfigError)?.file == "environment"
        }
    }

    @Test func missingTokenNamesTheFile() throws {
        let dir = try TemporaryDirectory()
        #expect {
            try KubeClientConfiguration.inCluster(
                environment: ["KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"], directory: dir.path)
        } throws: { error in
            (error as? KubeConfigError)?.file == dir.path + "/token"
        }
    }
}
