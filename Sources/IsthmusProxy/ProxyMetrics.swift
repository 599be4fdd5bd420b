import CoreMetrics
import IsthmusAdmission
import NIOConcurrencyHelpers

/// The proxy's Prometheus series (prefix `isthmus_proxy_`), served on the
/// admin listener's `/metrics`. Label values are bounded: peers only once
/// authenticated (they come from the trusted peers file), resources only once
/// the policy admitted the request, verbs from a fixed set.
public final class ProxyMetrics: Sendable {
    /// Where the handles are made: the proxy's ``MetricsExporter`` when it
    /// runs, the swift-metrics test kit in unit tests.
    public let factory: any MetricsFactory

    /// `requests_total{peer,verb,resource,code}`.
    public let requests: CounterFamily
    /// `denials_total{reason}`: ``RequestRejection/metricLabel``.
    public let denials: CounterFamily
    public let openWatches: GaugeFamily
    /// `upstream_response_seconds{verb}`: from asking for an upstream stream to its response head.
    public let upstreamResponseSeconds: HistogramFamily
    /// `upstream_failures_total{kind}`: requests answered 502/503/504 because of the upstream.
    public let upstreamFailures: CounterFamily
    /// `reloads_total{source,result}`.
    public let reloads: CounterFamily
    /// `log_lines_dropped_total{log}`: lines the access or audit log writer could not keep up with.
    public let logLinesDropped: CounterFamily
    /// `watches_revoked_total{reason}`: open watches the proxy ended because
    /// their access was taken away (``WatchRevocation``).
    public let watchesRevoked: CounterFamily
    /// `watches_refused_total{peer,reason}`: watches refused with 429 by the
    /// explicit limits (`total`, `peer`) or because no upstream stream was left (`upstream_pool`).
    public let watchesRefused: CounterFamily
    /// `requests_throttled_total{peer,reason}`: admitted requests answered 429
    /// by the per-peer limits (``ThrottleReason``: rate_limit, queue_full, queue_timeout).
    public let throttled: CounterFamily
    /// Series mirrored from counts kept elsewhere, set before each scrape (``refresh()``).
    private let mirrors = NIOLockedValueBox<[@Sendable () -> Void]>([])

    /// Every family's HELP text (and a timer's buckets) for the exporter: swift-metrics carries neither.
    public static let descriptions: [(name: String, help: String, buckets: [Duration]?)] = [
        ("isthmus_proxy_requests_total", "Requests answered, by authenticated peer, verb, admitted resource and HTTP status code.", nil),
        ("isthmus_proxy_denials_total", "Requests refused by the proxy before reaching the API server, by reason.", nil),
        ("isthmus_proxy_open_watches", "Watches being relayed now.", nil),
        ("isthmus_proxy_upstream_response_seconds", "Time from opening an upstream stream to the API server's response head, by verb.",
         [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30].map { Duration.nanoseconds(Int64(($0 * 1e9).rounded())) }),
        ("isthmus_proxy_upstream_failures_total",
         "Requests the upstream API server could not answer (unreachable, timed out, closed, or it rejected the proxy's credentials), by kind.", nil),
        ("isthmus_proxy_reloads_total", "Reloads of the trusted peers file or the policy directory, by source and result.", nil),
        ("isthmus_proxy_log_lines_dropped_total", "Access or audit log lines dropped because the writer fell behind.", nil),
        ("isthmus_proxy_watches_revoked_total",
         "Open watches ended because their access ended (peer removed, key revoked, policy narrowed, protected, token expired), by reason.", nil),
        ("isthmus_proxy_watches_refused_total", "Watches refused with 429 TooManyRequests, by peer and reason (total, peer, upstream_pool).", nil),
        ("isthmus_proxy_requests_throttled_total",
         "Admitted requests answered 429 TooManyRequests by the per-peer limits, by peer and reason (rate_limit, queue_full, queue_timeout).", nil),
        ("isthmus_proxy_bytes_relayed_total",
         "Response body bytes relayed from the API server to clients (counted as each request ends or stalls).", nil),
        ("isthmus_proxy_upstream_reads_held_total", "Times an upstream read was held because a client could not take more (backpressure).", nil),
        ("isthmus_proxy_watches_ended_at_limit_total", "Watches ended cleanly by the proxy's maximum watch duration.", nil),
        ("isthmus_proxy_upstream_cancelled_by_client_total", "Upstream requests cancelled because their client went away.", nil),
        ("isthmus_proxy_watches_ended_by_upstream_loss_total",
         "Watches whose API server connection or stream was lost between two events, ended cleanly so the client re-watches.", nil),
        ("isthmus_proxy_upstream_requests_resent_total",
         "Requests sent again on a new connection because the keep-alive connection they went out on was closed before any answer.", nil),
        ("isthmus_proxy_upstream_connections_opened_total",
         "Connections to the API server opened (TLS and ALPN done); short requests reuse HTTP/1.1 keep-alive ones.", nil),
        ("isthmus_proxy_upstream_connections", "Connections to the API server open now, by lane (short: get, list, discovery; watch).", nil),
        ("isthmus_proxy_upstream_goaways_received_total",
         "GOAWAY frames the API server sent on the proxy's HTTP/2 connections; new streams go to another connection.", nil),
        ("isthmus_proxy_upstream_idle_connections_closed_total", "Keep-alive connections to the API server closed after the idle timeout.", nil),
        ("isthmus_proxy_short_requests_in_flight", "Short requests (get, list, discovery) in flight to the API server now, by peer.", nil),
        ("isthmus_proxy_short_requests_queued", "Short requests waiting for their peer's share of the API server now, by peer.", nil),
        ("isthmus_proxy_short_requests_in_flight_limit", "The bound on short requests in flight to the API server (--max-requests-in-flight).", nil),
        ("isthmus_proxy_token_cache_hits_total", "Peer tokens found in the verified-token cache.", nil),
        ("isthmus_proxy_token_cache_misses_total", "Peer tokens not in the verified-token cache (their signature was checked).", nil),
    ]

