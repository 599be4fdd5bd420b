import Foundation
import IsthmusAdmission
import IsthmusHTTP
import IsthmusPolicy
import IsthmusTrust
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL

/// Everything `isthmus proxy` needs to serve. Plain data, checked once at start.
public struct ProxyConfiguration: Sendable {
    /// Address to listen on.
    public var host = "0.0.0.0"
    /// 0 picks a free port; read the bound one from ``ProxyServer/port``.
    public var port = 8443
    /// The serving certificate; nil (and no ``tlsFiles``) generates a
    /// self-signed one (dev and tests).
    public var tls: ServingCertificates?
    /// The serving certificate and key as files: loaded at start instead of
    /// ``tls`` and re-read when they change (new connections get the new pair).
    public var tlsFiles: ServingCertificateFiles?
    /// Serve cleartext HTTP/1.1 instead of TLS. Only for a loopback or a mesh
    /// that already encrypts; never the default.
    public var plainHTTP = false
    /// CA bundle (PEM) client certificates must chain to. With it, a request
    /// without a verified client certificate whose subject matches
    /// ``clientSubject`` gets 403, except `/healthz` and `/readyz`.
    public var clientCertificateCAPEM: String?
    /// The subject a client certificate must carry (with ``clientCertificateCAPEM``);
    /// nil accepts any certificate from that CA.
    public var clientSubject: ClientSubjectRequirement?
    /// How often the peers file, the policy directory and the certificate
    /// files are compared with what is loaded (``ProxyServer/reload()`` forces it).
    public var reloadInterval: Duration = .seconds(2)
    /// Operational events (reloads, refused reloads); never handed a token
    /// or a key. The access and audit logs are apart (``accessLog``, ``auditLog``).
    public var logger = Logger(label: "isthmus.proxy")
    /// Where the proxy's metrics go and `/metrics` reads them: the process's
    /// exporter (the command bootstraps it), or one of its own by default.
    public var metrics = MetricsExporter()
    public var upstream: UpstreamConfiguration
    /// The trusted peers file (JSON), as written by `isthmus peers add`.
    public var peersFile: String
    /// The directory of allowlist policies (`*.yaml`).
    public var policyDirectory: String
    /// This cluster's UUID: the `aud` every token must carry.
    public var localClusterUUID: String
    /// Clock skew allowed on `nbf` / `exp`.
    public var tokenLeeway: Duration = TokenVerifier.defaultLeeway
    /// The token issuers (`iss`) accepted; a token with another, or none, is 401.
    public var acceptedIssuers = TokenVerifier.defaultAcceptedIssuers
    /// Watches end cleanly after this (with jitter) so clients re-watch.
    public var watchLimit = WatchLimit()
    /// Event loop threads (the upstream pools live on the same loops).
    public var threads = System.coreCount
    /// The admin listener (plain HTTP: `/metrics`, `/healthz`, `/readyz`); nil runs none.
    public var admin: AdminListenerConfiguration?
    /// One JSON line per request (see ``RequestRecord``).
    public var accessLog: LogDestination = .off
    /// One JSON line per API request: which peer read what, and the decision.
    public var auditLog: LogDestination = .off
    /// How often the upstream's `/readyz` is probed for the proxy's own `/readyz`.
    public var readinessProbeInterval: Duration = .seconds(5)
    /// Open watches at most, in total and per peer; beyond, 429 with Retry-After.
    public var watchLimits = WatchBudget.Limits()
    /// Short requests in flight upstream, shared fairly among the peers asking;
    /// beyond a peer's queue, 429 with Retry-After (``PeerFairQueue``).
    public var shortRequestLimits = ShortRequestLimits()
    /// Requests per second of each peer (token buckets); off by default.
    public var rateLimits = PeerRateLimits()
    /// The namespace Isthmus runs in: nothing in it is ever served to a peer
    /// (``ProtectedObjects``).
    public var isthmusNamespace = ProtectedObjects.defaultIsthmusNamespace

