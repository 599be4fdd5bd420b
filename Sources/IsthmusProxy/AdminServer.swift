import IsthmusHTTP

/// Where the admin listener (plain HTTP: `/metrics`, `/healthz`, `/readyz`) binds.
public struct AdminListenerConfiguration: Sendable, Hashable {
    public var host: String
    /// 0 picks a free port; read the bound one from ``ProxyServer/adminPort``.
    public var port: Int

    public init(host: String = "0.0.0.0", port: Int = 9090) {
        self.host = host
        self.port = port
    }
}

/// The local answers both listeners give without authentication.
enum LocalEndpoint {
    case healthz
    case readyz(verbose: Bool)
    case metrics

    /// The endpoint `target` names, if any (`/metrics` only where `metrics` is served).
    static func match(_ target: String, metrics: Bool) -> LocalEndpoint? {
        // Runs on every proxied request: a slice, not an array of pieces.
        let path = target.utf8.firstIndex(of: UInt8(ascii: "?")).map { target[..<$0] } ?? target[...]
        switch path {
        case "/healthz": return .healthz
        case "/readyz": return .readyz(verbose: ReadinessReport.isVerbose(target: target))
        case "/metrics" where metrics: return .metrics
        default: return nil
        }
    }

    func answer(_ services: ProxyServices) -> AdminResponse {
        switch self {
        case .healthz:
            return .text(200, "ok")
        case .readyz(let verbose):
            let report = services.readiness()
            return .text(report.statusCode, report.body(verbose: verbose))
        case .metrics:
            return AdminResponse(code: 200, contentType: MetricsExporter.contentType,
                                 body: services.operations.exporter.exposition())
        }
    }
}
