#if canImport(Darwin)
import Darwin
#elseif canImport(Glibc)
import Glibc
#endif
import CoreMetrics
import NIOConcurrencyHelpers

/// A family of swift-metrics handles, one per label set, made on first use
/// through the family's factory (swift-prometheus in a running proxy, the
/// test kit in unit tests). Label values are bounded by the callers (see
/// ``ProxyMetrics``). The handles are found in stripes picked by the
/// updating thread, so event loops counting requests at once rarely meet
/// on a lock; the handles themselves are atomic.
public final class MetricFamily<Handle: AnyObject & Sendable>: Sendable {
    public let name: String
    public let labelNames: [String]
    private let make: @Sendable (_ name: String, _ dimensions: [(String, String)]) -> Handle
    private let stripes: [NIOLockedValueBox<[[String]: Handle]>]

    init(_ name: String, labels: [String], stripes: Int = 16,
         make: @escaping @Sendable (_ name: String, _ dimensions: [(String, String)]) -> Handle) {
        self.name = name
        self.labelNames = labels
        self.make = make
        self.stripes = (0..<max(1, stripes)).map { _ in NIOLockedValueBox([:]) }
    }

    /// The handle of `labels` (one value per label name, in order).
    public func callAsFunction(_ labels: [String] = []) -> Handle {
        precondition(labels.count == labelNames.count, "\(name) takes labels \(labelNames)")
        return stripes[Self.stripeIndex(count: stripes.count)].withLockedValue { handles in
            if let handle = handles[labels] { return handle }
            // The factory returns the same series for the same labels, whichever stripe asks.
            let handle = make(name, Array(zip(labelNames, labels)))
            handles[labels] = handle
            return handle
        }
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

public typealias CounterFamily = MetricFamily<Counter>
public typealias GaugeFamily = MetricFamily<Meter>
public typealias HistogramFamily = MetricFamily<Timer>

extension MetricFamily where Handle == Counter {
    /// Adds one (or `amount`) to the series of `labels`.
    public func increment(_ labels: [String] = [], by amount: Int64 = 1) {
        self(labels).increment(by: amount)
    }
}

extension MetricFamily where Handle == Meter {
    /// Adds `amount` (negative to subtract: a meter's increment takes only positive amounts).
    public func add(_ labels: [String] = [], _ amount: Double) {
        if amount < 0 { self(labels).decrement(by: -amount) } else { self(labels).increment(by: amount) }
    }

    public func set(_ labels: [String] = [], _ value: Double) {
        self(labels).set(value)
    }
}

/// A counter whose total is kept elsewhere (the token cache's hits, the
/// upstream pool's counts): before each scrape the counter is advanced by
/// what the total grew since the last one.
final class MirroredCounter: Sendable {
    private let counter: Counter
    private let total: @Sendable () -> Int
    private let mirrored = NIOLockedValueBox(0)

    init(_ counter: Counter, total: @escaping @Sendable () -> Int) {
        self.counter = counter
        self.total = total
    }

    func refresh() {
        mirrored.withLockedValue { mirrored in
            let now = total()
            if now > mirrored { counter.increment(by: now - mirrored) }
            mirrored = max(mirrored, now)
        }
    }
}

/// Gauges whose label sets come and go (a peer's queue): each refresh sets
/// the series it is given and removes those it is not.
final class MirroredGauges: Sendable {
    private let name: String
    private let labelNames: [String]
    private let factory: any MetricsFactory
    private let samples: @Sendable () -> [([String], Double)]
    private let meters = NIOLockedValueBox<[[String]: Meter]>([:])

    init(_ name: String, labels: [String], factory: any MetricsFactory, samples: @escaping @Sendable () -> [([String], Double)]) {
        self.name = name
        self.labelNames = labels
        self.factory = factory
        self.samples = samples
    }

    func refresh() {
        let current = samples()
        meters.withLockedValue { meters in
            var seen: Set<[String]> = []
            for (labels, value) in current {
                seen.insert(labels)
                let meter = meters[labels] ?? Meter(label: name, dimensions: Array(zip(labelNames, labels)), factory: factory)
                meters[labels] = meter
                meter.set(value)
            }
            for (labels, meter) in meters where !seen.contains(labels) {
                meter.destroy()
                meters[labels] = nil
            }
        }
    }
}
