#if canImport(Darwin)
import Darwin
#elseif canImport(Glibc)
import Glibc
#endif
import NIOConcurrencyHelpers

/// A small Prometheus registry (text exposition format 0.0.4), written by hand
/// so the data path pays one uncontended lock per update: every family keeps
/// its values in stripes, picked by the updating thread, and sums them only
/// when scraped. Updates happen per request, never per body chunk.
public final class MetricsRegistry: Sendable {
    private let families = NIOLockedValueBox<[any MetricFamily]>([])

    public init() {}

    /// Registers a counter family: one monotonically increasing value per label set.
    public func counter(_ name: String, help: String, labels: [String] = []) -> CounterFamily {
        register(CounterFamily(name: name, help: help, labelNames: labels))
    }

    /// Registers a gauge family: one value per label set that goes up and down.
    public func gauge(_ name: String, help: String, labels: [String] = []) -> GaugeFamily {
        register(GaugeFamily(name: name, help: help, labelNames: labels))
    }

    /// Registers a histogram family with the given upper bounds (seconds, bytes…).
    public func histogram(_ name: String, help: String, labels: [String] = [], buckets: [Double]) -> HistogramFamily {
        register(HistogramFamily(name: name, help: help, labelNames: labels, buckets: buckets))
    }

    /// Registers a family whose samples are computed at scrape time (values
    /// the proxy already keeps elsewhere, such as the token cache's counts).
    public func computed(_ name: String, help: String, type: MetricType, labels: [String] = [],
                         samples: @escaping @Sendable () -> [([String], Double)]) {
        _ = register(ComputedFamily(name: name, help: help, type: type, labelNames: labels, samples: samples))
    }

    private func register<Family: MetricFamily>(_ family: Family) -> Family {
        families.withLockedValue { $0.append(family) }
        return family
    }

    /// The whole registry in the text exposition format, families in registration order.
    public func exposition() -> String {
        var out = ""
        for family in families.withLockedValue({ $0 }) {
            out += "# HELP \(family.name) \(Exposition.escapeHelp(family.help))\n"
            out += "# TYPE \(family.name) \(family.type.rawValue)\n"
            family.writeSamples(into: &out)
        }
        return out
    }

    /// The `Content-Type` of ``exposition()``.
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"
}

/// The `# TYPE` of a family.
public enum MetricType: String, Sendable {
    case counter, gauge, histogram
}

protocol MetricFamily: Sendable {
    var name: String { get }
    var help: String { get }
    var type: MetricType { get }
    func writeSamples(into out: inout String)
}

/// Values of one family spread over lock stripes by thread, so event loops
/// updating at once rarely meet on a lock.
final class StripedValues<Value: Sendable>: Sendable {
    private let stripes: [NIOLockedValueBox<[[String]: Value]>]

    init(stripes: Int = 16) {
        self.stripes = (0..<max(1, stripes)).map { _ in NIOLockedValueBox([:]) }
    }

    func update(_ labels: [String], initial: @autoclosure () -> Value, _ body: (inout Value) -> Void) {
        stripes[Self.stripeIndex(count: stripes.count)].withLockedValue { values in
            body(&values[labels, default: initial()])
        }
    }

    /// Every label set's stripes folded into one value, sorted by labels.
    func merged(_ combine: (Value, Value) -> Value) -> [([String], Value)] {
        var total: [[String]: Value] = [:]
        for stripe in stripes {
            for (labels, value) in stripe.withLockedValue({ $0 }) {
                total[labels] = total[labels].map { combine($0, value) } ?? value
            }
        }
        return total.sorted { $0.key.lexicographicallyPrecedes($1.key) }.map { ($0.key, $0.value) }
    }

    /// A stripe per thread: threads are stable for an event loop's lifetime.
    private static func stripeIndex(count: Int) -> Int {
        #if canImport(Darwin)
        let id = UInt(bitPattern: pthread_self())
        #else
        let id = UInt(pthread_self())
        #endif
        // Thread identifiers are aligned addresses: mix before taking the remainder.
        return Int((id &* 0x9E37_79B9_7F4A_7C15) >> 40) % count
    }
}

/// A Prometheus counter family. Names end in `_total` by convention.
public final class CounterFamily: MetricFamily {
    public let name: String
    public let help: String
    public let labelNames: [String]
    var type: MetricType { .counter }
    private let values = StripedValues<Double>()

    init(name: String, help: String, labelNames: [String]) {
        self.name = name
        self.help = help
        self.labelNames = labelNames
    }

    /// Adds `amount` (≥ 0) to the series of `labels` (one value per label name, in order).
    public func increment(_ labels: [String] = [], by amount: Double = 1) {
        precondition(labels.count == labelNames.count, "\(name) takes labels \(labelNames)")
        values.update(labels, initial: 0) { $0 += amount }
    }

    /// The current value of one series (0 if it was never incremented).
    public func value(_ labels: [String] = []) -> Double {
        values.merged(+).first { $0.0 == labels }?.1 ?? 0
    }

    func writeSamples(into out: inout String) {
        for (labels, value) in values.merged(+) {
            Exposition.writeSample(name, labelNames, labels, value, into: &out)
        }
    }
}

