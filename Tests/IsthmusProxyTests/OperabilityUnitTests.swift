import Foundation
import IsthmusKubeTypes
import IsthmusRequestInfo
@testable import IsthmusProxy
import Testing

/// Parses a text exposition into `series → value` (`name{a="x",b="y"}` as written),
/// checking that every sample's family was announced by `# TYPE`.
func parseExposition(_ text: String) -> (samples: [String: Double], types: [String: String], helps: Set<String>) {
    var samples: [String: Double] = [:]
    var types: [String: String] = [:]
    var helps: Set<String> = []
    for line in text.split(separator: "\n") {
        if line.hasPrefix("# TYPE ") {
            let parts = line.split(separator: " ")
            types[String(parts[2])] = String(parts[3])
        } else if line.hasPrefix("# HELP ") {
            helps.insert(String(line.split(separator: " ")[2]))
        } else if let space = line.lastIndex(of: " ") {
            samples[String(line[..<space])] = Double(line[line.index(after: space)...].replacingOccurrences(of: "+Inf", with: "inf"))
        }
    }
    return (samples, types, helps)
}

@Suite("Proxy operability: metrics registry, readiness, log lines")
struct OperabilityUnitTests {
    @Test("counters, gauges and histograms render in the text format with HELP and TYPE, escaped labels, sorted series")
    func exposition() {
        let registry = MetricsRegistry()
        let requests = registry.counter("test_requests_total", help: "Requests.\nTwo lines \\ one slash.", labels: ["peer", "code"])
        let gauge = registry.gauge("test_open", help: "Open things.")
        let histogram = registry.histogram("test_seconds", help: "Latency.", labels: ["verb"], buckets: [0.1, 1])
        registry.computed("test_bytes_total", help: "Bytes.", type: .counter) { [([], 12345)] }
        requests.increment(["b", "200"])
        requests.increment(["a", "403"], by: 2)
        requests.increment(["q\"uote\\d\nx", "401"])
        gauge.add([], 3)
        gauge.add([], -1)
        histogram.observe(["get"], 0.05)
        histogram.observe(["get"], 0.5)
        histogram.observe(["get"], 7)
        let text = registry.exposition()
        #expect(text == """
            # HELP test_requests_total Requests.\\nTwo lines \\\\ one slash.
            # TYPE test_requests_total counter
            test_requests_total{peer="a",code="403"} 2
            test_requests_total{peer="b",code="200"} 1
            test_requests_total{peer="q\\"uote\\\\d\\nx",code="401"} 1
            # HELP test_open Open things.
            # TYPE test_open gauge
            test_open 2
            # HELP test_seconds Latency.
            # TYPE test_seconds histogram
            test_seconds_bucket{verb="get",le="0.1"} 1
            test_seconds_bucket{verb="get",le="1"} 2
            test_seconds_bucket{verb="get",le="+Inf"} 3
            test_seconds_sum{verb="get"} 7.55
            test_seconds_count{verb="get"} 3
            # HELP test_bytes_total Bytes.
            # TYPE test_bytes_total counter
            test_bytes_total 12345

            """, "\(text)")
    }

    @Test("updates from many threads at once are all counted")
    func concurrentUpdates() async {
        let registry = MetricsRegistry()
        let counter = registry.counter("c_total", help: "c", labels: ["k"])
        let histogram = registry.histogram("h", help: "h", buckets: [1])
        await withTaskGroup(of: Void.self) { group in
            for task in 0..<8 {
                group.addTask {
                    for i in 0..<10_000 {
                        counter.increment([String(i % 3)])
                        histogram.observe([], Double(task))
                    }
                }
            }
        }
        #expect(counter.value(["0"]) + counter.value(["1"]) + counter.value(["2"]) == 80_000)
        #expect(histogram.count() == 80_000)
        let parsed = parseExposition(registry.exposition())
        #expect(parsed.samples["h_bucket{le=\"1\"}"] == 20_000)
    }

    @Test("/readyz body: ok, or each check in kube-apiserver's words")
    func readinessBody() {
        let ready = ReadinessReport(checks: [ReadinessCheck(name: "peers"), ReadinessCheck(name: "upstream")])
        #expect(ready.statusCode == 200)
        #expect(ready.body(verbose: false) == "ok")
        #expect(ready.body(verbose: true) == "[+]peers ok\n[+]upstream ok\nreadyz check passed\n")
        let failing = ReadinessReport(checks: [ReadinessCheck(name: "peers"), ReadinessCheck(name: "upstream", failure: "connection refused")])
        #expect(failing.statusCode == 503)
        #expect(failing.body(verbose: false) == "[+]peers ok\n[-]upstream failed: connection refused\nreadyz check failed\n")
        #expect(ReadinessReport.isVerbose(target: "/readyz?verbose"))
        #expect(ReadinessReport.isVerbose(target: "/readyz?exclude=x&verbose=1"))
        #expect(!ReadinessReport.isVerbose(target: "/readyz"))
        #expect(!ReadinessReport.isVerbose(target: "/readyz?verbosely"))
    }

    @Test("the upstream check fails on a failed probe, before any probe, and when the last success is stale")
    func upstreamCheck() {
        let now = ContinuousClock.now
        var state = UpstreamProbeState()
        #expect(state.check(now: now, staleAfter: .seconds(15)).failure == "not probed yet")
        state.lastSuccess = now - .seconds(3)
        #expect(state.check(now: now, staleAfter: .seconds(15)).failure == nil)
        #expect(state.check(now: now + .seconds(20), staleAfter: .seconds(15)).failure?.hasPrefix("no answer from the API server") == true)
        state.lastFailure = "connectFailed: connection refused"
        #expect(state.check(now: now, staleAfter: .seconds(15)).failure == "connectFailed: connection refused")
    }

    @Test("access and audit lines carry the fields, and the metric labels stay bounded")
    func recordLines() throws {
        let attributes = try RequestAttributes(method: "DELETE", target: "/api/v1/namespaces/demo/services/web")
        var record = RequestRecord(startTime: 1_764_099_305.123_9, remoteAddress: "127.0.0.1:5555", method: "DELETE",
                                   target: "/api/v1/namespaces/demo/services/web", protocolName: "HTTP/2.0", userAgent: "kubectl/v1.32")
        record.attributes = attributes
        record.reason = "method DELETE on a read-only proxy"
        record.status = 403
        record.bytes = 250
        let access = try JSON(parsing: record.accessLogLine(duration: 0.0012345))
        #expect(access.serialized() == #"{"time":"2025-11-25T19:35:05.123Z","remote":"127.0.0.1:5555","peer":"","method":"DELETE","path":"/api/v1/namespaces/demo/services/web","status":403,"bytes":250,"duration":0.001235,"protocol":"HTTP/2.0","userAgent":"kubectl/v1.32"}"#)
        let audit = try JSON(parsing: record.auditLogLine(duration: 2))
        #expect(audit.serialized() == #"{"time":"2025-11-25T19:35:05.123Z","peer":"","verb":"delete","group":"","resource":"services","subresource":"","namespace":"demo","name":"web","decision":"deny","reason":"method DELETE on a read-only proxy","status":403,"bytes":250,"duration":2.000000}"#)
        // Refused: no resource label (a client could name anything), verb from the method.
        #expect(record.metricLabels == ["", "delete", "", "403"])
        record.admitted = true
        record.peer = "8d5f5d2e-1c1a-4a8e-9a53-2f6f4a3d2c11"
        record.attributes = try RequestAttributes(method: "GET", target: "/api/v1/services?watch=true")
        record.status = 200
        #expect(record.metricLabels == ["8d5f5d2e-1c1a-4a8e-9a53-2f6f4a3d2c11", "watch", "services", "200"])
        #expect(ProxyMetrics.verbLabel(nil, method: "BREW") == "other")
    }

    @Test("log lines are written as bytes exactly as the JSON writer would: escapes, padding, microseconds")
    func recordLineBytes() throws {
        var record = RequestRecord(startTime: 946_684_800.0075, remoteAddress: "[::1]:80", method: "GET",
                                   target: "/api/v1/pods?labelSelector=a<b&x=\"q\"", protocolName: "HTTP/1.1",
                                   userAgent: "agent\n\u{2028}\\é\u{1}")
        record.status = 200
        record.bytes = 7
        record.upstreamError = "tab\there"
        let expected = JSON.object([
            ("time", .string("2000-01-01T00:00:00.007Z")), ("remote", .string("[::1]:80")), ("peer", .string("")),
            ("method", .string("GET")), ("path", .string(record.target)), ("status", .int(200)), ("bytes", .int(7)),
            ("duration", .number("12.000050")), ("protocol", .string("HTTP/1.1")), ("userAgent", .string(record.userAgent)),
            ("error", .string("tab\there")),
        ])
        #expect(String(decoding: record.accessLogLine(duration: 12.00005), as: UTF8.self) == expected.serialized())
        #expect(String(decoding: record.accessLogLine(duration: 0), as: UTF8.self).contains(#""duration":0.000000,"#))
        #expect(RequestRecord.timestamp(1_764_099_305.999_9) == "2025-11-25T19:35:05.999Z")
    }

    @Test("a full log buffer drops lines and counts them; what fits is written in order")
    func lineWriterBound() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("isthmus-log-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let drops = DropCounter()
        let writer = try #require(try BufferedLineWriter.open(.file(path), capacityBytes: 64) { drops.add() })
        // 100-byte lines never fit a 64-byte buffer.
        #expect(!writer.write(Array(repeating: UInt8(ascii: "x"), count: 100)))
        for i in 0..<5 { writer.write(Array("line \(i)".utf8)) }
        await writer.flush()
        writer.close()
        #expect(try String(contentsOfFile: path, encoding: .utf8) == (0..<5).map { "line \($0)\n" }.joined())
        #expect(writer.droppedLines == 1)
        #expect(drops.count == 1)
        #expect(!writer.write(Array("after close".utf8)))
    }
}

private final class DropCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0
    func add() { lock.withLock { value += 1 } }
    var count: Int { lock.withLock { value } }
}
