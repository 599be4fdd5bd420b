import Foundation
import IsthmusFakeAPIServer
import IsthmusKubeTypes
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing

/// One watcher's record, kept on its connection's event loop.
final class WatchTally: @unchecked Sendable {
    private let lock = NIOLock()
    private var rvs: [UInt64] = []
    private var other = 0
    private(set) var ended = false

    func line(_ bytes: [UInt8]) {
        // Cheap extraction: the first "resourceVersion":"N" is the object's.
        guard bytes.starts(with: Array(#"{"type":"MODIFIED""#.utf8)), let rv = Self.resourceVersion(bytes) else {
            lock.withLock { other += 1 }
            return
        }
        lock.withLock { rvs.append(rv) }
    }

    func end() { lock.withLock { ended = true } }

    var snapshot: (rvs: [UInt64], other: Int, ended: Bool) { lock.withLock { (rvs, other, ended) } }
    var count: Int { lock.withLock { rvs.count } }

    static let needle = Array(#""resourceVersion":""#.utf8)
    static func resourceVersion(_ bytes: [UInt8]) -> UInt64? {
        bytes.withUnsafeBufferPointer { b -> UInt64? in
            let n = needle.count
            guard b.count > n else { return nil }
            var i = 0
            outer: while i + n < b.count {
                for k in 0..<n where b[i + k] != needle[k] {
                    i += 1
                    continue outer
                }
                var j = i + n
                var value: UInt64 = 0
                while j < b.count, b[j] >= 0x30, b[j] <= 0x39 {
                    value = value * 10 + UInt64(b[j] - 0x30)
                    j += 1
                }
                return value
            }
            return nil
        }
    }
}

/// The scale of the fan-out test. `scripts/test` runs the full one
/// (1,000 watchers, 1,000 updates/s for 10 s) in a release build; the debug
/// run uses 100 watchers and 1,000 updates at the same rate, and says so.
struct FanOutScale: CustomStringConvertible {
    var watchers: Int
    var updates: Int
    var perSecond: Int

    static var current: FanOutScale {
        if ProcessInfo.processInfo.environment["ISTHMUS_FANOUT_FULL"] == "1" {
            return FanOutScale(watchers: 1000, updates: 10_000, perSecond: 1000)
        }
        if let w = ProcessInfo.processInfo.environment["ISTHMUS_FANOUT_WATCHERS"].flatMap(Int.init) {
            let u = ProcessInfo.processInfo.environment["ISTHMUS_FANOUT_UPDATES"].flatMap(Int.init) ?? 100
            return FanOutScale(watchers: w, updates: u, perSecond: 1000)
        }
        return FanOutScale(watchers: 100, updates: 1000, perSecond: 1000)
    }

    var description: String { "\(watchers) watchers, \(updates) updates at \(perSecond)/s" }
}

@Suite("Watch fan-out", .serialized)
struct FanOutTests {
    @Test("many concurrent watches and a steady writer: every watcher sees every event, in order")
    func fanOut() async throws {
        let scale = FanOutScale.current
        print("fan-out scale: \(scale)")
        var config = FakeAPIServer.Configuration(tokens: ["kubectl-test-token": "admin"])
        config.plainHTTP = true
        config.threads = 2
        config.historyCapacity = scale.updates * 2
        let server = try await FakeAPIServer.start(config)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let client = TestHTTPClient(group: group, port: server.port)
        try server.create(resource: "configmaps", object: configMap("hot", 0))
        let start = server.resourceVersion

        var tallies: [WatchTally] = []
        var channels: [any Channel] = []
        for _ in 0..<scale.watchers {
            let tally = WatchTally()
            tallies.append(tally)
            channels.append(try await client.open(.GET, "/api/v1/namespaces/default/configmaps?watch=1&resourceVersion=\(start)&timeoutSeconds=600",
                                                  onLine: { tally.line($0) }, onEnd: { tally.end() }))
        }
        await eventually("all watches are open") { server.openWatchCount == scale.watchers }

        // The writer: `perSecond` updates a second, in ticks of 10 ms.
        var expected: [UInt64] = []
        expected.reserveCapacity(scale.updates)
        let perTick = max(1, scale.perSecond / 100)
        let clock = ContinuousClock()
        var next = clock.now
        var written = 0
        while written < scale.updates {
            for _ in 0..<min(perTick, scale.updates - written) {
                let updated = try server.mergePatch(resource: "configmaps", namespace: "default", name: "hot",
                                                    patch: .object([("data", .object([("v", .string(String(written + 1)))]))]))
                expected.append(UInt64(updated.value(at: ["metadata", "resourceVersion"])?.stringValue ?? "") ?? 0)
                written += 1
            }
            next = next.advanced(by: .milliseconds(10))
            try await clock.sleep(until: next)
        }

        await eventually("every watcher received every event", deadline: .seconds(scale.watchers >= 1000 ? 600 : 60)) {
            tallies.allSatisfy { $0.count >= scale.updates || $0.snapshot.ended }
        }
        var lossy = 0
        for tally in tallies {
            let s = tally.snapshot
            if s.rvs != expected || s.ended || s.other != 0 { lossy += 1 }
        }
        let first = tallies.first?.snapshot
        #expect(lossy == 0, "\(lossy) of \(scale.watchers) watchers missed, reordered or duplicated events; first: \(first?.rvs.count ?? 0) events, \(first?.other ?? 0) others, ended \(first?.ended ?? false), expected \(expected.count) from \(expected.first ?? 0), got \(first?.rvs.prefix(3) ?? []) ... \(first?.rvs.suffix(3) ?? []), start \(start)")
        for channel in channels { try? await channel.close() }
        await eventually("all watches closed") { server.openWatchCount == 0 }
        try await server.shutdown()
        try await group.shutdownGracefully()
    }
}
