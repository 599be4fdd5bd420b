import Foundation
import Synchronization
import IsthmusController
@testable import IsthmusControllerService
import IsthmusHTTP
import MetricsTestKit
import Testing

@Suite struct WakeupTests {
    @Test("a signal sent while nobody waits ends the next wait at once")
    func pendingSignal() async {
        let wakeup = Wakeup()
        wakeup.signal()
        let start = ContinuousClock.now
        await wakeup.wait(upTo: .seconds(600))
        #expect(ContinuousClock.now - start < .seconds(300))
    }

    @Test("a wait ends at its timeout without a signal, and leaves no signal behind")
    func timeout() async {
        let wakeup = Wakeup()
        await wakeup.wait(upTo: .milliseconds(50))
        // Had the timer's signal been kept, this wait would return at once.
        let done = Mutex(false)
        let task = Task {
            await wakeup.wait(upTo: .seconds(600))
            done.withLock { $0 = true }
        }
        try? await Task.sleep(for: .milliseconds(200))
        #expect(!done.withLock { $0 }, "a stale signal ended the wait")
        wakeup.signal()
        await task.value
    }

    @Test("a signal wakes a waiter")
    func wakesWaiter() async {
        let wakeup = Wakeup()
        let task = Task { await wakeup.wait(upTo: .seconds(600)) }
        try? await Task.sleep(for: .milliseconds(50))
        wakeup.signal()
        await task.value
    }
}

@Suite struct MetadataFetcherTests {
    @Test("a file:// endpoint reads DIR/public/public.json; a missing file is EndpointUnreachable")
    func fileEndpoint() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("isthmus-fetch-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("public"), withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try Data(#"{"clusterUUID":"x"}"#.utf8).write(to: dir.appendingPathComponent("public/public.json"))
        let spec = IstioMulticlusterSpec(endpoint: try MetadataEndpoint(parsing: "file://" + dir.path, field: "spec.metadataEndpoint"))
        let fetcher = MetadataFetcher()
        guard case .success(let response) = await fetcher.fetch(.publicDocument(spec)) else {
            Issue.record("the file was not read")
            return
        }
        #expect(response.status == 200 && response.body == Array(#"{"clusterUUID":"x"}"#.utf8))
        let missing = PeerMetadataRequest.privateDocument(spec, peerClusterUUID: "x",
                                                          local: LocalIdentity(clusterUUID: "y", signingKey: .init()), now: 0)
        guard case .failure(let failure) = await fetcher.fetch(missing) else {
            Issue.record("a missing file was read")
            return
        }
        #expect(failure.reason == "EndpointUnreachable")
    }

    @Test("a refused connection is EndpointUnreachable, not an HTTP status")
    func refusedConnection() async throws {
        let spec = IstioMulticlusterSpec(endpoint: try MetadataEndpoint(parsing: "http://127.0.0.1:1/metadata", field: "spec.metadataEndpoint"))
        guard case .failure(let failure) = await MetadataFetcher(timeout: .seconds(5)).fetch(.publicDocument(spec)) else {
            Issue.record("port 1 answered")
            return
        }
        #expect(failure.reason == "EndpointUnreachable")
        #expect(failure.description.lowercased().contains("refused"), "\(failure)")
    }
}

@Suite struct MetricsRegistryTests {
    @Test("counters add up per label set; each round's gauges replace the last, and a gone peer's series are destroyed")
    func seriesThroughSwiftMetrics() throws {
        let test = TestMetrics()
        let metrics = ControllerMetricsRegistry(factory: test)
        metrics.increment(ControllerMetrics.writes, ["kind": "Secret", "action": "create"])
        metrics.increment(ControllerMetrics.writes, ["action": "create", "kind": "Secret"])
        #expect(try test.expectCounter(ControllerMetrics.writes, [("action", "create"), ("kind", "Secret")]).totalValue == 2)

        metrics.recordSuccess(peer: "a", document: "public", at: 1_700_000_000)
        metrics.setPeerAPIUp(peer: "b", up: true)
        metrics.replaceGauges([MetricSample(name: ControllerMetrics.peerReady, labels: ["peer": "a"], value: 1),
                               MetricSample(name: ControllerMetrics.peerReady, labels: ["peer": "b"], value: 0)], peers: ["a", "b"])
        #expect(try test.expectMeter(ControllerMetrics.peerReady, [("peer", "b")]).lastValue == 0)
        #expect(try test.expectMeter(ControllerMetrics.metadataLastSuccess, [("document", "public"), ("peer", "a")]).lastValue == 1_700_000_000)

        metrics.replaceGauges([MetricSample(name: ControllerMetrics.peerReady, labels: ["peer": "a"], value: 1)], peers: ["a"])
        #expect(try test.expectMeter(ControllerMetrics.peerReady, [("peer", "a")]).lastValue == 1)
        #expect(throws: (any Error).self) { try test.expectMeter(ControllerMetrics.peerReady, [("peer", "b")]) }
        #expect(throws: (any Error).self) { try test.expectMeter(ControllerMetrics.peerAPIUp, [("peer", "b")]) }
        #expect(try test.expectMeter(ControllerMetrics.metadataLastSuccess, [("document", "public"), ("peer", "a")]).lastValue == 1_700_000_000)
    }

    @Test("the exposition types each family, escapes label values and drops a gone peer's series")
    func exposition() {
        let exporter = MetricsExporter()
        let metrics = ControllerMetricsRegistry(factory: exporter.factory)
        metrics.increment(ControllerMetrics.writes, ["action": "create", "kind": "Secret"])
        metrics.increment(ControllerMetrics.writes, ["action": "create", "kind": "Secret"])
        metrics.increment(ControllerMetrics.metadataFetchErrors,
                          ["peer": "p", "endpoint": "https://x/\"q\"", "document": "public", "reason": "HTTPError"])
        metrics.replaceGauges([MetricSample(name: ControllerMetrics.trustedPeers, labels: [:], value: 2),
                               MetricSample(name: ControllerMetrics.peerReady, labels: ["peer": "gone"], value: 1)], peers: ["gone"])
        metrics.replaceGauges([MetricSample(name: ControllerMetrics.trustedPeers, labels: [:], value: 2)], peers: [])
        let text = String(decoding: exporter.exposition(), as: UTF8.self)
        #expect(text.contains("# TYPE isthmus_controller_writes_total counter\nisthmus_controller_writes_total{action=\"create\",kind=\"Secret\"} 2\n"))
        #expect(text.contains(#"endpoint="https://x/\"q\"""#))
        #expect(text.contains("# TYPE isthmus_controller_trusted_peers gauge\nisthmus_controller_trusted_peers 2.0\n"), "\(text)")
        #expect(!text.contains(#"peer="gone""#), "\(text)")
    }
}
