import IsthmusHTTP

/// The running command's metrics: one exporter, bootstrapped into
/// swift-metrics' `MetricsSystem` when first used (once per process), so
/// what any library reports through swift-metrics is on the same `/metrics`.
enum ProcessMetrics {
    static let exporter: MetricsExporter = {
        let exporter = MetricsExporter()
        exporter.bootstrapMetricsSystem()
        return exporter
    }()
}