    public init(upstream: UpstreamConfiguration, peersFile: String, policyDirectory: String, localClusterUUID: String) {
        self.upstream = upstream
        self.peersFile = peersFile
        self.policyDirectory = policyDirectory
        self.localClusterUUID = localClusterUUID
    }
}

/// A configuration error, naming the field, raised before listening.
public struct ProxyConfigurationError: Error, Sendable, Equatable, CustomStringConvertible {
    public var field: String
    public var problem: String
    public var description: String { "\(field): \(problem)" }

    public init(field: String, problem: String) {
        self.field = field
        self.problem = problem
    }
}

/// What every request handler shares: the current admission snapshot, the
/// upstream client, the limits. Read on the data path without an actor hop.
final class ProxyServices: Sendable {
    /// Swapped whole on a reload of peers or policy; a request copies it once.
    let admission: NIOLockedValueBox<AdmissionPipeline>
    let upstream: UpstreamClient
    let watchLimit: WatchLimit
    let responseHeaderTimeout: TimeAmount
    let statistics = NIOLockedValueBox(ProxyStatistics())
    /// Non-nil when requests need a verified client certificate (see ``ProxyConfiguration/clientCertificateCAPEM``).
    let clientCertificateCheck: ClientCertificateCheck?
    /// Metrics, logs and readiness (see ``ProxyOperations``).
    let operations: ProxyOperations
    /// Open watches counted against ``ProxyConfiguration/watchLimits``.
    let watchBudget: NIOLockedValueBox<WatchBudget>
    /// Rate limits and the fair queue of short requests (``PeerFairness``).
    let fairness: NIOLockedValueBox<PeerFairness>
    /// No rate limit is set, so a watch need not take ``fairness``'s lock.
    let rateLimitsOff: Bool
    let maxQueueWait: TimeAmount
    let refusalDelay: TimeAmount
    /// Why the latest reload of each source was refused (the previous state
    /// still serves); shown on `/readyz?verbose`. Cleared by a good reload.
    let reloadRefusals = NIOLockedValueBox([ReloadSource: String]())

    /// The live request handlers of each event loop, so a shutdown can end
    /// their watches cleanly. Touched once per connection or stream, on its loop.
    let relays: [ObjectIdentifier: NIOLoopBoundBox<ActiveRelays>]

    init(admission: AdmissionPipeline, upstream: UpstreamClient, watchLimit: WatchLimit, responseHeaderTimeout: Duration,
         clientCertificateCheck: ClientCertificateCheck? = nil, group: any EventLoopGroup, operations: ProxyOperations,
         watchLimits: WatchBudget.Limits = WatchBudget.Limits(),
         shortRequestLimits: ShortRequestLimits = ShortRequestLimits(), rateLimits: PeerRateLimits = PeerRateLimits()) {
        self.operations = operations
        self.fairness = NIOLockedValueBox(PeerFairness(limits: shortRequestLimits, rates: rateLimits))
        self.rateLimitsOff = rateLimits.isOff
        self.maxQueueWait = TimeAmount(shortRequestLimits.maxQueueWait)
        self.refusalDelay = TimeAmount(shortRequestLimits.refusalDelay)
        self.watchBudget = NIOLockedValueBox(WatchBudget(limits: watchLimits))
        self.admission = NIOLockedValueBox(admission)
        self.clientCertificateCheck = clientCertificateCheck
        self.upstream = upstream
        self.watchLimit = watchLimit
        self.responseHeaderTimeout = TimeAmount(responseHeaderTimeout)
        var relays: [ObjectIdentifier: NIOLoopBoundBox<ActiveRelays>] = [:]
        for loop in group.makeIterator() {
            relays[ObjectIdentifier(loop)] = NIOLoopBoundBox.makeBoxSendingValue(ActiveRelays(), eventLoop: loop)
        }
        self.relays = relays
    }

