import IsthmusHTTP
import IsthmusTrust
import NIOConcurrencyHelpers
import NIOCore

/// The proxy's operability parts, shared by every handler: metrics, the
/// access and audit logs, the upstream readiness probe.
final class ProxyOperations: Sendable {
    let metrics: ProxyMetrics
    /// Serves `/metrics` (``ProxyConfiguration/metrics``).
    let exporter: MetricsExporter
    let accessLog: BufferedLineWriter?
    let auditLog: BufferedLineWriter?
    let probe: UpstreamProbe
    /// Set when shutdown begins: `/readyz` fails from then on, so load balancers move away.
    let shuttingDown = NIOLockedValueBox(false)
    /// Token cache counts of caches a reload replaced, so the counters never go back.
    private let retiredTokenCache = NIOLockedValueBox(VerifiedTokenCache.Statistics())

    /// Opens the logs (a file that cannot be opened fails here, naming its field).
    init(_ configuration: ProxyConfiguration, upstream: UpstreamClient, group: any EventLoopGroup) throws {
        exporter = configuration.metrics
        for family in ProxyMetrics.descriptions {
            exporter.describe(family.name, help: family.help, buckets: family.buckets)
        }
        let metrics = ProxyMetrics(factory: exporter.factory)
        self.metrics = metrics
        exporter.beforeScrape { metrics.refresh() }
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

    /// Series mirrored at scrape time from counts kept elsewhere.
    func registerComputedMetrics(_ services: ProxyServices) {
        let statistics = services.statistics
        let admission = services.admission
        let retired = retiredTokenCache
        func statistic(_ name: String, _ value: @escaping @Sendable (ProxyStatistics) -> Int) {
            metrics.mirrorCounter(name) { value(statistics.withLockedValue { $0 }) }
        }
        statistic("isthmus_proxy_bytes_relayed_total") { $0.bytesRelayed }
        statistic("isthmus_proxy_upstream_reads_held_total") { $0.upstreamReadsHeld }
        statistic("isthmus_proxy_watches_ended_at_limit_total") { $0.watchesEndedAtLimit }
        statistic("isthmus_proxy_upstream_cancelled_by_client_total") { $0.upstreamCancelledByClient }
        statistic("isthmus_proxy_watches_ended_by_upstream_loss_total") { $0.watchesEndedByUpstreamLoss }
        statistic("isthmus_proxy_upstream_requests_resent_total") { $0.upstreamRequestsResent }
        let upstream = services.upstream.sharedStatistics
        metrics.mirrorCounter("isthmus_proxy_upstream_connections_opened_total") { upstream.withLockedValue { $0.connectionsOpened } }
        metrics.mirrorGauges("isthmus_proxy_upstream_connections", labels: ["lane"]) {
            let open = upstream.withLockedValue { $0.openConnections }
            return [(["short"], Double(open[.short] ?? 0)), (["watch"], Double(open[.watch] ?? 0))]
        }
        metrics.mirrorCounter("isthmus_proxy_upstream_goaways_received_total") { upstream.withLockedValue { $0.goAwaysReceived } }
        metrics.mirrorCounter("isthmus_proxy_upstream_idle_connections_closed_total") { upstream.withLockedValue { $0.idleClosed } }
        let fairness = services.fairness
        let maxInFlight = fairness.withLockedValue { $0.queue.limits.maxInFlight }
        metrics.mirrorGauges("isthmus_proxy_short_requests_in_flight", labels: ["peer"]) {
            fairness.withLockedValue { $0.queue.snapshot }.map { ([$0.peer], Double($0.inFlight)) }
        }
        metrics.mirrorGauges("isthmus_proxy_short_requests_queued", labels: ["peer"]) {
            fairness.withLockedValue { $0.queue.snapshot }.map { ([$0.peer], Double($0.queued)) }
        }
        metrics.mirrorGauges("isthmus_proxy_short_requests_in_flight_limit") { [([], Double(maxInFlight))] }
        let tokenCache: @Sendable () -> VerifiedTokenCache.Statistics = {
            let current = admission.withLockedValue { $0.cache }.statistics
            let old = retired.withLockedValue { $0 }
            var sum = current
            sum.hits += old.hits
            sum.misses += old.misses
            return sum
        }
        metrics.mirrorCounter("isthmus_proxy_token_cache_hits_total") { tokenCache().hits }
        metrics.mirrorCounter("isthmus_proxy_token_cache_misses_total") { tokenCache().misses }
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
