import Foundation
import IsthmusFakeAPIServer
import IsthmusKubeClient
import IsthmusKubeTypes
import IsthmusTestSupport
import Testing

@Suite struct WatchTests {
    @Test func watchSeesChangesFromAResourceVersion() async throws {
        let kube = try await KubeTestServer.start()
        try kube.server.create(resource: "configmaps", object: configMap("before"))
        let list = try await kube.client.list(.configMaps, namespace: "default")
        let watch = try await kube.client.watch(.configMaps, namespace: "default", resourceVersion: list.resourceVersion)

        try kube.server.create(resource: "configmaps", object: configMap("w", data: ["k": "1"]))
        try kube.server.mergePatch(resource: "configmaps", namespace: "default", name: "w", patch: .object([("data", .object([("k", .string("2"))]))]))
        try kube.server.delete(resource: "configmaps", namespace: "default", name: "w")
        try kube.server.create(resource: "configmaps", object: configMap("elsewhere", namespace: "kube-system"))

        var seen: [String] = []
        var lastRV: UInt64 = UInt64(list.resourceVersion) ?? 0
        for try await event in watch {
            let name = event.object?.value(at: ["metadata", "name"])?.stringValue ?? ""
            seen.append("\(event.type.rawValue) \(name) \(event.object?.value(at: ["data", "k"])?.stringValue ?? "-")")
            let rv = try #require(event.resourceVersion.flatMap(UInt64.init))
            #expect(rv > lastRV)
            lastRV = rv
            if seen.count == 3 { break }
        }
        // `before` predates the resourceVersion; `elsewhere` is in another namespace.
        #expect(seen == ["ADDED w 1", "MODIFIED w 2", "DELETED w 2"])
        // Leaving the loop dropped the sequence, which closes the stream.
        await eventually("the watch to close", deadline: .seconds(60)) { kube.server.openWatchCount == 0 }
        try await kube.shutdown()
    }

    @Test func cancellingTheConsumerClosesTheHTTPStream() async throws {
        let kube = try await KubeTestServer.start()
        let started = AsyncStream<Void>.makeStream()
        let client = kube.client, continuation = started.continuation
        let consumer = Task { [client, continuation] in
            let watch = try await client.watch(.secrets, allowWatchBookmarks: false)
            continuation.yield()
            var count = 0
            for try await _ in watch { count += 1 }
            return count
        }
        var iterator = started.stream.makeAsyncIterator()
        await iterator.next()
        await eventually("the watch to open", deadline: .seconds(60)) { kube.server.openWatchCount == 1 }
        consumer.cancel()
        await eventually("the watch to close after cancel", deadline: .seconds(60)) { kube.server.openWatchCount == 0 }
        let result = await consumer.result
        // Either the iteration saw the cancellation, or it ended: it does not hang.
        if case .failure(let error) = result {
            #expect((error as? KubeClientError).map { if case .cancelled = $0 { true } else { false } } ?? false, "\(error)")
        }
        try await kube.shutdown()
    }

    @Test func bookmarksAndServerTimeout() async throws {
        let kube = try await KubeTestServer.start(bookmarkInterval: .milliseconds(200))
        let watch = try await kube.client.watch(.configMaps, resourceVersion: String(kube.server.resourceVersion),
                                                allowWatchBookmarks: true, timeoutSeconds: 2)
        var bookmarks = 0
        for try await event in watch {
            if case .bookmark = event {
                bookmarks += 1
                #expect(event.resourceVersion != nil)
            }
        }
        // The stream ended by itself at timeoutSeconds, after some bookmarks.
        #expect(bookmarks >= 1)
        try await kube.shutdown()
    }

    @Test func tooOldResourceVersionIsAnExpiredErrorEvent() async throws {
        let kube = try await KubeTestServer.start(historyCapacity: 5)
        let oldRV = String(kube.server.resourceVersion)
        for i in 0..<10 { try kube.server.create(resource: "configmaps", object: configMap("c\(i)")) }
        let watch = try await kube.client.watch(.configMaps, resourceVersion: oldRV)
        var events: [KubeWatchEvent] = []
        for try await event in watch { events.append(event) }
        guard case .error(let status) = try #require(events.last) else {
            Issue.record("expected an ERROR event, got \(events)")
            return
        }
        #expect(status.code == 410)
        #expect(status.reason == "Expired")
        try await kube.shutdown()
    }

    @Test func watchRequestErrorsAreThrownBeforeTheStream() async throws {
        let kube = try await KubeTestServer.start()
        var faults = FaultInjection()
        faults.errorFraction = 1
        faults.errorStatusCode = 429
        kube.server.setFaults(faults)
        await #expect { _ = try await kube.client.watch(.configMaps) } throws: { error in
            let e = error as! KubeClientError
            return e.isTooManyRequests && e.retryAfter == .seconds(1)
        }
        try await kube.shutdown()
    }
}
