import ArgumentParser
import Foundation
import IsthmusHTTP
import IsthmusProxy
import Logging

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

    @Option(help: ArgumentHelp("YAML file of settings (the fields are these flags in camelCase: listen, tlsCert, maxWatch, ...); flags override it.", valueName: "file"))
    var config: String?

    @Option(help: "Address to listen on, HOST:PORT (port 0 picks a free one; default 0.0.0.0:8443).")
    var listen: String?

    @Option(help: "Serving certificate (PEM); without it and --tls-key a self-signed one is generated.")
    var tlsCert: String?

    @Option(help: "Serving private key (PEM).")
    var tlsKey: String?

    @Option(help: "The API server, https://HOST[:PORT] (default: in-cluster, from KUBERNETES_SERVICE_HOST/PORT).")
    var upstream: String?

    @Option(help: "CA bundle the API server's certificate must chain to (default: the ServiceAccount's ca.crt).")
    var upstreamCA: String?

    @Option(help: "This proxy's ServiceAccount token file, re-read when it changes (default: the projected token).")
    var tokenFile: String?

    @Option(help: "Trusted peers file (JSON, as written by `isthmus peers add`). Required, here or in --config.")
    var peers: String?

    @Option(help: "Directory of allowlist policies (*.yaml; default: policies).")
    var policies: String?

    @Option(help: "This cluster's UUID: the audience every token must name. Required, here or in --config.")
    var clusterUUID: String?

    @Option(help: "Clock skew allowed on token nbf/exp, e.g. 60s (default 60s).")
    var tokenLeeway: String?

    @Option(help: "Longest a watch runs through the proxy before it is ended cleanly (jittered by up to 10%), e.g. 30m (default 30m).")
    var maxWatch: String?

    @Option(help: "Upstream TCP connect plus TLS handshake bound, e.g. 5s (default 5s).")
    var upstreamConnectTimeout: String?

    @Option(help: "Upstream response-header bound, e.g. 30s (default 30s).")
    var upstreamHeaderTimeout: String?

    @Option(help: "On SIGTERM/SIGINT: how long watches and requests get to end cleanly before connections are closed, e.g. 10s (default 10s).")
    var shutdownGrace: String?

    @Flag(inversion: .prefixedNo, help: "Serve cleartext HTTP/1.1 instead of TLS (only behind something that encrypts; default off).")
    var plainHTTP: Bool?

    @Option(help: "CA bundle (PEM) client certificates must chain to; without a matching one only /healthz and /readyz answer (403).")
    var clientCA: String?

    @Option(help: "Subject a client certificate must carry, e.g. O=ingress-nginx:auth or CN=ingress,O=edge (with --client-ca).")
    var clientSubject: String?

    @Option(help: "How often the peers file, the policy directory and the TLS files are checked for changes, e.g. 2s (default 2s; SIGHUP checks at once).")
    var reloadInterval: String?

    @Option(help: "Write the serving CA (PEM) here, for kubeconfigs (useful with a generated certificate).")
    var writeCA: String?

    @Option(help: "Admin listener (plain HTTP: /metrics, /healthz, /readyz), HOST:PORT, or 'off' (default 0.0.0.0:9090).")
    var adminListen: String?

    @Option(help: "Access log, one JSON line per request: 'stdout' or 'off' (default stdout).")
    var accessLog: String?

    @Option(help: "Audit log file, one JSON line per API request (peer, verb, resource, decision); '-' for stdout.")
    var auditLog: String?

    @Option(help: "How often the API server's /readyz is probed for this proxy's /readyz, e.g. 5s (default 5s).")
    var readinessProbeInterval: String?

    @Option(help: "Upstream HTTP/2 connections for watches per event loop at most, opened as needed, each carrying as many watches as the API server allows (its SETTINGS_MAX_CONCURRENT_STREAMS; default 64 connections): a backstop above --max-watches, not a limit to tune.")
    var upstreamWatchConnections: String?

    @Option(help: "Protocol of short requests (get, list, discovery) to the API server: 'http1.1' (keep-alive connections, one request at a time each, as nginx does) or 'h2' (streams on shared HTTP/2 connections). Watches always prefer h2 (default http1.1).")
    var upstreamShortProtocol: String?

    @Option(help: "How long an idle upstream keep-alive connection is kept, e.g. 30s (default 30s).")
    var upstreamIdleTimeout: String?

    @Option(help: "Open watches through this proxy at most; one more gets 429 TooManyRequests with Retry-After (default 10000).")
    var maxWatches: String?

    @Option(help: "Open watches of one peer at most; one more gets 429 (default 10000, the total: one peer may use them all).")
    var maxWatchesPerPeer: String?

    @Option(help: "Short requests (get, list, discovery) in flight to the API server at most, shared fairly among the peers asking; a peer alone may use them all (default 64).")
    var maxRequestsInFlight: String?

    @Option(help: "Short requests of one peer waiting for its share at most; one more gets 429 TooManyRequests with Retry-After (default 64).")
    var maxQueuedPerPeer: String?

    @Option(help: "Longest a short request waits for its peer's share before it gets 429, e.g. 5s (default 5s).")
    var maxQueueWait: String?

    @Option(help: "Requests per second of every peer and the burst allowed at once, QPS/BURST (e.g. 50/100), or 'off' (default off); beyond, 429 with Retry-After.")
    var rateLimit: String?

    @Option(help: "Rate limits for named peers, overriding --rate-limit: PEER=QPS/BURST entries, comma-separated (in a config file also a mapping PEER: QPS/BURST).")
    var peerRateLimits: String?

    @Option(help: "Token issuers (iss) accepted, comma-separated; a token with another issuer, or none, gets 401 (default d8-istio).")
    var tokenIssuers: String?

    @Option(help: "The namespace Isthmus runs in (its signing key, trusted peers, Lease): nothing in it is ever served to a peer, whatever the policies (default isthmus-system).")
    var isthmusNamespace: String?

    @OptionGroup(title: "Logging") var logging: LoggingOptions

    /// Every setting a config file may hold; a new one is its `@Option` above plus one line here.
    static var settings: [ProxySetting] {
        [
            .text("listen", \.listen, .hostPort),
            .text("tlsCert", \.tlsCert, .path),
            .text("tlsKey", \.tlsKey, .path),
            .text("upstream", \.upstream),
            .text("upstreamCA", \.upstreamCA, .path),
            .text("tokenFile", \.tokenFile, .path),
            .text("peers", \.peers, .path),
            .text("policies", \.policies, .path),
            .text("clusterUUID", \.clusterUUID),
            .duration("tokenLeeway", \.tokenLeeway, allowsZero: true),
            .duration("maxWatch", \.maxWatch, allowsZero: false),
            .duration("upstreamConnectTimeout", \.upstreamConnectTimeout, allowsZero: false),
            .duration("upstreamHeaderTimeout", \.upstreamHeaderTimeout, allowsZero: false),
            .duration("shutdownGrace", \.shutdownGrace, allowsZero: true),
            .text("writeCA", \.writeCA, .path),
            .bool("plainHTTP", \.plainHTTP),
            .text("clientCA", \.clientCA, .path),
            .text("clientSubject", \.clientSubject),
            .duration("reloadInterval", \.reloadInterval, allowsZero: false),
            .text("adminListen", \.adminListen),
            .text("accessLog", \.accessLog),
            .text("auditLog", \.auditLog),
            .duration("readinessProbeInterval", \.readinessProbeInterval, allowsZero: false),
            .count("upstreamWatchConnections", \.upstreamWatchConnections, in: 1...1024),
            .text("upstreamShortProtocol", \.upstreamShortProtocol),
            .duration("upstreamIdleTimeout", \.upstreamIdleTimeout, allowsZero: false),
            .count("maxWatches", \.maxWatches, in: 1...1_000_000),
            .count("maxWatchesPerPeer", \.maxWatchesPerPeer, in: 1...1_000_000),
            .count("maxRequestsInFlight", \.maxRequestsInFlight, in: 1...100_000),
            .count("maxQueuedPerPeer", \.maxQueuedPerPeer, in: 0...100_000),
            .duration("maxQueueWait", \.maxQueueWait, allowsZero: false),
            .rate("rateLimit", \.rateLimit),
            .peerRates("peerRateLimits", \.peerRateLimits),
            .text("isthmusNamespace", \.isthmusNamespace),
            .text("tokenIssuers", \.tokenIssuers),
        ]
    }

    /// `https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT` in a pod, else the service name.
    static func inClusterUpstream(_ environment: [String: String]) -> String {
        guard let host = environment["KUBERNETES_SERVICE_HOST"], !host.isEmpty else {
            return "https://kubernetes.default.svc"
        }
        let port = environment["KUBERNETES_SERVICE_PORT"] ?? "443"
        return "https://\(host.contains(":") ? "[\(host)]" : host):\(port)"
    }

    private func seconds(_ text: String?, default fallback: Duration) -> Duration {
        text.flatMap(parseDurationSeconds).map { .seconds($0) } ?? fallback
    }

    /// The configuration, or the first problem, named by the flag or the
    /// config-file place it came from (`origins`, from ``merge(_:)``).
    func makeConfiguration(origins: [String: String] = [:]) throws(ProxyConfigurationError) -> ProxyConfiguration {
        func label(_ field: String) -> String {
            origins[field] ?? "--" + ProxySetting.kebabCase(field)
        }
        func read(_ path: String, field: String) throws(ProxyConfigurationError) -> String {
            do {
                return try String(contentsOfFile: path, encoding: .utf8)
            } catch {
                throw ProxyConfigurationError(field: label(field), problem: "cannot read \(path): \(error.localizedDescription)")
            }
        }
        try checkSettings(origins: origins)
        guard let peers else {
            throw ProxyConfigurationError(field: "--peers", problem: "required (the flag, or `peers:` in --config)")
        }
        guard let clusterUUID else {
            throw ProxyConfigurationError(field: "--cluster-uuid", problem: "required (the flag, or `clusterUUID:` in --config)")
        }
        guard (tlsCert == nil) == (tlsKey == nil) else {
            throw ProxyConfigurationError(field: label(tlsCert == nil ? "tlsKey" : "tlsCert"),
                                          problem: "tlsCert and tlsKey go together")
        }
        let tokenFile = self.tokenFile ?? "\(Self.serviceAccountDirectory)/token"
        guard FileManager.default.isReadableFile(atPath: tokenFile) else {
            throw ProxyConfigurationError(field: label("tokenFile"), problem: "cannot read \(tokenFile)")
        }
        var upstreamConfiguration = UpstreamConfiguration(
            url: upstream ?? Self.inClusterUpstream(ProcessInfo.processInfo.environment),
            caCertificatePEM: try read(upstreamCA ?? "\(Self.serviceAccountDirectory)/ca.crt", field: "upstreamCA"),
            tokenFile: tokenFile)
        upstreamConfiguration.connectTimeout = seconds(upstreamConnectTimeout, default: upstreamConfiguration.connectTimeout)
        upstreamConfiguration.responseHeaderTimeout = seconds(upstreamHeaderTimeout,
                                                              default: upstreamConfiguration.responseHeaderTimeout)
        upstreamConfiguration.idleConnectionTimeout = seconds(upstreamIdleTimeout,
                                                              default: upstreamConfiguration.idleConnectionTimeout)
        switch upstreamShortProtocol ?? "http1.1" {
        case "http1.1": upstreamConfiguration.shortRequestsOverHTTP1 = true
        case "h2": upstreamConfiguration.shortRequestsOverHTTP1 = false
        case let other:
            throw ProxyConfigurationError(field: label("upstreamShortProtocol"), problem: "must be 'http1.1' or 'h2', got '\(other)'")
        }
        var configuration = ProxyConfiguration(upstream: upstreamConfiguration, peersFile: peers,
                                               policyDirectory: policies ?? "policies", localClusterUUID: clusterUUID)
        configuration.metrics = ProcessMetrics.exporter
        if let (host, port) = APIServerCommand.split(listen ?? "0.0.0.0:8443") {
            configuration.host = host
            configuration.port = port
        }
        if let tlsCert, let tlsKey {
            // Read by the proxy at start, then polled: a renewed Secret is served without a restart.
            configuration.tlsFiles = ServingCertificateFiles(certificate: tlsCert, key: tlsKey)
        }
        configuration.plainHTTP = plainHTTP ?? false
        if configuration.plainHTTP && (tlsCert != nil || clientCA != nil) {
            throw ProxyConfigurationError(field: label("plainHTTP"), problem: "plain HTTP serves no TLS; drop tlsCert/tlsKey/clientCA")
        }
        if let clientCA {
            configuration.clientCertificateCAPEM = try read(clientCA, field: "clientCA")
        }
        if let clientSubject {
            guard clientCA != nil else {
                throw ProxyConfigurationError(field: label("clientSubject"), problem: "needs clientCA (the CA that signs those certificates)")
            }
            do {
                configuration.clientSubject = try ClientSubjectRequirement(parsing: clientSubject)
            } catch {
                throw ProxyConfigurationError(field: label("clientSubject"), problem: error.description)
            }
        }
        configuration.reloadInterval = seconds(reloadInterval, default: configuration.reloadInterval)
        configuration.tokenLeeway = seconds(tokenLeeway, default: configuration.tokenLeeway)
        configuration.watchLimit = WatchLimit(maximum: seconds(maxWatch, default: configuration.watchLimit.maximum), jitter: 0.1)
        let adminListen = self.adminListen ?? "0.0.0.0:9090"
        if adminListen != "off" {
            guard let (host, port) = APIServerCommand.split(adminListen) else {
                throw ProxyConfigurationError(field: label("adminListen"), problem: "must be HOST:PORT or 'off', got '\(adminListen)'")
            }
            configuration.admin = AdminListenerConfiguration(host: host, port: port)
        }
        switch accessLog ?? "stdout" {
        case "stdout": configuration.accessLog = .standardOutput
        case "off": configuration.accessLog = .off
        case let other: throw ProxyConfigurationError(field: label("accessLog"), problem: "must be 'stdout' or 'off', got '\(other)'")
        }
        if let auditLog { configuration.auditLog = auditLog == "-" ? .standardOutput : .file(auditLog) }
        configuration.readinessProbeInterval = seconds(readinessProbeInterval, default: configuration.readinessProbeInterval)
        if let upstreamWatchConnections {
            // checkSettings has refused anything but a whole number in range.
            configuration.upstream.limits.watchConnections = Int(upstreamWatchConnections) ?? configuration.upstream.limits.watchConnections
        }
        // checkSettings has refused anything but whole numbers in range.
        if let maxWatches { configuration.watchLimits.total = Int(maxWatches) ?? configuration.watchLimits.total }
        if let maxWatchesPerPeer { configuration.watchLimits.perPeer = Int(maxWatchesPerPeer) ?? configuration.watchLimits.perPeer }
        var limits = configuration.shortRequestLimits
        if let maxRequestsInFlight { limits.maxInFlight = Int(maxRequestsInFlight) ?? limits.maxInFlight }
        if let maxQueuedPerPeer { limits.maxQueuedPerPeer = Int(maxQueuedPerPeer) ?? limits.maxQueuedPerPeer }
        limits.maxQueueWait = seconds(maxQueueWait, default: limits.maxQueueWait)
        configuration.shortRequestLimits = limits
        // checkSettings has refused any rate that does not parse.
        if let rateLimit, rateLimit != "off" { configuration.rateLimits.everyPeer = RequestRate(parsing: rateLimit) }
        if let peerRateLimits, case .success(let byPeer) = PeerRateLimits.parseByPeer(peerRateLimits) {
            configuration.rateLimits.byPeer = byPeer
        }
        if let tokenIssuers {
            guard let issuers = parseIssuers(tokenIssuers) else {
                throw ProxyConfigurationError(field: label("tokenIssuers"),
                                              problem: "must list at least one issuer, comma-separated, got '\(tokenIssuers)'")
            }
            configuration.acceptedIssuers = issuers
        }
        if let isthmusNamespace {
            guard isValidNamespaceName(isthmusNamespace) else {
                throw ProxyConfigurationError(field: label("isthmusNamespace"),
                                              problem: "must be a namespace name (lowercase letters, digits and '-', at most 63), got '\(isthmusNamespace)'")
            }
            configuration.isthmusNamespace = isthmusNamespace
        }
        return configuration
    }

    /// An RFC 1123 label, as the API server requires of a namespace name.
    private func isValidNamespaceName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard !bytes.isEmpty, bytes.count <= 63, bytes.first != UInt8(ascii: "-"), bytes.last != UInt8(ascii: "-") else { return false }
        return bytes.allSatisfy { ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == UInt8(ascii: "-") }
    }

    /// This command with `--config` read and merged under the flags, its
    /// configuration and where each file value came from.
    func resolve() throws(ProxyConfigurationError) -> (command: ProxyCommand, configuration: ProxyConfiguration,
                                                       origins: [String: String]) {
        var command = self
        var origins: [String: String] = [:]
        if let config {
            let text: String
            do {
                text = try String(contentsOfFile: config, encoding: .utf8)
            } catch {
                throw ProxyConfigurationError(field: "--config", problem: "cannot read \(config): \(error.localizedDescription)")
            }
            origins = command.merge(try ProxyFileConfiguration(yaml: text, path: config))
        }
        return (command, try command.makeConfiguration(origins: origins), origins)
    }

    func run() async throws {
        logging.bootstrap()
        let logger = Logger(label: "isthmus.proxy")
        let command: ProxyCommand
        let configuration: ProxyConfiguration
        let proxy: ProxyServer
        do {
            let origins: [String: String]
            var resolved: ProxyConfiguration
            (command, resolved, origins) = try resolve()
            resolved.logger = logger
            configuration = resolved
            do {
                proxy = try await ProxyServer.start(configuration)
            } catch let error as ProxyConfigurationError {
                let field = Self.setting(for: error.field)
                throw ProxyConfigurationError(field: origins[field] ?? "--" + ProxySetting.kebabCase(field), problem: error.problem)
            }
        } catch let error as ProxyConfigurationError {
            printError("isthmus proxy: \(error.field): \(error.problem)")
            throw ExitCode(2)
        }
        if configuration.tlsFiles == nil && !configuration.plainHTTP {
            logger.warning("no --tls-cert/--tls-key; serving a generated self-signed certificate")
        }
        if configuration.plainHTTP {
            logger.warning("--plain-http: serving cleartext HTTP; tokens cross the network unencrypted")
        }
        if let writeCA = command.writeCA {
            try proxy.certificates.caCertificatePEM.write(toFile: writeCA, atomically: true, encoding: .utf8)
        }
        let hangups = await HangupService.trapping { await proxy.reload() }
        let grace = seconds(command.shutdownGrace, default: .seconds(10))
        let server = ServerService(announce: {
            let dialHost = (configuration.host == "0.0.0.0" || configuration.host == "::") ? "127.0.0.1" : configuration.host
            let scheme = configuration.plainHTTP ? "http" : "https"
            logger.info("serving \(scheme)://\(dialHost.contains(":") ? "[\(dialHost)]" : dialHost):\(proxy.port) -> \(configuration.upstream.url)")
            if let admin = configuration.admin, let adminPort = proxy.adminPort {
                let adminHost = (admin.host == "0.0.0.0" || admin.host == "::") ? "127.0.0.1" : admin.host
                logger.info("admin http://\(adminHost.contains(":") ? "[\(adminHost)]" : adminHost):\(adminPort) (/metrics, /healthz, /readyz)")
            }
        }, stop: {
            logger.info("shutting down")
            try await proxy.shutdown(grace: grace)
        })
        try await runServices([server, hangups], logger: logger)
    }

    /// ``ProxyConfiguration`` fields (as ``ProxyServer/start(_:)`` names them in
    /// errors) by the setting an operator writes.
    static func setting(for field: String) -> String {
        switch field {
        case "peersFile": "peers"
        case "policyDirectory": "policies"
        case "localClusterUUID": "clusterUUID"
        case "admin": "adminListen"
        default: field
        }
    }
}
