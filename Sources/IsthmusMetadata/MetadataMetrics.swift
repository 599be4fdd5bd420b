import CoreMetrics
import IsthmusHTTP
import NIOConcurrencyHelpers

/// The metadata service's series (prefix `isthmus_metadata_`), on the admin
/// listener's `/metrics`. Labels are bounded: the document is named only for
/// the two known paths, never from what a client sent.
final class MetadataMetrics: Sendable {
    /// `requests_total{document,code}`: `document` is public, private, probe or other.
    let requests: @Sendable ([String: String]) -> Counter
    /// `reloads_total{result}`: rebuilt documents (success) and newly broken sources (failure).
    let reloads: @Sendable ([String: String]) -> Counter

    init(_ exporter: MetricsExporter) {
        exporter.describe("isthmus_metadata_requests_total", help: "Requests answered, by document (public, private, probe, other) and HTTP status code.")
        exporter.describe("isthmus_metadata_reloads_total",
                          help: "Source changes: documents rebuilt (success) or a change refused while the last good metadata is served (failure).")
        let factory = exporter.factory
        requests = Self.family("isthmus_metadata_requests_total", factory: factory)
        reloads = Self.family("isthmus_metadata_reloads_total", factory: factory)
        for result in ["success", "failure"] { _ = reloads(["result": result]) }
    }

    func count(_ access: MetadataAccess) {
        let document = switch access.path {
        case MetadataRouter.publicPath: "public"
        case MetadataRouter.privatePath: "private"
        case "/healthz", "/readyz": "probe"
        default: "other"
        }
        requests(["document": document, "code": String(access.code)]).increment()
    }

    /// One counter per label set, made once.
    private static func family(_ name: String, factory: any MetricsFactory) -> @Sendable ([String: String]) -> Counter {
        let counters = NIOLockedValueBox<[[String: String]: Counter]>([:])
        return { labels in
            counters.withLockedValue { counters in
                if let counter = counters[labels] { return counter }
                let counter = Counter(label: name, dimensions: labels.sorted { $0.key < $1.key }.map { ($0.key, $0.value) },
                                      factory: factory)
                counters[labels] = counter
                return counter
            }
        }
    }
}