    public init(factory: any MetricsFactory) {
        self.factory = factory
        func counter(_ name: String, _ labels: [String]) -> CounterFamily {
            CounterFamily(name, labels: labels) { Counter(label: $0, dimensions: $1, factory: factory) }
        }
        requests = counter("isthmus_proxy_requests_total", ["peer", "verb", "resource", "code"])
        denials = counter("isthmus_proxy_denials_total", ["reason"])
        openWatches = GaugeFamily("isthmus_proxy_open_watches", labels: []) { Meter(label: $0, dimensions: $1, factory: factory) }
        upstreamResponseSeconds = HistogramFamily("isthmus_proxy_upstream_response_seconds", labels: ["verb"]) {
            Timer(label: $0, dimensions: $1, factory: factory)
        }
        upstreamFailures = counter("isthmus_proxy_upstream_failures_total", ["kind"])
        reloads = counter("isthmus_proxy_reloads_total", ["source", "result"])
        logLinesDropped = counter("isthmus_proxy_log_lines_dropped_total", ["log"])
        watchesRevoked = counter("isthmus_proxy_watches_revoked_total", ["reason"])
        watchesRefused = counter("isthmus_proxy_watches_refused_total", ["peer", "reason"])
        throttled = counter("isthmus_proxy_requests_throttled_total", ["peer", "reason"])
        // Series whose label sets are known start at zero: the family is on
        // /metrics before its first event, and rate() sees the first one.
        openWatches.set([], 0)
        for source in ReloadSource.allCases {
            for result in ["success", "failure"] { _ = reloads([source.rawValue, result]) }
        }
        for log in ["access", "audit"] { _ = logLinesDropped([log]) }
        for reason in WatchRevocation.allCases { _ = watchesRevoked([reason.rawValue]) }
    }

    /// A counter mirroring a total kept elsewhere.
    func mirrorCounter(_ name: String, total: @escaping @Sendable () -> Int) {
        let mirror = MirroredCounter(Counter(label: name, factory: factory), total: total)
        mirrors.withLockedValue { $0.append(mirror.refresh) }
    }

    /// Gauges mirroring values kept elsewhere, their label sets as they come and go.
    func mirrorGauges(_ name: String, labels: [String] = [], samples: @escaping @Sendable () -> [([String], Double)]) {
        let mirror = MirroredGauges(name, labels: labels, factory: factory, samples: samples)
        mirrors.withLockedValue { $0.append(mirror.refresh) }
    }

    /// Brings the mirrored series up to date (before a scrape).
    public func refresh() {
        for mirror in mirrors.withLockedValue({ $0 }) { mirror() }
    }

    /// Counts a reload of `source` (e.g. `peers`, `policy`); `result` is `success` or `failure`.
    public func recordReload(source: String, succeeded: Bool) {
        reloads.increment([source, succeeded ? "success" : "failure"])
    }

    /// The `verb` label: the RequestInfo verb when known and read-only, else
    /// the method's kind, so a client cannot mint label values.
    static func verbLabel(_ verb: String?, method: String) -> String {
        if let verb, ["get", "list", "watch"].contains(verb) { return verb }
        switch method {
        case "GET", "HEAD": return "get"
        case "POST": return "create"
        case "PUT": return "update"
        case "PATCH": return "patch"
        case "DELETE": return "delete"
        default: return "other"
        }
    }
}