    /// Swaps in a new admission snapshot (a reload) and decides every open
    /// watch again against it, on its own loop: a watch the new peers or
    /// policy no longer allow ends now (DESIGN §3 step 4b). Returns the previous one.
    @discardableResult
    func install(_ next: AdmissionPipeline) -> AdmissionPipeline {
        let previous = admission.withLockedValue { current in
            defer { current = next }
            return current
        }
        for box in relays.values {
            box.eventLoop.execute {
                let now = Int64(Date().timeIntervalSince1970)
                for handler in Array(box.value.handlers.values) { handler.redecideWatch(next, now: now) }
            }
        }
        return previous
    }

    /// Asks every live handler to finish (see ``ProxyHandler/drain()``); the
    /// result is how many are still open.
    func drainAll() -> EventLoopFuture<Int> {
        let counts = relays.values.map { box in
            box.eventLoop.submit {
                let active = box.value
                active.draining = true
                for handler in Array(active.handlers.values) { handler.drain() }
                return active.handlers.count
            }
        }
        guard let first = relays.values.first else { return MultiThreadedEventLoopGroup.singleton.any().makeSucceededFuture(0) }
        return EventLoopFuture.whenAllSucceed(counts, on: first.eventLoop).map { $0.reduce(0, +) }
    }
}

/// One event loop's live ``ProxyHandler``s. Loop-confined.
final class ActiveRelays {
    var handlers: [ObjectIdentifier: ProxyHandler] = [:]
    /// Set at shutdown: handlers added from now on are asked to drain at once.
    var draining = false
}

/// Counters of rare events on the data path (each costs a lock, so none
/// is touched per chunk). `/metrics` reads them at scrape time.
public struct ProxyStatistics: Sendable, Hashable {
    /// Times an upstream read was held because a client could not take more.
    public var upstreamReadsHeld = 0
    /// Watches ended by the proxy's watch limit.
    public var watchesEndedAtLimit = 0
    /// Requests cancelled upstream because their client went away.
    public var upstreamCancelledByClient = 0
    /// Requests sent again on a new connection because the keep-alive
    /// connection they went out on was closed before any answer.
    public var upstreamRequestsResent = 0
    /// Watches whose upstream stream or connection was lost between two
    /// events, ended to their clients as a watch that timed out.
    public var watchesEndedByUpstreamLoss = 0
    /// Response body bytes handed to clients, added when a request ends and
    /// when a read is held (so a stalled watch is counted too).
    public var bytesRelayed = 0
}

/// The authenticating, read-only reverse proxy of DESIGN §3: a TLS listener
/// (h2 and http/1.1) whose handlers admit each request and relay it to the
/// API server through ``UpstreamClient``.
public final class ProxyServer: Sendable {
    public let port: Int
    /// The serving certificate in use (generated, given, or reloaded from
    /// ``ProxyConfiguration/tlsFiles``); its CA goes into kubeconfigs. With
    /// ``ProxyConfiguration/plainHTTP``, a generated one that is not served.
    public var certificates: ServingCertificates { currentCertificates.withLockedValue { $0 } }
    private let currentCertificates: NIOLockedValueBox<ServingCertificates>
    /// The admin listener's port, when it runs.
    public let adminPort: Int?
    private let server: HTTPServer
    private let adminServer: HTTPServer?
    private let services: ProxyServices
    private let group: MultiThreadedEventLoopGroup
    private let reloader: ProxyReloader
    private let polling: Task<Void, Never>
    private let isShutDown = NIOLockedValueBox(false)

    private init(port: Int, certificates: NIOLockedValueBox<ServingCertificates>, server: HTTPServer, adminServer: HTTPServer?,
                 services: ProxyServices, group: MultiThreadedEventLoopGroup, reloader: ProxyReloader, polling: Task<Void, Never>) {
        self.port = port
        self.currentCertificates = certificates
        self.adminServer = adminServer
        self.adminPort = adminServer?.port
        self.server = server
        self.services = services
        self.group = group
        self.reloader = reloader
        self.polling = polling
    }

    /// What the reloads of peers, policy and certificate did so far.
    public var reloadStatus: ReloadStatus { reloader.status.withLockedValue { $0 } }