/// A Prometheus gauge family.
public final class GaugeFamily: MetricFamily {
    public let name: String
    public let help: String
    public let labelNames: [String]
    var type: MetricType { .gauge }
    private let values = StripedValues<Double>()

    init(name: String, help: String, labelNames: [String]) {
        self.name = name
        self.help = help
        self.labelNames = labelNames
    }

    /// Adds `amount` (negative to subtract); the gauge is the sum over all threads.
    public func add(_ labels: [String] = [], _ amount: Double) {
        precondition(labels.count == labelNames.count, "\(name) takes labels \(labelNames)")
        values.update(labels, initial: 0) { $0 += amount }
    }

    public func value(_ labels: [String] = []) -> Double {
        values.merged(+).first { $0.0 == labels }?.1 ?? 0
    }

    func writeSamples(into out: inout String) {
        for (labels, value) in values.merged(+) {
            Exposition.writeSample(name, labelNames, labels, value, into: &out)
        }
    }
}

/// A Prometheus histogram family: cumulative `_bucket{le}` series, `_sum` and `_count`.
public final class HistogramFamily: MetricFamily {
    public let name: String
    public let help: String
    public let labelNames: [String]
    /// Upper bounds, ascending; `+Inf` is implied.
    public let buckets: [Double]
    var type: MetricType { .histogram }

    struct Cells: Sendable {
        /// Per bucket, not cumulative; the last cell is `+Inf`.
        var counts: [UInt64]
        var sum: Double = 0
    }

    private let values = StripedValues<Cells>()

    init(name: String, help: String, labelNames: [String], buckets: [Double]) {
        self.name = name
        self.help = help
        self.labelNames = labelNames
        self.buckets = buckets.sorted()
    }

    public func observe(_ labels: [String] = [], _ value: Double) {
        precondition(labels.count == labelNames.count, "\(name) takes labels \(labelNames)")
        let index = buckets.firstIndex { value <= $0 } ?? buckets.count
        let size = buckets.count + 1
        values.update(labels, initial: Cells(counts: Array(repeating: 0, count: size))) { cells in
            cells.counts[index] += 1
            cells.sum += value
        }
    }

    /// Observations of one series so far.
    public func count(_ labels: [String] = []) -> UInt64 {
        merged().first { $0.0 == labels }?.1.counts.reduce(0, +) ?? 0
    }

    private func merged() -> [([String], Cells)] {
        values.merged { a, b in
            Cells(counts: zip(a.counts, b.counts).map { $0 + $1 }, sum: a.sum + b.sum)
        }
    }

    func writeSamples(into out: inout String) {
        let names = labelNames + ["le"]
        for (labels, cells) in merged() {
            var cumulative: UInt64 = 0
            for (index, count) in cells.counts.enumerated() {
                cumulative += count
                let bound = index < buckets.count ? Exposition.format(buckets[index]) : "+Inf"
                Exposition.writeSample(name + "_bucket", names, labels + [bound], Double(cumulative), into: &out)
            }
            Exposition.writeSample(name + "_sum", labelNames, labels, cells.sum, into: &out)
            Exposition.writeSample(name + "_count", labelNames, labels, Double(cumulative), into: &out)
        }
    }
}

/// Samples computed by a closure at scrape time.
final class ComputedFamily: MetricFamily {
    let name: String
    let help: String
    let type: MetricType
    let labelNames: [String]
    let samples: @Sendable () -> [([String], Double)]

    init(name: String, help: String, type: MetricType, labelNames: [String],
         samples: @escaping @Sendable () -> [([String], Double)]) {
        self.name = name
        self.help = help
        self.type = type
        self.labelNames = labelNames
        self.samples = samples
    }

    func writeSamples(into out: inout String) {
        for (labels, value) in samples() {
            Exposition.writeSample(name, labelNames, labels, value, into: &out)
        }
    }
}

/// The text format's escaping and number rules.
enum Exposition {
    static func writeSample(_ name: String, _ labelNames: [String], _ labels: [String], _ value: Double, into out: inout String) {
        out += name
        if !labelNames.isEmpty {
            out += "{"
            for (index, (label, value)) in zip(labelNames, labels).enumerated() {
                if index > 0 { out += "," }
                out += label + "=\"" + escapeLabelValue(value) + "\""
            }
            out += "}"
        }
        out += " " + format(value) + "\n"
    }

    /// Integers without a fraction (counts are exact up to 2^53); others as Swift prints them.
    static func format(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value > 0 ? "+Inf" : "-Inf" }
        if value == value.rounded(), abs(value) < 9_007_199_254_740_992 { return String(Int64(value)) }
        return String(value)
    }

    /// Label values escape `\`, `"` and line feeds.
    static func escapeLabelValue(_ value: String) -> String {
        guard value.contains(where: { $0 == "\\" || $0 == "\"" || $0 == "\n" }) else { return value }
        var out = ""
        for character in value {
            switch character {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.append(character)
            }
        }
        return out
    }

    /// HELP text escapes `\` and line feeds.
    static func escapeHelp(_ help: String) -> String {
        var out = ""
        for character in help {
            switch character {
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            default: out.append(character)
            }
        }
        return out
    }
}
