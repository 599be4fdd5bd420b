import Foundation
import IsthmusHTTP
import MetricsTestKit
import NIOConcurrencyHelpers
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

extension ProxyServer {
    /// The exposition `/metrics` serves.
    var exposition: String { String(decoding: exporter.exposition(), as: UTF8.self) }

    /// The value `/metrics` shows for one series of `family` (0 when it is absent).
    func value<Handle>(_ family: MetricFamily<Handle>, _ labels: [String] = []) -> Double {
        let pairs = zip(family.labelNames, labels).map { "\($0)=\"\($1)\"" }
        let series = pairs.isEmpty ? family.name : "\(family.name){\(pairs.joined(separator: ","))}"
        return parseExposition(exposition).samples[series] ?? 0
    }
}

@Suite("Proxy operability: metrics, readiness, log lines")
struct OperabilityUnitTests {
    @Test("the proxy's series go through swift-metrics: label sets in order, fixed ones at zero from the start, mirrors advance")
    func seriesThroughSwiftMetrics() throws {
        let test = TestMetrics()
        let metrics = ProxyMetrics(factory: test)
        metrics.requests.increment(["peer-a", "get", "services", "200"])
        metrics.requests.increment(["peer-a", "get", "services", "200"])
        metrics.openWatches.add([], 1)
        metrics.openWatches.add([], 1)
        metrics.openWatches.add([], -1)
        metrics.upstreamResponseSeconds(["get"]).recordNanoseconds(2_500_000)
        let requests = try test.expectCounter("isthmus_proxy_requests_total",
                                              [("peer", "peer-a"), ("verb", "get"), ("resource", "services"), ("code", "200")])
        #expect(requests.totalValue == 2)
        #expect(try test.expectMeter("isthmus_proxy_open_watches").lastValue == 1)
        #expect(try test.expectTimer("isthmus_proxy_upstream_response_seconds", [("verb", "get")]).lastValue == 2_500_000)
        // Known label sets exist before their first event.
        #expect(try test.expectCounter("isthmus_proxy_watches_revoked_total", [("reason", "peer_removed")]).totalValue == 0)
        #expect(try test.expectCounter("isthmus_proxy_reloads_total", [("source", "policy"), ("result", "failure")]).totalValue == 0)

        let total = NIOLockedValueBox(5)
        metrics.mirrorCounter("isthmus_proxy_bytes_relayed_total") { total.withLockedValue { $0 } }
        let queued = NIOLockedValueBox<[([String], Double)]>([(["peer-a"], 3), (["peer-b"], 1)])
        metrics.mirrorGauges("isthmus_proxy_short_requests_queued", labels: ["peer"]) { queued.withLockedValue { $0 } }
        metrics.refresh()
        total.withLockedValue { $0 = 12 }
        metrics.refresh()
        metrics.refresh()
        #expect(try test.expectCounter("isthmus_proxy_bytes_relayed_total").totalValue == 12)
        #expect(try test.expectMeter("isthmus_proxy_short_requests_queued", [("peer", "peer-b")]).lastValue == 1)
        queued.withLockedValue { $0 = [(["peer-a"], 0)] }
        metrics.refresh()
        #expect(try test.expectMeter("isthmus_proxy_short_requests_queued", [("peer", "peer-a")]).lastValue == 0)
        // A peer no longer queued is destroyed, not left at its last value.
        #expect(throws: (any Error).self) { try test.expectMeter("isthmus_proxy_short_requests_queued", [("peer", "peer-b")]) }
    }

    @Test("updates from many threads at once are all counted, through the swift-prometheus registry")
    func concurrentUpdates() async {
        let exporter = MetricsExporter()
        for family in ProxyMetrics.descriptions { exporter.describe(family.name, help: family.help, buckets: family.buckets) }
        let metrics = ProxyMetrics(factory: exporter.factory)
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<8 {
                group.addTask {
                    for i in 0..<10_000 {
                        metrics.requests.increment(["p", "get", "services", String(200 + i % 3)])
                        metrics.upstreamResponseSeconds(["get"]).recordNanoseconds(Int64(i % 2) * 2_000_000_000)
                    }
                }
            }
        }
        let parsed = parseExposition(String(decoding: exporter.exposition(), as: UTF8.self))
        let counted = (200...202).map { parsed.samples[#"isthmus_proxy_requests_total{peer="p",verb="get",resource="services",code="\#($0)"}"#] ?? 0 }
        #expect(counted == [26_672, 26_664, 26_664].map(Double.init), "\(counted)")
        #expect(parsed.samples[#"isthmus_proxy_upstream_response_seconds_count{verb="get"}"#] == 80_000)
        #expect(parsed.samples[#"isthmus_proxy_upstream_response_seconds_bucket{verb="get",le="1.0"}"#] == 40_000)
        #expect(parsed.samples[#"isthmus_proxy_upstream_response_seconds_bucket{verb="get",le="2.5"}"#] == 80_000)
        #expect(parsed.samples[#"isthmus_proxy_upstream_response_seconds_sum{verb="get"}"#] == 80_000)
        for family in ProxyMetrics.descriptions where parsed.types[family.name] != nil {
            #expect(parsed.helps.contains(family.name), "\(family.name) has no HELP")
        }
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
