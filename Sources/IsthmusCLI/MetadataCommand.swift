import ArgumentParser
import Dispatch
import Foundation
import IsthmusMetadata
import IsthmusTrust
import Logging

/// `isthmus metadata`: publishes this cluster's public metadata to anyone and
/// its private metadata to trusted peers (DESIGN §2, §4).
struct MetadataCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "metadata",
        abstract: "Serve this cluster's public and private multicluster metadata.",
        discussion: """
            GET /metadata/public/public.json (no auth): clusterUUID, authnKeyPub, rootCA. \
            GET /metadata/private/multicluster.json (a peer's JWT with scope private-multicluster): \
            apiHost, networkName, ingressGateways, clusterDomain, podSubnetCIDR, serviceSubnetCIDR. \
            Every setting is a flag or a key of the --config YAML file (flags win); the files named \
            (key, root CA, peers, config) are re-read when they change, or at once on SIGHUP. \
            Example: isthmus metadata --cluster-uuid $(cat cluster-uuid) --key cluster.key \
            --root-ca root-cert.pem --api-host istio-api.k8s-a.example.com --network-name network-a \
            --ingress-gateway 203.0.113.10:15443 --pod-cidr 10.111.0.0/16 --service-cidr 10.222.0.0/16 \
            --peers peers.json --tls-cert tls.crt --tls-key tls.key. \
            In a cluster, read the root CA and the gateways from the API instead: \
            --root-ca-configmap istio-system/istio-ca-root-cert --ingress-gateway-service istio-system/istio-ingressgateway
            """)

    @Option(help: "YAML file with any of the settings below (camelCase keys, e.g. apiHost); flags win.")
    var config: String?

    @Option(help: "This cluster's UUID: published as clusterUUID, and the audience peers' tokens must name.")
    var clusterUUID: String?

    @Option(help: "This cluster's key (PEM): the private key (its public key is derived and published) or the public key.")
    var key: String?

    @Option(help: "The Istio root CA (PEM), published as rootCA.")
    var rootCA: String?

    @Option(help: ArgumentHelp(
        "Istio's root CA ConfigMap, NAMESPACE/NAME (key root-cert.pem), watched; instead of --root-ca.",
        valueName: "namespace/name"))
    var rootCAConfigmap: String?

    @Option(help: ArgumentHelp(
        "Discover the ingress gateways from this Service, NAMESPACE/NAME (e.g. istio-system/istio-ingressgateway), "
            + "watching it, its pods and the nodes; used when no --ingress-gateway is given.",
        valueName: "namespace/name"))
    var ingressGatewayService: String?

    @Option(help: "Kubeconfig for --root-ca-configmap and --ingress-gateway-service (default: $KUBECONFIG, in-cluster, ~/.kube/config).")
    var kubeconfig: String?

    @Option(help: "Where peers reach this cluster's API through the proxy: HOST[:PORT], no scheme.")
    var apiHost: String?

    @Option(help: "This cluster's Istio network name.")
    var networkName: String?

    @Option(help: "An ingress gateway address, ADDRESS:PORT ([IPv6]:PORT); repeat for several.")
    var ingressGateway: [String] = []

    @Option(help: "The cluster's DNS domain (default: cluster.local).")
    var clusterDomain: String?

    @Option(help: "Pod CIDRs, comma-separated, IPv4 and/or IPv6.")
    var podCIDR: String?

    @Option(help: "Service CIDRs, comma-separated, IPv4 and/or IPv6.")
    var serviceCIDR: String?

    @Option(help: "Trusted peers file (JSON, as the controller or `isthmus peers add` writes it).")
    var peers: String?

    @Option(help: "Address to listen on, HOST:PORT (default 0.0.0.0:8443; port 0 picks a free one).")
    var listen: String?

    @Option(help: "Serving certificate (PEM); without it and --tls-key a self-signed one is generated.")
    var tlsCert: String?

    @Option(help: "Serving private key (PEM).")
    var tlsKey: String?

    @Flag(help: "Serve plain HTTP/1.1 (only behind a TLS-terminating Ingress).")
    var plainHTTP = false

    @Option(help: "Clock skew allowed on token nbf/exp, e.g. 60s.")
    var tokenLeeway = "60s"

    @Option(help: "Token issuers (iss) accepted, comma-separated; any other, or none, is refused.")
    var tokenIssuers = TokenClaims.deckhouseIssuer

    @Option(help: "How often the files are checked for changes, e.g. 2s.")
    var reloadInterval = "2s"

    @Option(help: "Write the serving CA (PEM) here (useful with a generated certificate).")
    var writeCA: String?

    @Option(help: "Plain-HTTP admin listener for /metrics, /healthz and /readyz, HOST:PORT (e.g. 0.0.0.0:9090); none unless set.")
    var adminListen: String?

    @OptionGroup(title: "Logging") var logging: LoggingOptions

    func validate() throws {
        guard parseIssuers(tokenIssuers) != nil else {
            throw ValidationError("--token-issuers must list at least one issuer, comma-separated, got '\(tokenIssuers)'")
        }
        for (flag, value) in [("--token-leeway", tokenLeeway), ("--reload-interval", reloadInterval)] {
            guard let seconds = parseDurationSeconds(value), seconds >= 0 else {
                throw ValidationError("\(flag) must be a duration like 90s, 15m or 1h30m, got '\(value)'")
            }
            if flag == "--reload-interval" && seconds == 0 { throw ValidationError("--reload-interval must be above zero") }
        }
        for gateway in ingressGateway where IngressGateway(parsing: gateway) == nil {
            throw ValidationError("--ingress-gateway must be ADDRESS:PORT, got '\(gateway)'")
        }
        for (flag, value) in [("--root-ca-configmap", rootCAConfigmap), ("--ingress-gateway-service", ingressGatewayService)] {
            if let value, ObjectReference(parsing: value) == nil {
                throw ValidationError("\(flag) must be NAMESPACE/NAME, got '\(value)'")
            }
        }
        for (flag, value) in [("--listen", listen), ("--admin-listen", adminListen)] {
            if let value, MetadataService.splitHostPort(value) == nil {
                throw ValidationError("\(flag) must be HOST:PORT, got '\(value)'")
            }
        }
    }

    /// The flags as settings; unset flags leave the config file's values.
    func flagSettings() -> MetadataSettings {
        var settings = MetadataSettings()
        settings.clusterUUID = clusterUUID
        settings.keyFile = key
        settings.rootCAFile = rootCA
        settings.apiHost = apiHost
        settings.networkName = networkName
        if !ingressGateway.isEmpty { settings.ingressGateways = ingressGateway.compactMap(IngressGateway.init(parsing:)) }
        settings.clusterDomain = clusterDomain
        settings.podSubnetCIDRs = podCIDR.map(MetadataSettings.splitCIDRs)
        settings.serviceSubnetCIDRs = serviceCIDR.map(MetadataSettings.splitCIDRs)
        settings.peersFile = peers
        settings.listen = listen  // unset everywhere: 0.0.0.0:8443
        settings.tlsCertFile = tlsCert
        settings.tlsKeyFile = tlsKey
        if plainHTTP { settings.plainHTTP = true }
        settings.kubeconfig = kubeconfig
        settings.rootCAConfigMap = rootCAConfigmap
        settings.ingressGatewayService = ingressGatewayService
        return settings
    }

    func run() async throws {
        logging.bootstrap()
        let logger = Logger(label: "isthmus.metadata")
        var configuration = MetadataServiceConfiguration(flags: flagSettings(), configFile: config)
        configuration.tokenLeeway = .seconds(parseDurationSeconds(tokenLeeway) ?? 60)
        configuration.acceptedIssuers = parseIssuers(tokenIssuers) ?? TokenVerifier.defaultAcceptedIssuers
        configuration.reloadInterval = .seconds(parseDurationSeconds(reloadInterval) ?? 2)
        configuration.admin = adminListen.flatMap(MetadataService.splitHostPort).map { (host: $0.0, port: $0.1) }
        configuration.metrics = ProcessMetrics.exporter
        let service: MetadataService
        do {
            service = try await MetadataService.start(configuration, logger: logger)
        } catch let error as MetadataSourceError {
            printError("isthmus metadata: \(Self.flag(for: error.field)): \(error.problem)")
            throw ExitCode(2)
        }
        // Trapped before the "serving" line, so a SIGHUP sent once it appears is never the default (fatal) one.
        let hangups = await HangupService.trapping {
            let outcome = await service.reloadNow()
            logger.info("SIGHUP: \(outcome == .unchanged ? "sources unchanged" : "\(outcome)")")
        }
        if let writeCA, let ca = service.server.certificates?.caCertificatePEM {
            try ca.write(toFile: writeCA, atomically: true, encoding: .utf8)
        }
        if service.server.certificates != nil && service.settings.tlsCertFile == nil {
            logger.warning("no --tls-cert/--tls-key; serving a generated self-signed certificate")
        }
        let server = ServerService(announce: {
            let host = MetadataService.splitHostPort(service.settings.listen ?? "")?.0 ?? "0.0.0.0"
            let dialHost = (host == "0.0.0.0" || host == "::") ? "127.0.0.1" : host
            let scheme = service.server.certificates == nil ? "http" : "https"
            let documents = service.server.snapshot.documents
            let address = "\(scheme)://\(dialHost.contains(":") ? "[\(dialHost)]" : dialHost):\(service.port)"
            let admin = service.admin.map { ", admin http://\(adminListen.flatMap(MetadataService.splitHostPort)?.0 ?? ""):\($0.port)" } ?? ""
            logger.info("serving \(address) for cluster \(documents.sources.clusterUUID) (\(documents.sources.ingressGateways.count) ingress gateways, \(service.server.snapshot.verifier.peers.count) trusted peers)\(admin)")
        }, stop: {
            logger.info("shutting down")
            try await service.shutdown()
        })
        try await runServices([server, hangups], logger: logger)
    }

    /// Settings by the flag an operator sets them with, and the config key.
    static func flag(for field: String) -> String {
        let flags = [
            "clusterUUID": "--cluster-uuid", "key": "--key", "rootCA": "--root-ca", "apiHost": "--api-host",
            "networkName": "--network-name", "clusterDomain": "--cluster-domain", "podSubnetCIDR": "--pod-cidr",
            "serviceSubnetCIDR": "--service-cidr", "peers": "--peers", "listen": "--listen", "tlsCert": "--tls-cert",
            "tlsKey": "--tls-key", "config": "--config", "kubeconfig": "--kubeconfig", "admin": "--admin-listen",
            "rootCAConfigMap": "--root-ca-configmap", "ingressGatewayService": "--ingress-gateway-service",
        ]
        if field.hasPrefix("ingressGateways") { return "--ingress-gateway (\(field))" }
        guard let flag = flags[field] else { return field }
        return "\(flag) (\(field))"
    }
}
