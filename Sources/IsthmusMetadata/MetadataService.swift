import Foundation
import Logging
import NIOConcurrencyHelpers
import IsthmusHTTP
import IsthmusTrust

/// Everything `isthmus metadata` runs with.
public struct MetadataServiceConfiguration: Sendable {
    /// Settings from flags; they win over the config file's.
    public var flags: MetadataSettings
    /// The YAML config file, re-read like every other file.
    public var configFile: String?
    /// Clock skew allowed on token `nbf` / `exp`.
    public var tokenLeeway: Duration = TokenVerifier.defaultLeeway
    /// The token issuers (`iss`) accepted; a token with another, or none, is 401.
    public var acceptedIssuers = TokenVerifier.defaultAcceptedIssuers
    /// How often the files are checked for changes.
    public var reloadInterval: Duration = .seconds(2)
    /// Where gateways come from when the settings list none (e.g. discovery
    /// through the Kubernetes client); nil publishes an empty list.
    public var gatewaySource: (any GatewaySource)?
    /// How often ``gatewaySource`` is asked again.
    public var gatewayRefreshInterval: Duration = .seconds(30)
    /// How long start-up waits for the first lists from the Kubernetes API
    /// (when `rootCAConfigMap` or `ingressGatewayService` is used).
    public var kubernetesSyncTimeout: Duration = .seconds(30)
    public var threads = 1
    /// Where the admin listener (plain HTTP: `/metrics`, `/healthz`, `/readyz`) binds; nil serves none.
    public var admin: (host: String, port: Int)?
    /// Where the service's metrics go: the process's exporter (the command bootstraps it), or one of its own.
    public var metrics = MetricsExporter()

    public init(flags: MetadataSettings, configFile: String? = nil) {
        self.flags = flags
        self.configFile = configFile
    }
}

/// The result of one look at the sources.
public enum MetadataReload: Sendable, Equatable {
    case unchanged
    /// New documents or peers are being served.
    case rebuilt
    /// The sources are broken; the last good snapshot stays in service.
    case failed(String)
}

/// The metadata service: loads its sources (a problem fails ``start(_:logger:)``,
/// naming the field), serves them, and polls the files (and the gateway
/// source) so a change rebuilds the documents and the trusted peers without
/// a restart. A broken change keeps the last good snapshot and is reported.
///
/// Files are compared by content, not mtime: Kubernetes updates a mounted
/// Secret or ConfigMap by swapping a symlink, which keeps old mtimes.
public final class MetadataService: Sendable {
    public let server: MetadataServer
    /// The settings the service started with (flags over the config file).
    public let settings: MetadataSettings
    /// The informers behind `rootCAConfigMap` / `ingressGatewayService`, if used.
    public let kubernetes: KubeMetadataSources?
    /// The admin listener, when ``MetadataServiceConfiguration/admin`` is set.
    public let admin: AdminServer?
    private let reloader: Reloader
    private let tasks: [Task<Void, Never>]

    private init(server: MetadataServer, settings: MetadataSettings, kubernetes: KubeMetadataSources?,
                 admin: AdminServer?, reloader: Reloader, tasks: [Task<Void, Never>]) {
        self.server = server
        self.admin = admin
        self.settings = settings
        self.kubernetes = kubernetes
        self.reloader = reloader
        self.tasks = tasks
    }

    /// Loads, validates and starts listening. `logger` gets the events
    /// (reloads, refusals, which peer read private metadata); no event ever
    /// holds a token or a key. Silent unless given one.
    public static func start(_ configuration: MetadataServiceConfiguration,
                             logger: Logger = Logger(label: "isthmus.metadata", factory: { _ in SwiftLogNoOpLogHandler() }))
        async throws -> MetadataService {
        let reloader = Reloader(configuration: configuration, logger: logger)
        let kubernetes = try await reloader.startKubernetesSources()
        do {
            return try await start(configuration, reloader: reloader, kubernetes: kubernetes, logger: logger)
        } catch {
            await kubernetes?.stop()
            throw error
        }
    }

