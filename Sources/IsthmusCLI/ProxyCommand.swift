import ArgumentParser
import Foundation
import IsthmusHTTP
import IsthmusProxy

/// `isthmus proxy`: the authenticating, read-only reverse proxy (DESIGN §3).
struct ProxyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "proxy",
        abstract: "Run the authenticating, read-only reverse proxy in front of the Kubernetes API server.",
        discussion: """
            Admits a request only with a peer's token and an allowlist rule, then forwards it \
            with this proxy's own ServiceAccount token. In a pod the upstream, its CA and the \
            token default to the in-cluster values. Example: isthmus proxy --peers peers.json \
            --policies policies/ --cluster-uuid $(cat cluster-uuid) --tls-cert tls.crt --tls-key tls.key
            """)

    static let serviceAccountDirectory = "/var/run/secrets/kubernetes.io/serviceaccount"

    @Option(help: "Address to listen on, HOST:PORT (port 0 picks a free one).")
    var listen = "0.0.0.0:8443"

    @Option(help: "Serving certificate (PEM); without it and --tls-key a self-signed one is generated.")
    var tlsCert: String?

    @Option(help: "Serving private key (PEM).")
    var tlsKey: String?

    @Option(help: "The API server, https://HOST[:PORT] (default: in-cluster, from KUBERNETES_SERVICE_HOST/PORT).")
    var upstream: String?

    @Option(help: "CA bundle the API server's certificate must chain to (default: the ServiceAccount's ca.crt).")
    var upstreamCA = "\(serviceAccountDirectory)/ca.crt"

    @Option(help: "This proxy's ServiceAccount token file, re-read when it changes (default: the projected token).")
    var tokenFile = "\(serviceAccountDirectory)/token"

    @Option(help: "Trusted peers file (JSON, as written by `isthmus peers add`).")
    var peers: String

    @Option(help: "Directory of allowlist policies (*.yaml).")
    var policies = "policies"

    @Option(help: "This cluster's UUID: the audience every token must name.")
    var clusterUUID: String

    @Option(help: "Clock skew allowed on token nbf/exp, e.g. 60s.")
    var tokenLeeway = "60s"

    @Option(help: "Longest a watch runs through the proxy before it is ended cleanly (jittered by up to 10%), e.g. 30m.")
    var maxWatch = "30m"

    @Option(help: "Upstream TCP connect plus TLS handshake bound, e.g. 5s.")
    var upstreamConnectTimeout = "5s"

    @Option(help: "Upstream response-header bound, e.g. 30s.")
    var upstreamHeaderTimeout = "30s"

    @Option(help: "On SIGTERM/SIGINT: how long watches and requests get to end cleanly before connections are closed, e.g. 10s.")
    var shutdownGrace = "10s"

    @Option(help: "Write the serving CA (PEM) here, for kubeconfigs (useful with a generated certificate).")
    var writeCA: String?

    @Option(help: "Admin listener (plain HTTP: /metrics, /healthz, /readyz), HOST:PORT, or 'off'.")
    var adminListen = "0.0.0.0:9090"

    @Option(help: "Access log, one JSON line per request: 'stdout' or 'off'.")
    var accessLog = "stdout"

    @Option(help: "Audit log file, one JSON line per API request (peer, verb, resource, decision); '-' for stdout.")
    var auditLog: String?

    @Option(help: "How often the API server's /readyz is probed for this proxy's /readyz, e.g. 5s.")
    var readinessProbeInterval = "5s"

    func validate() throws {
        guard APIServerCommand.split(listen) != nil else { throw ValidationError("--listen must be HOST:PORT, got '\(listen)'") }
        guard (tlsCert == nil) == (tlsKey == nil) else { throw ValidationError("--tls-cert and --tls-key go together") }
        for (flag, value) in [("--token-leeway", tokenLeeway), ("--max-watch", maxWatch),
                              ("--upstream-connect-timeout", upstreamConnectTimeout),
                              ("--upstream-header-timeout", upstreamHeaderTimeout),
                              ("--shutdown-grace", shutdownGrace)] {
            guard let seconds = parseDurationSeconds(value), seconds >= 0 else {
                throw ValidationError("\(flag) must be a duration like 90s, 15m or 1h30m, got '\(value)'")
            }
            if flag != "--token-leeway" && flag != "--shutdown-grace" && seconds == 0 { throw ValidationError("\(flag) must be above zero") }
        }
    }

    /// `https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT` in a pod, else the service name.
    static func inClusterUpstream(_ environment: [String: String]) -> String {
        guard let host = environment["KUBERNETES_SERVICE_HOST"], !host.isEmpty else {
            return "https://kubernetes.default.svc"
        }
        let port = environment["KUBERNETES_SERVICE_PORT"] ?? "443"
        return "https://\(host.contains(":") ? "[\(host)]" : host):\(port)"
    }

    private func seconds(_ text: String) -> Duration { .seconds(parseDurationSeconds(text) ?? 0) }

    /// The configuration, or the first problem named by its flag.
    func makeConfiguration() throws(ProxyConfigurationError) -> ProxyConfiguration {
        func read(_ path: String, field: String) throws(ProxyConfigurationError) -> String {
            do {
                return try String(contentsOfFile: path, encoding: .utf8)
            } catch {
                throw ProxyConfigurationError(field: field, problem: "cannot read \(path): \(error.localizedDescription)")
            }
        }
        guard FileManager.default.isReadableFile(atPath: tokenFile) else {
            throw ProxyConfigurationError(field: "--token-file", problem: "cannot read \(tokenFile)")
        }
        var upstreamConfiguration = UpstreamConfiguration(
            url: upstream ?? Self.inClusterUpstream(ProcessInfo.processInfo.environment),
            caCertificatePEM: try read(upstreamCA, field: "--upstream-ca"), tokenFile: tokenFile)
        upstreamConfiguration.connectTimeout = seconds(upstreamConnectTimeout)
        upstreamConfiguration.responseHeaderTimeout = seconds(upstreamHeaderTimeout)
        var configuration = ProxyConfiguration(upstream: upstreamConfiguration, peersFile: peers, policyDirectory: policies,
                                               localClusterUUID: clusterUUID)
        if let (host, port) = APIServerCommand.split(listen) {
            configuration.host = host
            configuration.port = port
        }
        if let tlsCert, let tlsKey {
            let certificate = try read(tlsCert, field: "--tls-cert")
            configuration.tls = ServingCertificates(caCertificatePEM: certificate, certificatePEM: certificate,
                                                    privateKeyPEM: try read(tlsKey, field: "--tls-key"))
        }
        configuration.tokenLeeway = seconds(tokenLeeway)
        configuration.watchLimit = WatchLimit(maximum: seconds(maxWatch), jitter: 0.1)
        if adminListen != "off" {
            guard let (host, port) = APIServerCommand.split(adminListen) else {
                throw ProxyConfigurationError(field: "--admin-listen", problem: "must be HOST:PORT or 'off', got '\(adminListen)'")
            }
            configuration.admin = AdminListenerConfiguration(host: host, port: port)
        }
        switch accessLog {
        case "stdout": configuration.accessLog = .standardOutput
        case "off": configuration.accessLog = .off
        default: throw ProxyConfigurationError(field: "--access-log", problem: "must be 'stdout' or 'off', got '\(accessLog)'")
        }
        if let auditLog { configuration.auditLog = auditLog == "-" ? .standardOutput : .file(auditLog) }
        guard let probeSeconds = parseDurationSeconds(readinessProbeInterval), probeSeconds > 0 else {
            throw ProxyConfigurationError(field: "--readiness-probe-interval", problem: "must be a duration above zero like 5s, got '\(readinessProbeInterval)'")
        }
        configuration.readinessProbeInterval = .seconds(probeSeconds)
        return configuration
    }

    func run() async throws {
        let configuration: ProxyConfiguration
        let proxy: ProxyServer
        do {
            configuration = try makeConfiguration()
            if configuration.tls == nil {
                printError("isthmus proxy: warning: no --tls-cert/--tls-key; serving a generated self-signed certificate")
            }
            proxy = try await ProxyServer.start(configuration)
        } catch let error as ProxyConfigurationError {
            printError("isthmus proxy: \(Self.flag(for: error.field)): \(error.problem)")
            throw ExitCode(2)
        }
        if let writeCA {
            try proxy.certificates.caCertificatePEM.write(toFile: writeCA, atomically: true, encoding: .utf8)
        }
        let dialHost = (configuration.host == "0.0.0.0" || configuration.host == "::") ? "127.0.0.1" : configuration.host
        printError("isthmus proxy: serving https://\(dialHost.contains(":") ? "[\(dialHost)]" : dialHost):\(proxy.port) -> \(configuration.upstream.url)")
        if let admin = configuration.admin, let adminPort = proxy.adminPort {
            let adminHost = (admin.host == "0.0.0.0" || admin.host == "::") ? "127.0.0.1" : admin.host
            printError("isthmus proxy: admin http://\(adminHost.contains(":") ? "[\(adminHost)]" : adminHost):\(adminPort) (/metrics, /healthz, /readyz)")
        }
        await APIServerCommand.waitForTerminationSignal()
        printError("isthmus proxy: shutting down")
        try await proxy.shutdown(grace: seconds(shutdownGrace))
    }

    /// Configuration fields by the flag an operator sets them with.
    static func flag(for field: String) -> String {
        switch field {
        case "peersFile": "--peers"
        case "policyDirectory": "--policies"
        case "localClusterUUID": "--cluster-uuid"
        case "upstream": "--upstream"
        case "admin": "--admin-listen"
        case "accessLog": "--access-log"
        case "auditLog": "--audit-log"
        default: field
        }
    }
}
