import Foundation
import IsthmusHTTP
import IsthmusKubeTypes
import NIOCore
import NIOHTTP2
import NIOPosix

/// An in-memory Kubernetes API server for `isthmus dev`, tests and benchmarks.
///
/// ```swift
/// let server = try await FakeAPIServer.start(.init(tokens: ["t0ken": "admin"]))
/// try server.create(resource: "namespaces", object: ["metadata": ["name": "demo"]])
/// // kubectl --server https://127.0.0.1:\(server.port) --token t0ken ...
/// try await server.shutdown()
/// ```
public final class FakeAPIServer: Sendable {
    public struct Configuration: Sendable {
        /// Address to bind.
        public var host = "127.0.0.1"
        /// 0 picks a free port.
        public var port = 0
        /// Bearer token -> user name. Any other token, or none, gets a 401.
        public var tokens: [String: String]
        /// Serving certificate; generated when nil and `plainHTTP` is false.
        public var certificates: ServingCertificates?
        /// Serve plain HTTP/1.1 instead of TLS.
        public var plainHTTP = false
        /// Changes kept for watches and exact lists; older ones get 410 Expired.
        public var historyCapacity = 10_000
        /// The mean time between BOOKMARKs on a watch with `allowWatchBookmarks`
        /// (kube: about a minute); each wait is jittered ±25% around it.
        public var bookmarkInterval: Duration = .seconds(60)
        /// Longest watch; `timeoutSeconds` can only shorten it (kube: 30 to 60 minutes).
        public var maxWatchTimeout: Duration = .seconds(1800)
        /// Event loop threads.
        public var threads = System.coreCount
        /// SETTINGS_MAX_CONCURRENT_STREAMS offered to HTTP/2 clients (kube-apiserver's
        /// `--http2-max-streams-per-connection`; Go's default is 250).
        public var maximumConcurrentStreams = HTTP2AbuseGuards.maximumConcurrentStreams
        /// How long a deleted namespace shows `Terminating` before the simulated
        /// namespace controller deletes its objects and then the namespace;
        /// nil: it stays `Terminating` until `finalizeNamespace` is called.
        public var namespaceFinalizationDelay: Duration? = .seconds(1)

        public init(tokens: [String: String]) {
            self.tokens = tokens
        }
    }

    public let port: Int
    /// The CA that signed the serving certificate (PEM), nil for plain HTTP.
    public let caCertificatePEM: String?
    public let certificates: ServingCertificates?
    public let core: APIServerCore
    private let hub: WatchHub
    private let server: HTTPServer
    private let group: MultiThreadedEventLoopGroup

    private init(port: Int, certificates: ServingCertificates?, core: APIServerCore, hub: WatchHub,
                 server: HTTPServer, group: MultiThreadedEventLoopGroup) {
        self.port = port
        self.certificates = certificates
        self.caCertificatePEM = certificates?.caCertificatePEM
        self.core = core
        self.hub = hub
        self.server = server
        self.group = group
    }

