import IsthmusController
import Synchronization

/// The controller's metrics in Prometheus text exposition format: counters
/// the loop increments as it fetches and writes, and the gauges each round
/// replaces (``DesiredState/gaugeSamples()`` plus fetch times).
public final class ControllerMetricsRegistry: Sendable {
    private struct Key: Hashable, Comparable {
        var name: String
        var labels: [(String, String)]
        static func == (a: Key, b: Key) -> Bool { a.name == b.name && a.labels.elementsEqual(b.labels, by: ==) }
        func hash(into h: inout Hasher) {
            h.combine(name)
            for (k, v) in labels { h.combine(k); h.combine(v) }
        }
        static func < (a: Key, b: Key) -> Bool { a.rendered < b.rendered }
        init(_ name: String, _ labels: [String: String]) {
            self.name = name
            self.labels = labels.sorted { $0.key < $1.key }
        }
        var rendered: String {
            guard !labels.isEmpty else { return name }
            let body = labels.map { "\($0.0)=\"\(Self.escape($0.1))\"" }.joined(separator: ",")
            return "\(name){\(body)}"
        }
        static func escape(_ s: String) -> String {
            s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
                .replacingOccurrences(of: "\n", with: "\\n")
        }
    }

    private struct State {
        var counters: [Key: Double] = [:]
        var roundGauges: [Key: Double] = [:]
        /// Fetch times and API probes: per peer, kept between rounds.
        var lastSuccess: [Key: Double] = [:]
    }
    private let state = Mutex(State())

    public init() {}

    static let counterNames: Set<String> = [ControllerMetrics.metadataFetchErrors, ControllerMetrics.writes, ControllerMetrics.writeErrors]

    /// Adds one to the counter `name` with `labels`.
    public func increment(_ name: String, _ labels: [String: String]) {
        state.withLock { $0.counters[Key(name, labels), default: 0] += 1 }
    }

    /// Records a successful fetch of `document` ("public"/"private") for `peer` at `time` (Unix seconds).
    public func recordSuccess(peer: String, document: String, at time: Int64) {
        state.withLock { $0.lastSuccess[Key(ControllerMetrics.metadataLastSuccess, ["peer": peer, "document": document])] = Double(time) }
    }

    /// Records the last probe of the peer's API through its proxy (1 up, 0 down).
    public func setPeerAPIUp(peer: String, up: Bool) {
        state.withLock { $0.lastSuccess[Key(ControllerMetrics.peerAPIUp, ["peer": peer])] = up ? 1 : 0 }
    }

    /// Replaces the round's gauges; drops fetch times and probes of peers that are gone.
    public func replaceGauges(_ samples: [MetricSample], peers: Set<String>) {
        state.withLock { s in
            s.roundGauges = Dictionary(samples.map { (Key($0.name, $0.labels), $0.value) }, uniquingKeysWith: { $1 })
            s.lastSuccess = s.lastSuccess.filter { key, _ in key.labels.contains { $0.0 == "peer" && peers.contains($0.1) } }
        }
    }

    /// The current value of one series, for tests.
    public func value(_ name: String, _ labels: [String: String] = [:]) -> Double? {
        let key = Key(name, labels)
        return state.withLock { $0.counters[key] ?? $0.roundGauges[key] ?? $0.lastSuccess[key] }
    }

    /// The text exposition (`text/plain; version=0.0.4`).
    public func exposition() -> String {
        let all = state.withLock { s in s.counters.merging(s.roundGauges) { $1 }.merging(s.lastSuccess) { $1 } }
        var out = ""
        for name in ControllerMetrics.all {
            out += "# TYPE \(name) \(Self.counterNames.contains(name) ? "counter" : "gauge")\n"
            for (key, value) in all.filter({ $0.key.name == name }).sorted(by: { $0.key < $1.key }) {
                out += "\(key.rendered) \(Self.format(value))\n"
            }
        }
        return out
    }

    static func format(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : String(value)
    }
}
