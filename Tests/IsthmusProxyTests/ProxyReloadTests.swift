import Foundation
import IsthmusFakeAPIServer
@testable import IsthmusProxy
import IsthmusTestSupport
import IsthmusTrust
import Testing

private let otherPeerUUID = "5c7d1e2f-3a4b-4c5d-8e9f-0a1b2c3d4e5f"

extension ProxyHarness {
    var peersFile: URL { directory.appendingPathComponent("peers.json") }

    func token(for peer: String, key: SigningKeyPair) -> String {
        let now = Int64(Date().timeIntervalSince1970)
        return mint(TokenClaims(subject: peer, audience: localClusterUUID, scope: .api, notBefore: now - 10,
                                expiresAt: now + 3600), with: key)
    }

    func writePeers(_ peers: [(String, [SigningKeyPair])]) throws {
        let file = try TrustedPeers(peers.map { uuid, keys in
            try TrustedPeer(clusterUUID: uuid, keys: keys.map(\.publicKey), rootCA: upstream.caCertificatePEM ?? "")
        })
        try file.encodedJSONString().write(to: peersFile, atomically: true, encoding: .utf8)
    }
}

@Suite("Proxy hot reload of peers and policy", .serialized)
struct ProxyReloadTests {
    @Test("an edited peers file applies within the poll interval: new peer and key work, the removed key fails and its open watch ends")
    func peersReload() async throws {
        let h = try await ProxyHarness.start(configure: { $0.reloadInterval = .milliseconds(200) })
        let services = "/api/v1/namespaces/demo/services"
        let newKey = SigningKeyPair(), otherKey = SigningKeyPair()
        let otherToken = h.token(for: otherPeerUUID, key: otherKey)
        #expect(try await h.curl(services, token: otherToken).code == 401)

        // A watch opened with the key about to be removed.
        let outFile = h.directory.appendingPathComponent("reload-watch.out")
        FileManager.default.createFile(atPath: outFile.path, contents: nil)
        let (watch, _, _) = h.process(ProxyHarness.curlPath, ["-N"] + h.curlArguments(
            services + "?watch=1&fieldSelector=metadata.name%3Dweb", http1: false, token: h.peerToken))
        watch.standardOutput = try FileHandle(forWritingTo: outFile)
        try watch.run()
        await eventually("the watch is open upstream", deadline: .seconds(30)) { h.upstream.openWatchCount == 1 }

        try h.writePeers([(testPeerUUID, [newKey]), (otherPeerUUID, [otherKey])])
        await eventually("the new peer's token is accepted", deadline: .seconds(20)) {
            (try? await h.curl(services, token: otherToken).code) == 200
        }
        #expect(try await h.curl(services, token: h.token(for: testPeerUUID, key: newKey)).code == 200)
        let removed = try await h.curl(services, token: h.peerToken)
        #expect(removed.code == 401, "a token of the removed key was still accepted: \(removed)")

        // The watch admitted with the removed key ends with it, cleanly.
        await eventually("the watch opened with the removed key ended", deadline: .seconds(10)) { !watch.isRunning }
        #expect(watch.terminationStatus == 0)
        await eventually("the watch closed upstream", deadline: .seconds(10)) { h.upstream.openWatchCount == 0 }
        #expect(h.proxy.value(h.proxy.metrics.watchesRevoked, ["key_revoked"]) == 1)
        let status = h.proxy.reloadStatus[.peers]
        #expect(status.successes >= 1 && status.failures == 0 && status.lastError == nil, "\(status)")
        await h.stop()
    }

    @Test("a broken peers file keeps the previous peers and shows in reloadStatus")
    func brokenPeers() async throws {
        let h = try await ProxyHarness.start(configure: { $0.reloadInterval = .milliseconds(200) })
        try #"{"peers": [{"clusterUUID": "x y"}]}"#.write(to: h.peersFile, atomically: true, encoding: .utf8)
        await eventually("the broken peers file is refused", deadline: .seconds(30)) { h.proxy.reloadStatus[.peers].failures == 1 }
        let status = h.proxy.reloadStatus[.peers]
        #expect(status.lastError != nil && status.successes == 0, "\(status)")
        // Still ready (the previous peers serve), with the refusal in the detail and a metric.
        let readiness = h.proxy.readiness
        #expect(readiness.isReady)
        #expect(readiness.body(verbose: true).contains("[+]peers ok (warning: last reload refused: "), "\(readiness.body(verbose: true))")
        #expect(h.proxy.exposition.contains(#"isthmus_proxy_reloads_total{source="peers",result="failure"} 1"#))
        #expect(try await h.curl("/api/v1/namespaces/demo/services", token: h.peerToken).code == 200)
        await h.stop()
    }