    /// Re-reads the peers file, the policy directory and the certificate files
    /// now, whether or not they changed (SIGHUP). A bad one keeps the previous
    /// state; see ``reloadStatus``.
    public func reload() async {
        await reloader.check(forced: true)
    }

    /// Loads peers and policy (a bad one fails here, naming the field), then listens.
    public static func start(_ configuration: ProxyConfiguration) async throws -> ProxyServer {
        let admission = try loadAdmission(configuration)
        var initialCertificates = configuration.tls
        if let files = configuration.tlsFiles, !configuration.plainHTTP {
            do {
                initialCertificates = try files.load()
                try initialCertificates?.checkKeyMatchesCertificate()
            } catch {
                throw ProxyConfigurationError(field: "tlsCert", problem: "\(error)")
            }
        }
        let certificates = try initialCertificates ?? ServingCertificates.generate(commonName: "isthmus-proxy")
        var clientCertificateCheck: ClientCertificateCheck?
        if configuration.clientCertificateCAPEM != nil {
            guard !configuration.plainHTTP else {
                throw ProxyConfigurationError(field: "clientCA", problem: "client certificates need TLS, not plainHTTP")
            }
            clientCertificateCheck = ClientCertificateCheck(subject: configuration.clientSubject)
        }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, configuration.threads))
        var operations: ProxyOperations?
        do {
            let upstream: UpstreamClient
            do {
                upstream = try UpstreamClient(configuration: configuration.upstream, group: group)
            } catch {
                throw ProxyConfigurationError(field: "upstream", problem: "\(error)")
            }
            upstream.token.startRefreshing(every: configuration.upstream.tokenRefreshInterval)
            let ops = try ProxyOperations(configuration, upstream: upstream, group: group)
            operations = ops
            let services = ProxyServices(admission: admission, upstream: upstream, watchLimit: configuration.watchLimit,
                                         responseHeaderTimeout: configuration.upstream.responseHeaderTimeout,
                                         clientCertificateCheck: clientCertificateCheck, group: group, operations: ops,
                                         watchLimits: configuration.watchLimits,
                                         shortRequestLimits: configuration.shortRequestLimits, rateLimits: configuration.rateLimits)
            ops.registerComputedMetrics(services)
            ops.probe.start()
            var serverConfiguration = HTTPServerConfiguration(host: configuration.host, port: configuration.port,
                                                              tls: configuration.plainHTTP ? nil : certificates)
            serverConfiguration.clientCertificateCAPEM = configuration.clientCertificateCAPEM
            let server: HTTPServer
            do {
                server = try await HTTPServer.start(
                    group: group, configuration: serverConfiguration,
                    makeHandler: { version in ProxyHandler(services: services, version: version) })
            } catch let error as ServingCertificateError {
                throw ProxyConfigurationError(field: configuration.clientCertificateCAPEM == nil ? "tlsCert" : "clientCA",
                                              problem: error.description)
            } catch let error as NIOSSLError {
                throw ProxyConfigurationError(field: "tlsCert", problem: "\(error)")
            }
            var adminServer: HTTPServer?
            if let admin = configuration.admin {
                do {
                    adminServer = try await HTTPServer.start(
                        group: group, configuration: HTTPServerConfiguration(host: admin.host, port: admin.port, tls: nil),
                        makeHandler: { _ in
                            // The admin listener serves /metrics; the API listener answers only the probes.
                            AdminHTTPHandler { LocalEndpoint.match($0, metrics: true)?.answer(services) }
                        })
                } catch {
                    try? await server.close()
                    throw ProxyConfigurationError(field: "admin", problem: "cannot listen on \(admin.host):\(admin.port): \(error)")
                }
            }
            let current = NIOLockedValueBox(certificates)
            let reloader = ProxyReloader(configuration: configuration, services: services, server: server, certificates: current)
            let interval = configuration.reloadInterval
            let polling = Task {
                while !Task.isCancelled {
                    try? await Task.sleep(for: interval)
                    if Task.isCancelled { break }
                    await reloader.check(forced: false)
                }
            }
            return ProxyServer(port: server.port, certificates: current, server: server, adminServer: adminServer,
                               services: services, group: group, reloader: reloader, polling: polling)
        } catch {
            operations?.stop()
            try? await group.shutdownGracefully()
            throw error
        }
    }

    static func loadAdmission(_ configuration: ProxyConfiguration) throws -> AdmissionPipeline {
        let peers: TrustedPeers
        do {
            let data = try Data(contentsOf: URL(fileURLWithPath: configuration.peersFile))
            peers = try TrustedPeers(json: [UInt8](data))
        } catch {
            throw ProxyConfigurationError(field: "peersFile", problem: "\(error)")
        }
        let policy: PolicySet
        do {
            policy = try PolicySet.load(directory: configuration.policyDirectory)
        } catch {
            throw ProxyConfigurationError(field: "policyDirectory", problem: "\(error)")
        }
        guard TrustedPeer.isValidClusterID(configuration.localClusterUUID) else {
            throw ProxyConfigurationError(field: "localClusterUUID", problem: "not a cluster UUID")
        }
        guard !configuration.acceptedIssuers.isEmpty else {
            throw ProxyConfigurationError(field: "tokenIssuers", problem: "at least one issuer must be accepted")
        }
        let verifier = TokenVerifier(localClusterUUID: configuration.localClusterUUID, peers: peers,
                                     leeway: configuration.tokenLeeway, acceptedIssuers: configuration.acceptedIssuers)
        return AdmissionPipeline(verifier: verifier, policy: policy, cache: VerifiedTokenCache(),
                                 protected: ProtectedObjects(isthmusNamespace: configuration.isthmusNamespace))
    }

    public var statistics: ProxyStatistics { services.statistics.withLockedValue { $0 } }
    /// The upstream pools' counts (connections opened, keep-alive reuse), summed over the loops.
    public func upstreamStatistics() async throws -> UpstreamPoolStatistics { try await services.upstream.statistics().get() }

    /// Replaces the admission snapshot (a reload); requests in flight keep theirs.
    public func replaceAdmission(_ admission: AdmissionPipeline) {
        let previous = services.install(admission)
        if previous.cache !== admission.cache { services.operations.retireTokenCache(previous.cache) }
    }

    /// The proxy's Prometheus series; a reloader reports through ``ProxyMetrics/recordReload(source:succeeded:)``.
    public var metrics: ProxyMetrics { services.operations.metrics }
    /// What `/metrics` serves (``ProxyConfiguration/metrics``).
    public var exporter: MetricsExporter { services.operations.exporter }

    /// Counts a reload of the peers file or the policy directory (`source`: `peers`, `policy`).
    public func recordReload(source: String, succeeded: Bool) {
        services.operations.metrics.recordReload(source: source, succeeded: succeeded)
    }

    /// What `/readyz` answers now.
    public var readiness: ReadinessReport { services.readiness() }

    /// Stops accepting; ends open watches cleanly (so clients re-watch, from
    /// another replica) and lets short requests finish, for at most `grace`;
    /// then closes what is left and stops the event loops.
    public func shutdown(grace: Duration = .seconds(10)) async throws {
        // Once: tasks scheduled on a stopped event loop never run, so a second
        // shutdown would wait forever on their futures.
        let first = isShutDown.withLockedValue { done in
            defer { done = true }
            return !done
        }
        guard first else { return }
        polling.cancel()
        services.operations.shuttingDown.withLockedValue { $0 = true }
        try? await server.close()
        let clock = ContinuousClock()
        let deadline = clock.now + grace
        while clock.now < deadline {
            guard let open = try? await services.drainAll().get(), open > 0 else { break }
            try? await Task.sleep(for: .milliseconds(50))
        }
        try? await services.upstream.shutdown().get()
        try? await adminServer?.close()
        services.operations.stop()
        try await group.shutdownGracefully()
    }
}