    private static func start(_ configuration: MetadataServiceConfiguration, reloader: Reloader,
                              kubernetes: KubeMetadataSources?,
                              logger: Logger) async throws -> MetadataService {
        let (inputs, snapshot) = try await reloader.loadInitial()
        var serverConfiguration = MetadataServerConfiguration()
        serverConfiguration.threads = configuration.threads
        let settings = inputs.settings
        if let listen = settings.listen {
            guard let (host, port) = splitHostPort(listen) else {
                throw MetadataSourceError(field: "listen", problem: "must be HOST:PORT, got \(listen.debugDescription)")
            }
            serverConfiguration.host = host
            serverConfiguration.port = port
        }
        serverConfiguration.plainHTTP = settings.plainHTTP ?? false
        switch (settings.tlsCertFile, settings.tlsKeyFile) {
        case (let cert?, let key?) where !serverConfiguration.plainHTTP:
            let certificate = try readText(cert, field: "tlsCert")
            serverConfiguration.tls = ServingCertificates(caCertificatePEM: certificate, certificatePEM: certificate,
                                                          privateKeyPEM: try readText(key, field: "tlsKey"))
        case (nil, nil):
            break
        case _ where serverConfiguration.plainHTTP:
            break  // plain HTTP ignores a certificate
        default:
            throw MetadataSourceError(field: "tlsCert", problem: "tlsCert and tlsKey go together")
        }
        let metrics = MetadataMetrics(configuration.metrics)
        let server = try await MetadataServer.start(serverConfiguration, snapshot: snapshot) { access in
            metrics.count(access)
            // Refusals say why; private reads say which peer read (the audit trail).
            let request: Logger.Metadata = ["method": "\(access.method)", "path": "\(access.path)", "code": "\(access.code)"]
            if let reason = access.reason {
                logger.info("\(access.method) \(access.path) \(access.code): \(reason)", metadata: request)
            } else if let peer = access.peer {
                logger.info("\(access.method) \(access.path) \(access.code): read by peer \(peer)",
                            metadata: request.merging(["peer": "\(peer)"]) { $1 })
            }
        }
        await reloader.attach(server)
        let interval = configuration.reloadInterval
        // A failure is logged when it starts or changes, not on every poll or watch event.
        let lastFailure = NIOLockedValueBox<String?>(nil)
        @Sendable func report(_ outcome: MetadataReload) {
            let reason: String? = if case .failed(let reason) = outcome { reason } else { nil }
            let isNew = lastFailure.withLockedValue { last in
                defer { last = reason }
                return reason != last
            }
            switch outcome {
            case .unchanged: break
            case .rebuilt:
                metrics.reloads(["result": "success"]).increment()
                logger.info("sources changed: serving rebuilt metadata")
            case .failed(let reason) where isNew:
                metrics.reloads(["result": "failure"]).increment()
                logger.warning("sources not reloaded, still serving the last good metadata: \(reason)")
            case .failed: break
            }
        }
        var tasks = [Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: interval)
                if Task.isCancelled { break }
                for problem in kubernetes?.newProblems() ?? [] {
                    logger.warning("\(problem); serving the last known root CA and ingress gateways")
                }
                report(await reloader.reloadIfChanged())
            }
        }]
        if let kubernetes {
            // A watched object changed: rebuild now, not at the next poll.
            tasks.append(Task {
                for await _ in kubernetes.changes {
                    report(await reloader.reloadIfChanged(forceGateways: true))
                }
            })
        }
        var admin: AdminServer?
        if let (host, port) = configuration.admin {
            do {
                admin = try await AdminServer.start(host: host, port: port) { target in
                    switch target.prefix(while: { $0 != "?" }) {
                    case "/healthz", "/readyz": .text(200, "ok")
                    case "/metrics": AdminResponse(code: 200, contentType: MetricsExporter.contentType,
                                                   body: configuration.metrics.exposition())
                    default: nil
                    }
                }
            } catch {
                for task in tasks { task.cancel() }
                try? await server.shutdown()
                throw MetadataSourceError(field: "admin", problem: "cannot listen on \(host):\(port): \(error)")
            }
        }
        return MetadataService(server: server, settings: settings, kubernetes: kubernetes, admin: admin,
                               reloader: reloader, tasks: tasks)
    }

    /// Checks the sources now instead of at the next tick (tests, SIGHUP).
    public func reloadNow() async -> MetadataReload {
        await reloader.reloadIfChanged(forceGateways: true)
    }

    public var port: Int { server.port }

    public func shutdown() async throws {
        for task in tasks { task.cancel() }
        try? await admin?.close()
        await kubernetes?.stop()
        try await server.shutdown()
    }

    static func readText(_ path: String, field: String) throws(MetadataSourceError) -> String {
        do {
            return try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw MetadataSourceError(field: field, problem: "cannot read \(path): \(error.localizedDescription)")
        }
    }

    static func readBytes(_ path: String, field: String) throws(MetadataSourceError) -> [UInt8] {
        do {
            return [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        } catch {
            throw MetadataSourceError(field: field, problem: "cannot read \(path): \(error.localizedDescription)")
        }
    }

    /// `HOST:PORT`, `[v6]:PORT`.
    public static func splitHostPort(_ text: String) -> (String, Int)? {
        guard let gateway = IngressGateway(parsing: text), (0...65535).contains(gateway.port) else { return nil }
        return (gateway.address, gateway.port)
    }
}

/// What a snapshot was built from; equal inputs mean nothing to rebuild.
struct MetadataInputs: Sendable, Equatable {
    var settings: MetadataSettings
    var files: MetadataSettings.Files
    var gateways: [IngressGateway]
}