    @Test("a broken policy file keeps the old policy and shows in reloadStatus; a good edit applies to new requests")
    func policyReload() async throws {
        let policies = FileManager.default.temporaryDirectory.appendingPathComponent("isthmus-policies-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: policies, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: policies) }
        for name in ["discovery.yaml", "istio-reader.yaml"] {
            try FileManager.default.copyItem(atPath: repositoryPolicies + "/" + name, toPath: policies.appendingPathComponent(name).path)
        }
        let h = try await ProxyHarness.start(configure: {
            $0.policyDirectory = policies.path
            $0.reloadInterval = .milliseconds(200)
        })
        let services = "/api/v1/namespaces/demo/services"
        #expect(try await h.curl(services, token: h.peerToken).code == 200)

        let broken = policies.appendingPathComponent("broken.yaml")
        try "rules:\n  - apiGroups: [\"\"]\n    resources: [pods]\n    verbs: [delete]\n".write(to: broken, atomically: true, encoding: .utf8)
        await eventually("the broken policy is refused", deadline: .seconds(30)) { h.proxy.reloadStatus[.policy].failures == 1 }
        let refused = h.proxy.reloadStatus[.policy]
        #expect(refused.lastError?.contains("broken.yaml:4:") == true && refused.lastError?.contains("rules[0].verbs[0]") == true,
                "\(refused)")
        #expect(try await h.curl(services, token: h.peerToken).code == 200, "the previous policy no longer applies")

        // A good edit: services are no longer listed.
        try FileManager.default.removeItem(at: broken)
        try "rules:\n  - apiGroups: [\"\"]\n    resources: [configmaps]\n    verbs: [get, list]\n"
            .write(to: policies.appendingPathComponent("istio-reader.yaml"), atomically: true, encoding: .utf8)
        await eventually("the edited policy applies to new requests", deadline: .seconds(30)) {
            (try? await h.curl(services, token: h.peerToken).code) == 403
        }
        #expect(try await h.curl("/api/v1/namespaces/demo/configmaps", token: h.peerToken).code == 200)
        let applied = h.proxy.reloadStatus[.policy]
        #expect(applied.successes >= 1 && applied.lastError == nil && applied.failures == 1, "\(applied)")
        await h.stop()
    }

    @Test("reload() re-reads at once, whatever the poll interval")
    func forcedReload() async throws {
        let h = try await ProxyHarness.start(configure: { $0.reloadInterval = .seconds(3600) })
        let otherKey = SigningKeyPair()
        try h.writePeers([(testPeerUUID, [h.peerKey]), (otherPeerUUID, [otherKey])])
        await h.proxy.reload()
        #expect(try await h.curl("/api/v1/namespaces/demo/services", token: h.token(for: otherPeerUUID, key: otherKey)).code == 200)
        #expect(h.proxy.reloadStatus[.peers].successes == 1)
        await h.stop()
    }

    @Test("a source reloads when its contents change or when forced; the same bad contents are not retried")
    func changeDetection() {
        var detector = ReloadChangeDetector()
        var answers: [Bool] = []
        for (source, contents, forced) in [
            (ReloadSource.peers, [UInt8(1)], false),  // first sight
            (.peers, [1], false),  // unchanged
            (.peers, [2], false),  // changed (applied or refused alike)
            (.peers, [2], false),  // a refused file is not retried, nor logged, every poll
            (.peers, [2], true),  // SIGHUP
            (.policy, [2], false),  // sources are independent
        ] {
            answers.append(detector.shouldReload(source, contents: contents, forced: forced))
        }
        #expect(answers == [true, false, true, false, true, true])
    }

    @Test("reload status counts successes and failures and keeps the latest error until a success")
    func statusBookkeeping() {
        var status = ReloadStatus()
        let start = Date(timeIntervalSince1970: 1000)
        status.loaded(.policy, at: start, initial: true)
        #expect(status[.policy].successes == 0 && status[.policy].lastSuccess == start)
        status.refused(.policy, error: "a.yaml:1:1: rules: missing", at: start.addingTimeInterval(5))
        #expect(status[.policy].failures == 1 && status[.policy].lastError == "a.yaml:1:1: rules: missing")
        #expect(status[.policy].lastSuccess == start)
        status.loaded(.policy, at: start.addingTimeInterval(9))
        #expect(status[.policy].successes == 1 && status[.policy].lastError == nil && status[.policy].failures == 1)
        #expect(status[.peers] == ReloadStatus.Source())
    }
}
