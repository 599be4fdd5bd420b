import IsthmusHTTP

extension AdminServer {
    /// The controller's admin port: `/healthz` and `/livez` (the process
    /// runs), `/readyz` (``ControllerService/isReady``) and `/metrics`.
    public static func start(host: String, port: Int, ready: @escaping @Sendable () -> Bool,
                             metrics: MetricsExporter) async throws -> AdminServer {
        try await start(host: host, port: port) { target in
            switch target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? "" {
            case "/healthz", "/livez": .text(200, "ok\n")
            case "/readyz": ready() ? .text(200, "ok\n") : .text(503, "not ready\n")
            case "/metrics": AdminResponse(code: 200, contentType: MetricsExporter.contentType, body: metrics.exposition())
            default: nil
            }
        }
    }
}