/// Reads sources and swaps snapshots. An actor: reloads are rare and must
/// not interleave; requests never wait on it (they read the server's box).
actor Reloader {
    let configuration: MetadataServiceConfiguration
    /// For problems that do not stop a rebuild (a gateway source that is down).
    let logger: Logger
    private var server: MetadataServer?
    private var last: MetadataInputs?
    private var gateways: [IngressGateway] = []
    private var gatewaysFetchedAt: ContinuousClock.Instant?
    private var kubernetes: KubeMetadataSources?

    init(configuration: MetadataServiceConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    func attach(_ server: MetadataServer) { self.server = server }

    /// Starts the informers the settings ask for (read once, at start), or returns nil.
    func startKubernetesSources() async throws(MetadataSourceError) -> KubeMetadataSources? {
        let settings = try readSettings()
        guard settings.readsKubernetes else { return nil }
        func reference(_ text: String?, field: String) throws(MetadataSourceError) -> ObjectReference? {
            guard let text else { return nil }
            guard let reference = ObjectReference(parsing: text) else {
                throw MetadataSourceError(field: field, problem: "must be NAMESPACE/NAME, got \(text.debugDescription)")
            }
            return reference
        }
        let configMap = settings.rootCAFile == nil ? try reference(settings.rootCAConfigMap, field: "rootCAConfigMap") : nil
        let service = settings.ingressGateways == nil && configuration.gatewaySource == nil
            ? try reference(settings.ingressGatewayService, field: "ingressGatewayService") : nil
        let sources = try await KubeMetadataSources.start(
            kubeconfig: settings.kubeconfig, rootCAConfigMap: configMap, ingressGatewayService: service,
            syncTimeout: configuration.kubernetesSyncTimeout)
        kubernetes = sources
        return sources
    }

    private var gatewaySource: (any GatewaySource)? {
        configuration.gatewaySource ?? (kubernetes?.ingressGatewayService != nil ? kubernetes?.gatewaySource : nil)
    }

    func loadInitial() async throws -> (MetadataInputs, MetadataSnapshot) {
        let settings = try readSettings()
        if settings.ingressGateways == nil, let source = gatewaySource {
            // A gateway source that is down at start must not keep the public
            // document (the root CA) from being served; it is retried.
            do {
                gateways = try await source.ingressGateways()
            } catch {
                logger.warning("ingress gateways: \(error); publishing none until discovery succeeds")
            }
            gatewaysFetchedAt = .now
        }
        let inputs = try readInputs(settings)
        let snapshot = try build(inputs)
        last = inputs
        return (inputs, snapshot)
    }

    func reloadIfChanged(forceGateways: Bool = false) async -> MetadataReload {
        var gatewayProblem: String?
        do {
            let settings = try readSettings()
            if settings.ingressGateways == nil, let source = gatewaySource,
               forceGateways || gatewaysFetchedAt.map({ ContinuousClock.now - $0 >= configuration.gatewayRefreshInterval }) ?? true {
                gatewaysFetchedAt = .now
                do {
                    gateways = try await source.ingressGateways()
                } catch {
                    gatewayProblem = "ingress gateways: \(error)"
                }
            }
            let inputs = try readInputs(settings)
            guard inputs != last else { return gatewayProblem.map { .failed($0) } ?? .unchanged }
            let snapshot = try build(inputs)
            last = inputs
            server?.replace(snapshot)
            if let gatewayProblem { logger.warning("\(gatewayProblem); keeping the last good list") }
            return .rebuilt
        } catch {
            return .failed("\(error)")
        }
    }

    private func readSettings() throws(MetadataSourceError) -> MetadataSettings {
        guard let file = configuration.configFile else { return configuration.flags }
        let text = try MetadataService.readText(file, field: "config")
        return configuration.flags.merged(over: try MetadataSettings(yaml: text, file: file))
    }

    private func readInputs(_ settings: MetadataSettings) throws(MetadataSourceError) -> MetadataInputs {
        try settings.requireFields()
        let files = MetadataSettings.Files(
            key: try MetadataService.readText(settings.keyFile ?? "", field: "key"),
            rootCA: try readRootCA(settings),
            peers: try MetadataService.readBytes(settings.peersFile ?? "", field: "peers"))
        return MetadataInputs(settings: settings, files: files, gateways: settings.ingressGateways ?? gateways)
    }

    /// The file when one is named, else the watched ConfigMap.
    private func readRootCA(_ settings: MetadataSettings) throws(MetadataSourceError) -> String {
        if settings.rootCAFile == nil, let kubernetes, kubernetes.rootCAConfigMap != nil {
            return try kubernetes.rootCA()
        }
        return try MetadataService.readText(settings.rootCAFile ?? "", field: "rootCA")
    }

    private func build(_ inputs: MetadataInputs) throws(MetadataSourceError) -> MetadataSnapshot {
        let (sources, peers) = try inputs.settings.resolve(inputs.files, gateways: inputs.gateways)
        let documents = try MetadataDocuments(sources)
        let verifier = TokenVerifier(localClusterUUID: sources.clusterUUID, peers: peers, leeway: configuration.tokenLeeway,
                                     acceptedIssuers: configuration.acceptedIssuers)
        return MetadataSnapshot(documents: documents, verifier: verifier)
    }
}
