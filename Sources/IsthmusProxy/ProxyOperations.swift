import IsthmusTrust
import NIOConcurrencyHelpers
import NIOCore

/// The proxy's operability parts, shared by every handler: metrics, the
/// access and audit logs, the upstream readiness probe.
final class ProxyOperations: Sendable {
    let metrics = ProxyMetrics()
    let accessLog: BufferedLineWriter?
    let auditLog: BufferedLineWriter?
    let probe: UpstreamProbe
    /// Set when shutdown begins: `/readyz` fails from then on, so load balancers move away.
    let shuttingDown = NIOLockedValueBox(false)
    /// Token cache counts of caches a reload replaced, so the counters never go back.
    private let retiredTokenCache = NIOLockedValueBox(VerifiedTokenCache.Statistics())

    /// Opens the logs (a file that cannot be opened fails here, naming its field).
    init(_ configuration: ProxyConfiguration, upstream: UpstreamClient, group: any EventLoopGroup) throws {
        let metrics = self.metrics
        func open(_ destination: LogDestination, field: String) throws -> BufferedLineWriter? {
            do {
                return try BufferedLineWriter.open(destination) { metrics.logLinesDropped.increment([field]) }
            } catch {
                throw ProxyConfigurationError(field: field == "access" ? "accessLog" : "auditLog", problem: "\(error)")
            }
        }
        accessLog = try open(configuration.accessLog, field: "access")
        auditLog = try open(configuration.auditLog, field: "audit")
        probe = UpstreamProbe(upstream: upstream, group: group, interval: configuration.readinessProbeInterval,
                              timeout: min(configuration.upstream.responseHeaderTimeout, .seconds(5)))
    }

    /// Series computed at scrape time from counts kept elsewhere.
    func registerComputedMetrics(_ services: ProxyServices) {
        let statistics = services.statistics
        let admission = services.admission
        let retired = retiredTokenCache
        let registry = metrics.registry
        func statistic(_ name: String, _ help: String, _ value: @escaping @Sendable (ProxyStatistics) -> Int) {
            registry.computed(name, help: help, type: .counter) {
                [([], Double(value(statistics.withLockedValue { $0 })))]
            }
        }
        statistic("isthmus_proxy_bytes_relayed_total",
                  "Response body bytes relayed from the API server to clients (counted as each request ends or stalls).") {
            $0.bytesRelayed
        }
        statistic("isthmus_proxy_upstream_reads_held_total",
                  "Times an upstream read was held because a client could not take more (backpressure).") {
            $0.upstreamReadsHeld
        }
        statistic("isthmus_proxy_watches_ended_at_limit_total", "Watches ended cleanly by the proxy's maximum watch duration.") {
            $0.watchesEndedAtLimit
        }
        statistic("isthmus_proxy_upstream_cancelled_by_client_total",
                  "Upstream requests cancelled because their client went away.") {
            $0.upstreamCancelledByClient
        }
        statistic("isthmus_proxy_watches_ended_by_upstream_loss_total",
                  "Watches whose API server connection or stream was lost between two events, ended cleanly so the client re-watches.") {
            $0.watchesEndedByUpstreamLoss
        }
        statistic("isthmus_proxy_upstream_requests_resent_total",
                  "Requests sent again on a new connection because the keep-alive connection they went out on was closed before any answer.") {
            $0.upstreamRequestsResent
        }
        let upstream = services.upstream.sharedStatistics
        registry.computed("isthmus_proxy_upstream_connections_opened_total",
                          help: "Connections to the API server opened (TLS and ALPN done); short requests reuse HTTP/1.1 keep-alive ones.",
                          type: .counter) {
            [([], Double(upstream.withLockedValue { $0.connectionsOpened }))]
        }
        registry.computed("isthmus_proxy_upstream_connections",
                          help: "Connections to the API server open now, by lane (short: get, list, discovery; watch).",
                          type: .gauge, labels: ["lane"]) {
            let open = upstream.withLockedValue { $0.openConnections }
            return [(["short"], Double(open[.short] ?? 0)), (["watch"], Double(open[.watch] ?? 0))]
        }
        registry.computed("isthmus_proxy_upstream_goaways_received_total",
                          help: "GOAWAY frames the API server sent on the proxy's HTTP/2 connections; new streams go to another connection.",
                          type: .counter) {
            [([], Double(upstream.withLockedValue { $0.goAwaysReceived }))]
        }
        registry.computed("isthmus_proxy_upstream_idle_connections_closed_total",
                          help: "Keep-alive connections to the API server closed after the idle timeout.", type: .counter) {
            [([], Double(upstream.withLockedValue { $0.idleClosed }))]
        }
        let fairness = services.fairness
        let maxInFlight = fairness.withLockedValue { $0.queue.limits.maxInFlight }
        registry.computed("isthmus_proxy_short_requests_in_flight",
                          help: "Short requests (get, list, discovery) in flight to the API server now, by peer.",
                          type: .gauge, labels: ["peer"]) {
            fairness.withLockedValue { $0.queue.snapshot }.map { ([$0.peer], Double($0.inFlight)) }
        }
        registry.computed("isthmus_proxy_short_requests_queued",
                          help: "Short requests waiting for their peer's share of the API server now, by peer.",
                          type: .gauge, labels: ["peer"]) {
            fairness.withLockedValue { $0.queue.snapshot }.map { ([$0.peer], Double($0.queued)) }
        }
        registry.computed("isthmus_proxy_short_requests_in_flight_limit",
                          help: "The bound on short requests in flight to the API server (--max-requests-in-flight).",
                          type: .gauge) { [([], Double(maxInFlight))] }
        let tokenCache: @Sendable () -> VerifiedTokenCache.Statistics = {
            let current = admission.withLockedValue { $0.cache }.statistics
            let old = retired.withLockedValue { $0 }
            var sum = current
            sum.hits += old.hits
            sum.misses += old.misses
            return sum
        }
        registry.computed("isthmus_proxy_token_cache_hits_total", help: "Peer tokens found in the verified-token cache.",
                          type: .counter) { [([], Double(tokenCache().hits))] }
        registry.computed("isthmus_proxy_token_cache_misses_total",
                          help: "Peer tokens not in the verified-token cache (their signature was checked).",
                          type: .counter) { [([], Double(tokenCache().misses))] }
    }

