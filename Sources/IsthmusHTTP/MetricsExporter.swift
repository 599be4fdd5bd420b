import CoreMetrics
import Prometheus
import Synchronization

/// One process's metrics as Prometheus scrapes them: the swift-metrics
/// handles made by ``factory`` live in a swift-prometheus registry, and
/// ``exposition()`` writes its text format with each family's HELP (which
/// swift-metrics has no place for) and the families sorted by name, so two
/// scrapes read alike. Each service takes one (its `/metrics`); the command
/// that runs also bootstraps `MetricsSystem` with it, so libraries that
/// report through swift-metrics land on the same page.
public final class MetricsExporter: Sendable {
    public let registry: PrometheusCollectorRegistry
    private struct State {
        var help: [String: String] = [:]
        var durationBuckets: [String: [Duration]] = [:]
        var beforeScrape: [@Sendable () -> Void] = []
    }
    private let state = Mutex(State())

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
    }

    /// The `Content-Type` of ``exposition()``.
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    /// A factory writing to this exporter's registry, with the buckets of the
    /// timers described so far (take it after ``describe(_:help:buckets:)``).
    public var factory: PrometheusMetricsFactory {
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.durationHistogramBuckets = state.withLock { $0.durationBuckets }
        return factory
    }

    /// The HELP line of the family `name` and, for a timer, its bucket bounds.
    public func describe(_ name: String, help: String, buckets: [Duration]? = nil) {
        state.withLock {
            $0.help[name] = help
            if let buckets { $0.durationBuckets[name] = buckets }
        }
    }

    /// Runs before every scrape: sets the series computed from counts kept elsewhere.
    public func beforeScrape(_ refresh: @escaping @Sendable () -> Void) {
        state.withLock { $0.beforeScrape.append(refresh) }
    }

    /// `MetricsSystem.bootstrap` with this exporter's factory: once per process, from the command's `run()`.
    public func bootstrapMetricsSystem() {
        MetricsSystem.bootstrap(factory)
    }

    /// The text exposition format (0.0.4).
    public func exposition() -> [UInt8] {
        let (help, refreshes) = state.withLock { ($0.help, $0.beforeScrape) }
        for refresh in refreshes { refresh() }
        // The registry writes each family as `# TYPE name kind` and its samples, in hash order.
        var families: [(name: Substring, lines: [Substring])] = []
        let text = registry.emitToString()
        for line in text.split(separator: "\n") {
            if line.hasPrefix("# TYPE ") {
                families.append((line.dropFirst(7).prefix { $0 != " " }, [line]))
            } else if !line.hasPrefix("#"), !families.isEmpty {
                families[families.count - 1].lines.append(line)
            }
        }
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count + help.count * 80)
        for family in families.sorted(by: { $0.name < $1.name }) {
            if let text = help[String(family.name)] {
                out.append(contentsOf: "# HELP \(family.name) \(Self.escapeHelp(text))\n".utf8)
            }
            for line in family.lines {
                out.append(contentsOf: line.utf8)
                out.append(UInt8(ascii: "\n"))
            }
        }
        return out
    }

    /// HELP text escapes `\` and line feeds.
    static func escapeHelp(_ help: String) -> String {
        help.replacing("\\", with: "\\\\").replacing("\n", with: "\\n")
    }
}
