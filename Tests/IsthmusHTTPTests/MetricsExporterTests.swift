import CoreMetrics
import IsthmusHTTP
import Testing

@Suite("MetricsExporter: swift-metrics handles as Prometheus text")
struct MetricsExporterTests {
    @Test("families sorted by name with their HELP and TYPE, label values escaped, timers in seconds with their buckets, mirrors refreshed first")
    func exposition() {
        let exporter = MetricsExporter()
        exporter.describe("test_requests_total", help: "Requests.\nTwo lines \\ one slash.")
        exporter.describe("test_seconds", help: "Latency.", buckets: [.milliseconds(100), .seconds(1)])
        let factory = exporter.factory
        let scrapes = Counter(label: "test_scrapes_total", factory: factory)
        exporter.beforeScrape { scrapes.increment() }
        Counter(label: "test_requests_total", dimensions: [("peer", "q\"uote\\d\nx"), ("code", "401")], factory: factory).increment(by: 2)
        let open = Meter(label: "test_open", factory: factory)
        open.increment(by: 3)
        open.decrement(by: 1)
        let timer = Timer(label: "test_seconds", dimensions: [("verb", "get")], factory: factory)
        for milliseconds in [50, 500, 7000] { timer.recordMilliseconds(milliseconds) }

        let text = String(decoding: exporter.exposition(), as: UTF8.self)
        #expect(text == """
            # TYPE test_open gauge
            test_open 2.0
            # HELP test_requests_total Requests.\\nTwo lines \\\\ one slash.
            # TYPE test_requests_total counter
            test_requests_total{peer="q\\"uote\\\\d\\nx",code="401"} 2
            # TYPE test_scrapes_total counter
            test_scrapes_total 1
            # HELP test_seconds Latency.
            # TYPE test_seconds histogram
            test_seconds_bucket{verb="get",le="0.1"} 1
            test_seconds_bucket{verb="get",le="1.0"} 2
            test_seconds_bucket{verb="get",le="+Inf"} 3
            test_seconds_sum{verb="get"} 7.55
            test_seconds_count{verb="get"} 3

            """, "\(text)")
        #expect(String(decoding: exporter.exposition(), as: UTF8.self).contains("test_scrapes_total 2\n"))
    }

    @Test("a destroyed series leaves the page")
    func destroyed() {
        let exporter = MetricsExporter()
        let meter = Meter(label: "test_queued", dimensions: [("peer", "a")], factory: exporter.factory)
        meter.set(4)
        #expect(String(decoding: exporter.exposition(), as: UTF8.self).contains(#"test_queued{peer="a"} 4"#))
        meter.destroy()
        #expect(!String(decoding: exporter.exposition(), as: UTF8.self).contains("test_queued{"))
    }
}
