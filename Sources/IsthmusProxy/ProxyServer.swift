import Foundation
import IsthmusHTTP
import IsthmusPolicy
import IsthmusTrust
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// Everything `isthmus proxy` needs to serve. Plain data, checked once at start.
public struct ProxyConfiguration: Sendable {
    /// Address to listen on.
    public var host = "0.0.0.0"
    /// 0 picks a free port; read the bound one from ``ProxyServer/port``.
    public var port = 8443
    /// The serving certificate; nil generates a self-signed one (dev and tests).
    public var tls: ServingCertificates?
    public var upstream: UpstreamConfiguration
    /// The trusted peers file (JSON), as written by `isthmus peers add`.
    public var peersFile: String
    /// The directory of allowlist policies (`*.yaml`).
    public var policyDirectory: String
    /// This cluster's UUID: the `aud` every token must carry.
    public var localClusterUUID: String
    /// Clock skew allowed on `nbf` / `exp`.
    public var tokenLeeway: Duration = TokenVerifier.defaultLeeway
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

    public init(upstream: UpstreamConfiguration, peersFile: String, policyDirectory: String, localClusterUUID: String) {
        self.upstream = upstream
        self.peersFile = peersFile
        self.policyDirectory = policyDirectory
        self.localClusterUUID = localClusterUUID
    }
}

/// A configuration error, naming the field, raised before listening.
public struct ProxyConfigurationError: Error, Sendable, CustomStringConvertible {
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
    /// Metrics, logs and readiness (see ``ProxyOperations``).
    let operations: ProxyOperations

    /// The live request handlers of each event loop, so a shutdown can end
    /// their watches cleanly. Touched once per connection or stream, on its loop.
    let relays: [ObjectIdentifier: NIOLoopBoundBox<ActiveRelays>]

    init(admission: AdmissionPipeline, upstream: UpstreamClient, watchLimit: WatchLimit, responseHeaderTimeout: Duration,
         group: any EventLoopGroup, operations: ProxyOperations) {
        self.operations = operations
        self.admission = NIOLockedValueBox(admission)
        self.upstream = upstream
        self.watchLimit = watchLimit
        self.responseHeaderTimeout = TimeAmount(responseHeaderTimeout)
        var relays: [ObjectIdentifier: NIOLoopBoundBox<ActiveRelays>] = [:]
        for loop in group.makeIterator() {
            relays[ObjectIdentifier(loop)] = NIOLoopBoundBox.makeBoxSendingValue(ActiveRelays(), eventLoop: loop)
        }
        self.relays = relays
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
    /// Response body bytes handed to clients, added when a request ends and
    /// when a read is held (so a stalled watch is counted too).
    public var bytesRelayed = 0
}

/// The authenticating, read-only reverse proxy of DESIGN §3: a TLS listener
/// (h2 and http/1.1) whose handlers admit each request and relay it to the
/// API server through ``UpstreamClient``.
public final class ProxyServer: Sendable {
    public let port: Int
    /// The serving certificate in use (generated or given); its CA goes into kubeconfigs.
    public let certificates: ServingCertificates
    /// The admin listener's port, when it runs.
    public let adminPort: Int?
    private let server: HTTPServer
    private let adminServer: HTTPServer?
    private let services: ProxyServices
    private let group: MultiThreadedEventLoopGroup
    private let isShutDown = NIOLockedValueBox(false)

    private init(port: Int, certificates: ServingCertificates, server: HTTPServer, adminServer: HTTPServer?,
                 services: ProxyServices, group: MultiThreadedEventLoopGroup) {
        self.port = port
        self.adminServer = adminServer
        self.adminPort = adminServer?.port
        self.certificates = certificates
        self.server = server
        self.services = services
        self.group = group
    }

    /// Loads peers and policy (a bad one fails here, naming the field), then listens.
    public static func start(_ configuration: ProxyConfiguration) async throws -> ProxyServer {
        let admission = try loadAdmission(configuration)
        let certificates = try configuration.tls ?? ServingCertificates.generate(commonName: "isthmus-proxy")
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
                                         responseHeaderTimeout: configuration.upstream.responseHeaderTimeout, group: group,
                                         operations: ops)
            ops.registerComputedMetrics(services)
            ops.probe.start()
            let server = try await HTTPServer.start(
                group: group,
                configuration: HTTPServerConfiguration(host: configuration.host, port: configuration.port, tls: certificates),
                makeHandler: { version in ProxyHandler(services: services, version: version) })
            var adminServer: HTTPServer?
            if let admin = configuration.admin {
                do {
                    adminServer = try await HTTPServer.start(
                        group: group, configuration: HTTPServerConfiguration(host: admin.host, port: admin.port, tls: nil),
                        makeHandler: { _ in AdminHandler(services: services) })
                } catch {
                    try? await server.close()
                    throw ProxyConfigurationError(field: "admin", problem: "cannot listen on \(admin.host):\(admin.port): \(error)")
                }
            }
            return ProxyServer(port: server.port, certificates: certificates, server: server, adminServer: adminServer,
                               services: services, group: group)
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
        let verifier = TokenVerifier(localClusterUUID: configuration.localClusterUUID, peers: peers,
                                     leeway: configuration.tokenLeeway)
        return AdmissionPipeline(verifier: verifier, policy: policy, cache: VerifiedTokenCache())
    }

    public var statistics: ProxyStatistics { services.statistics.withLockedValue { $0 } }

    /// Replaces the admission snapshot (a reload); requests in flight keep theirs.
    public func replaceAdmission(_ admission: AdmissionPipeline) {
        let previous = services.admission.withLockedValue { current in
            defer { current = admission }
            return current
        }
        if previous.cache !== admission.cache { services.operations.retireTokenCache(previous.cache) }
    }

    /// The proxy's Prometheus series; a reloader reports through ``ProxyMetrics/recordReload(source:succeeded:)``.
    public var metrics: ProxyMetrics { services.operations.metrics }

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
