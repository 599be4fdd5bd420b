import ArgumentParser
import Dispatch
import Foundation
import IsthmusFakeAPIServer
import IsthmusHTTP
import IsthmusKubeTypes

/// `isthmus apiserver`: the embedded, in-memory Kubernetes API server on its own.
struct APIServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apiserver",
        abstract: "Run the in-memory Kubernetes API server (for dev mode, tests and benchmarks).",
        discussion: """
            Serves HTTPS (HTTP/2 and HTTP/1.1) with its own CA until SIGINT or SIGTERM. \
            Example: isthmus apiserver --listen 127.0.0.1:6443 --token dev --cert-dir .isthmus-dev/pki \
            --kubeconfig-out .isthmus-dev/kubeconfig; then KUBECONFIG=.isthmus-dev/kubeconfig kubectl get ns
            """)

    @Option(help: "Address to listen on, HOST:PORT (port 0 picks a free one).")
    var listen = "127.0.0.1:6443"

    @Option(name: .customLong("token"), help: "A bearer token to accept (repeatable); the first goes into the kubeconfig.")
    var tokens: [String] = []

    @Option(help: "Directory for ca.crt, tls.crt and tls.key: reused when present, written otherwise.")
    var certDir: String?

    @Option(help: "Write a kubeconfig for the first token here.")
    var kubeconfigOut: String?

    @Flag(help: "Serve plain HTTP/1.1 instead of TLS.")
    var plainHTTP = false

    @Option(help: "Watch history size (changes kept for resuming watches).")
    var history = 10_000

    func validate() throws {
        guard !tokens.isEmpty else { throw ValidationError("at least one --token is required") }
        guard Self.split(listen) != nil else { throw ValidationError("--listen must be HOST:PORT, got '\(listen)'") }
    }

    static func split(_ address: String) -> (host: String, port: Int)? {
        guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]),
              (0...65535).contains(port) else { return nil }
        var host = String(address[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return (host.isEmpty ? "0.0.0.0" : host, port)
    }

    func run() async throws {
        let termination = await TerminationSignal.install()
        guard let (host, port) = Self.split(listen) else { throw ExitCode.validationFailure }
        var config = FakeAPIServer.Configuration(tokens: Dictionary(tokens.enumerated().map { ($1, "user-\($0)") }, uniquingKeysWith: { a, _ in a }))
        config.host = host
        config.port = port
        config.plainHTTP = plainHTTP
        config.historyCapacity = max(1, history)
        if !plainHTTP, let certDir {
            config.certificates = try ServingCertificates.loadOrGenerate(directory: certDir)
        }
        let server = try await FakeAPIServer.start(config)
        let dialHost = (host == "0.0.0.0" || host == "::") ? "127.0.0.1" : host
        let url = "\(plainHTTP ? "http" : "https")://\(dialHost.contains(":") ? "[\(dialHost)]" : dialHost):\(server.port)"
        if let kubeconfigOut, let token = tokens.first {
            try Self.kubeconfig(server: url, caPEM: server.caCertificatePEM, token: token)
                .write(toFile: kubeconfigOut, atomically: true, encoding: .utf8)
            try? FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: kubeconfigOut)
        }
        printError("isthmus apiserver: serving \(url)" + (kubeconfigOut.map { " (kubeconfig: \($0))" } ?? ""))
        await termination.wait()
        printError("isthmus apiserver: shutting down")
        try await server.shutdown()
    }

    /// A kubeconfig naming the server, its CA and the token (the file is written 0600).
    static func kubeconfig(server: String, caPEM: String?, token: String) -> String {
        var cluster = "    server: \(server)\n"
        if let caPEM {
            cluster += "    certificate-authority-data: \(Base64.encodeStandard(caPEM.utf8))\n"
        }
        return """
            apiVersion: v1
            kind: Config
            clusters:
            - name: isthmus-dev
              cluster:
            \(cluster)users:
            - name: isthmus-dev
              user:
                token: \(token)
            contexts:
            - name: isthmus-dev
              context:
                cluster: isthmus-dev
                user: isthmus-dev
            current-context: isthmus-dev

            """
    }
}