    func retireTokenCache(_ cache: VerifiedTokenCache) {
        let counts = cache.statistics
        retiredTokenCache.withLockedValue {
            $0.hits += counts.hits
            $0.misses += counts.misses
        }
    }

    /// Logs and counts a request that ended; called once per request, on its event loop.
    func finished(_ record: RequestRecord, duration: Double) {
        metrics.requests.increment(record.metricLabels)
        accessLog?.write(record.accessLogLine(duration: duration))
        if !record.isProbe { auditLog?.write(record.auditLogLine(duration: duration)) }
    }

    /// Stops the probe and writes out the logs. Blocks briefly (the log threads finish).
    func stop() {
        probe.stop()
        accessLog?.close()
        auditLog?.close()
    }
}

extension ProxyServices {
    /// `/readyz`: peers and policy are loaded (the proxy does not start
    /// without them, and a reload keeps the last good ones), the upstream
    /// answered its last probe, and no shutdown has begun.
    func readiness() -> ReadinessReport {
        let refused = reloadRefusals.withLockedValue { $0 }
        var checks = [ReadinessCheck(name: "peers", warning: refused[.peers].map { "last reload refused: \($0)" }),
                      ReadinessCheck(name: "policy", warning: refused[.policy].map { "last reload refused: \($0)" }),
                      operations.probe.check]
        if let certificate = refused[.servingCertificate] {
            checks.append(ReadinessCheck(name: "serving-certificate", warning: "last reload refused: \(certificate)"))
        }
        if operations.shuttingDown.withLockedValue({ $0 }) {
            checks.append(ReadinessCheck(name: "shutdown", failure: "the proxy is shutting down"))
        }
        return ReadinessReport(checks: checks)
    }
}