    public static func start(_ configuration: Configuration) async throws -> FakeAPIServer {
        var certificates: ServingCertificates?
        if !configuration.plainHTTP {
            certificates = try configuration.certificates ?? ServingCertificates.generate()
        }
        let core = APIServerCore(store: Store(historyCapacity: configuration.historyCapacity), tokens: configuration.tokens,
                                 bookmarkInterval: configuration.bookmarkInterval, maxWatchTimeout: configuration.maxWatchTimeout,
                                 namespaceFinalizationDelay: configuration.namespaceFinalizationDelay)
        let hub = WatchHub()
        core.commitHook.withLockedValue { $0 = { hub.notifyAll() } }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, configuration.threads))
        core.timerLoop.withLockedValue { $0 = group.next() }
        let server: HTTPServer
        do {
            server = try await HTTPServer.start(
                group: group,
                configuration: {
                    var server = HTTPServerConfiguration(host: configuration.host, port: configuration.port, tls: certificates)
                    server.maximumConcurrentStreams = configuration.maximumConcurrentStreams
                    return server
                }(),
                acceptConnection: { channel in
                    guard !core.faults.withLockedValue({ $0.refuseConnections }) else { return false }
                    core.connectionsAccepted.withLockedValue { $0 += 1 }
                    let key = ObjectIdentifier(channel)
                    core.openConnections.withLockedValue { $0[key] = channel }
                    channel.closeFuture.whenComplete { _ in core.openConnections.withLockedValue { $0[key] = nil } }
                    return true
                },
                makeHandler: { version in APIRequestHandler(core: core, hub: hub, version: version) })
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
        core.serverAddress.withLockedValue { $0 = "\(configuration.host):\(server.port)" }
        let fake = FakeAPIServer(port: server.port, certificates: certificates, core: core, hub: hub, server: server, group: group)
        // The default namespaces every cluster has.
        for name in ["default", "kube-system", "kube-public"] {
            _ = try fake.create(resource: "namespaces", object: .object([("metadata", .object([("name", .string(name))]))]))
        }
        return fake
    }

    /// `https://127.0.0.1:PORT` (or http).
    public var url: String { "\(certificates == nil ? "http" : "https")://127.0.0.1:\(port)" }

    /// Sends GOAWAY (no error, last stream ID the maximum) on every open HTTP/2
    /// connection, as kube-apiserver does when it shuts down or under
    /// `--goaway-chance`: streams already open go on, new ones must go to
    /// another connection. Returns how many connections were sent one.
    @discardableResult
    public func sendGoAway() async -> Int {
        var sent = 0
        for channel in core.openConnections.withLockedValue({ Array($0.values) }) {
            let isHTTP2 = try? await channel.eventLoop.submit {
                guard (try? channel.pipeline.syncOperations.handler(type: NIOHTTP2Handler.self)) != nil else { return false }
                channel.writeAndFlush(HTTP2Frame(streamID: .rootStream,
                                                 payload: .goAway(lastStreamID: .maxID, errorCode: .noError, opaqueData: nil)),
                                      promise: nil)
                return true
            }.get()
            if isHTTP2 == true { sent += 1 }
        }
        return sent
    }

    /// Closes every open connection at once, without GOAWAY: the API server's
    /// process gone, or the network between. Returns how many were closed.
    @discardableResult
    public func dropConnections() async -> Int {
        let channels = core.openConnections.withLockedValue { Array($0.values) }
        for channel in channels { try? await channel.close() }
        return channels.count
    }

    public func shutdown() async throws {
        try? await server.close()
        try await group.shutdownGracefully()
    }

    // MARK: Seeding and inspection

    private func type(_ resource: String, group: String, version: String?) throws -> ResourceType {
        let registry = core.store.withLockedValue { $0.registry }
        let version = version ?? registry.versions(of: group).first ?? "v1"
        guard let t = registry.lookup(group: group, version: version, resource: resource) else {
            throw Status.resourceNotFound
        }
        return t
    }

    /// Creates an object as a POST would (namespace from `metadata.namespace`), and wakes watches.
    @discardableResult
    public func create(resource: String, group: String = "", version: String? = nil, object: JSON) throws -> JSON {
        let t = try type(resource, group: group, version: version)
        let namespace = object.value(at: ["metadata", "namespace"])?.stringValue ?? ""
        let context = core.writeContext()
        let created = try core.mutate(false) { s throws(Status) in try s.create(t, namespace: namespace, body: object, context: context) }
        return created
    }

    /// Replaces an object as a PUT would.
    @discardableResult
    public func update(resource: String, group: String = "", version: String? = nil, object: JSON) throws -> JSON {
        let t = try type(resource, group: group, version: version)
        let namespace = object.value(at: ["metadata", "namespace"])?.stringValue ?? ""
        let name = object.value(at: ["metadata", "name"])?.stringValue ?? ""
        let context = core.writeContext()
        return try core.mutate(false) { s throws(Status) in
            try s.update(t, namespace: namespace, name: name, body: object, subresource: nil, context: context)
        }
    }

    /// Applies a JSON merge patch.
    @discardableResult
    public func mergePatch(resource: String, group: String = "", version: String? = nil, namespace: String = "", name: String, patch: JSON) throws -> JSON {
        let t = try type(resource, group: group, version: version)
        let context = core.writeContext()
        let bytes = patch.bytes()
        return try core.mutate(false) { s throws(Status) in
            try s.patch(t, namespace: namespace, name: name, patchType: .merge, patch: bytes, subresource: nil, context: context)
        }
    }

    /// Deletes as a DELETE would: a namespace turns `Terminating` and goes after `namespaceFinalizationDelay`.
    @discardableResult
    public func delete(resource: String, group: String = "", version: String? = nil, namespace: String = "", name: String) throws -> JSON {
        let t = try type(resource, group: group, version: version)
        let deleted = try core.mutate(false) { s throws(Status) in try s.delete(t, namespace: namespace, name: name) }
        if t.groupResource == ResourceRegistry.namespaceResource { core.finalizeNamespaceLater(name) }
        return deleted
    }

    public func get(resource: String, group: String = "", version: String? = nil, namespace: String = "", name: String) throws -> JSON {
        let t = try type(resource, group: group, version: version)
        return try core.read { s throws(Status) in try s.get(t, namespace: namespace, name: name) }
    }

    /// Runs the namespace controller's work for a `Terminating` namespace now:
    /// its objects are deleted, then it. Returns false if it is not terminating.
    @discardableResult
    public func finalizeNamespace(_ name: String) -> Bool {
        let done = core.store.withLockedValue { $0.finalizeNamespace(name) }
        if done { core.onCommit() }
        return done
    }

    /// The current global resourceVersion.
    public var resourceVersion: UInt64 { core.store.withLockedValue { $0.resourceVersion } }

    /// Watch streams currently open.
    public var openWatchCount: Int { hub.openCount.withLockedValue { $0 } }

    /// The last requests (at most 1,000), oldest first; Authorization values are redacted.
    public var recentRequests: [RecordedRequest] { core.recent.withLockedValue { $0 } }
    /// TCP connections accepted so far.
    public var connectionsAccepted: Int { core.connectionsAccepted.withLockedValue { $0 } }

    /// Non-watch requests being answered now, and the most at once since the last reset.
    public var shortRequestsInFlight: (now: Int, peak: Int) { core.shortInFlight.withLockedValue { $0 } }
    public func resetPeakShortRequestsInFlight() { core.shortInFlight.withLockedValue { $0.peak = $0.now } }

    public func clearRecentRequests() { core.recent.withLockedValue { $0.removeAll() } }

    /// Changes the fault injection; applies to requests and connections from now on.
    public func setFaults(_ faults: FaultInjection) { core.faults.withLockedValue { $0 = faults } }
}
