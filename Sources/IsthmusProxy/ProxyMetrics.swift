import IsthmusAdmission

/// The proxy's Prometheus series (prefix `isthmus_proxy_`), served on the
/// admin listener's `/metrics`. Label values are bounded: peers only once
/// authenticated (they come from the trusted peers file), resources only once
/// the policy admitted the request, verbs from a fixed set.
public final class ProxyMetrics: Sendable {
    public let registry = MetricsRegistry()

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

    public init() {
        requests = registry.counter(
            "isthmus_proxy_requests_total", help: "Requests answered, by authenticated peer, verb, admitted resource and HTTP status code.",
            labels: ["peer", "verb", "resource", "code"])
        denials = registry.counter(
            "isthmus_proxy_denials_total", help: "Requests refused by the proxy before reaching the API server, by reason.",
            labels: ["reason"])
        openWatches = registry.gauge("isthmus_proxy_open_watches", help: "Watches being relayed now.")
        upstreamResponseSeconds = registry.histogram(
            "isthmus_proxy_upstream_response_seconds",
            help: "Time from opening an upstream stream to the API server's response head, by verb.",
            labels: ["verb"], buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30])
        upstreamFailures = registry.counter(
            "isthmus_proxy_upstream_failures_total",
            help: "Requests the upstream API server could not answer (unreachable, timed out, closed, or it rejected the proxy's credentials), by kind.",
            labels: ["kind"])
        reloads = registry.counter(
            "isthmus_proxy_reloads_total", help: "Reloads of the trusted peers file or the policy directory, by source and result.",
            labels: ["source", "result"])
        logLinesDropped = registry.counter(
            "isthmus_proxy_log_lines_dropped_total", help: "Access or audit log lines dropped because the writer fell behind.",
            labels: ["log"])
        watchesRevoked = registry.counter(
            "isthmus_proxy_watches_revoked_total",
            help: "Open watches ended because their access ended (peer removed, key revoked, policy narrowed, protected, token expired), by reason.",
            labels: ["reason"])
        watchesRefused = registry.counter(
            "isthmus_proxy_watches_refused_total",
            help: "Watches refused with 429 TooManyRequests, by peer and reason (total, peer, upstream_pool).",
            labels: ["peer", "reason"])
        throttled = registry.counter(
            "isthmus_proxy_requests_throttled_total",
            help: "Admitted requests answered 429 TooManyRequests by the per-peer limits, by peer and reason (rate_limit, queue_full, queue_timeout).",
            labels: ["peer", "reason"])
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
