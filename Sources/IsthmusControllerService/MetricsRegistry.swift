import CoreMetrics
import IsthmusController
import Synchronization

/// The controller's series as swift-metrics handles: counters the loop
/// increments as it fetches and writes, and the gauges each round replaces
/// (``DesiredState/gaugeSamples()`` plus fetch times and API probes, kept
/// per peer until the peer is gone). A series that is gone is destroyed, so
/// the exposition drops it.
public final class ControllerMetricsRegistry: Sendable {
    public let factory: any MetricsFactory

    private struct Series: Hashable {
        var name: String
        var labels: [String: String]
        var dimensions: [(String, String)] { labels.sorted { $0.key < $1.key }.map { ($0.key, $0.value) } }
    }
    private struct State {
        var counters: [Series: Counter] = [:]
        var roundGauges: [Series: Meter] = [:]
        /// Fetch times and API probes: per peer, kept between rounds.
        var peerGauges: [Series: Meter] = [:]
    }
    private let state = Mutex(State())

    public init(factory: any MetricsFactory) {
        self.factory = factory
    }

    /// Adds one to the counter `name` with `labels`.
    public func increment(_ name: String, _ labels: [String: String]) {
        let series = Series(name: name, labels: labels)
        state.withLock { state in
            let counter = state.counters[series] ?? Counter(label: name, dimensions: series.dimensions, factory: factory)
            state.counters[series] = counter
            return counter
        }.increment()
    }

    /// Records a successful fetch of `document` ("public"/"private") for `peer` at `time` (Unix seconds).
    public func recordSuccess(peer: String, document: String, at time: Int64) {
        setPeerGauge(Series(name: ControllerMetrics.metadataLastSuccess, labels: ["peer": peer, "document": document]), Double(time))
    }

    /// Records the last probe of the peer's API through its proxy (1 up, 0 down).
    public func setPeerAPIUp(peer: String, up: Bool) {
        setPeerGauge(Series(name: ControllerMetrics.peerAPIUp, labels: ["peer": peer]), up ? 1 : 0)
    }

    private func setPeerGauge(_ series: Series, _ value: Double) {
        state.withLock { state in
            let meter = state.peerGauges[series] ?? Meter(label: series.name, dimensions: series.dimensions, factory: factory)
            state.peerGauges[series] = meter
            return meter
        }.set(value)
    }

    /// Replaces the round's gauges; drops fetch times and probes of peers that are gone.
    public func replaceGauges(_ samples: [MetricSample], peers: Set<String>) {
        state.withLock { state in
            var round: [Series: Meter] = [:]
            for sample in samples {
                let series = Series(name: sample.name, labels: sample.labels)
                let meter = round[series] ?? state.roundGauges.removeValue(forKey: series)
                    ?? Meter(label: sample.name, dimensions: series.dimensions, factory: factory)
                meter.set(sample.value)
                round[series] = meter
            }
            for meter in state.roundGauges.values { meter.destroy() }
            state.roundGauges = round
            for (series, meter) in state.peerGauges where !peers.contains(series.labels["peer"] ?? "") {
                meter.destroy()
                state.peerGauges[series] = nil
            }
        }
    }
}
