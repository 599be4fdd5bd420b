import Foundation
import IsthmusAdmission
import IsthmusFakeAPIServer
import IsthmusKubeTypes
import IsthmusPolicy
import IsthmusProxy
import IsthmusTestSupport
import IsthmusTrust
import Testing

private func label(_ upstream: FakeAPIServer, service: String, value: String) throws {
    try upstream.mergePatch(resource: "services", namespace: "demo", name: service,
                            patch: .object([("metadata", .object([("labels", .object([("step", .string(value))]))]))]))
}

private func contents(_ file: URL) -> String { (try? String(contentsOf: file, encoding: .utf8)) ?? "" }

/// An admission as a reload builds it: the peers and policy given, this
/// cluster's UUID, the default leeway, and the cache the proxy already uses
/// (a reload keeps it warm; its epoch must still drop what the new peers refuse).
private func admission(peers: TrustedPeers, policyDirectory: String, cache: VerifiedTokenCache) throws -> AdmissionPipeline {
    AdmissionPipeline(verifier: TokenVerifier(localClusterUUID: localClusterUUID, peers: peers),
                      policy: try PolicySet.load(directory: policyDirectory), cache: cache)
}

/// `curl -N` watches through the proxy, one per protocol, writing to files.
private func openWatches(_ h: ProxyHarness, token: String, path: String) throws -> [(process: Process, output: URL)] {
    var watches: [(Process, URL)] = []
    for http1 in [false, true] {
        let output = h.directory.appendingPathComponent("watch-\(UUID().uuidString).out")
        _ = FileManager.default.createFile(atPath: output.path, contents: nil)
        let (p, _, _) = h.process(ProxyHarness.curlPath, ["-N"] + h.curlArguments(path, http1: http1, token: token))
        p.standardOutput = try FileHandle(forWritingTo: output)
        try p.run()
        watches.append((p, output))
    }
    return watches
}

@Suite("Proxy: peers and policy replaced while watches are open", .serialized)
struct ProxyReloadUnderWatchTests {
    @Test("a peer's key rotated under open watches: kept while both keys are listed, the K1 watches end once K1 is gone, K2 tokens work")
    func keyRotation() async throws {
        let h = try await ProxyHarness.start()
        do {
            let oldKey = h.peerKey
            let newKey = SigningKeyPair()
            let rootCA = h.upstream.caCertificatePEM ?? ""
            // Our own cache from the start, so the rotation reuses it as a reload would.
            let cache = VerifiedTokenCache()
            h.proxy.replaceAdmission(try admission(
                peers: TrustedPeers([TrustedPeer(clusterUUID: testPeerUUID, keys: [oldKey.publicKey], rootCA: rootCA)]),
                policyDirectory: repositoryPolicies, cache: cache))

            let watches = try openWatches(h, token: h.peerToken, path: "/api/v1/namespaces/demo/services?watch=1")
            await eventually("both watches are open upstream", deadline: .seconds(30)) { h.upstream.openWatchCount == 2 }
            let beforeRotation = try await h.curl("/api/v1/namespaces/demo/services", token: h.peerToken)
            #expect(beforeRotation.code == 200, "\(beforeRotation)")
            #expect(cache.statistics.insertions >= 1)

            // The rotation's first half: both keys trusted. K1's watches go on.
            h.proxy.replaceAdmission(try admission(
                peers: TrustedPeers([TrustedPeer(clusterUUID: testPeerUUID, keys: [oldKey.publicKey, newKey.publicKey], rootCA: rootCA)]),
                policyDirectory: repositoryPolicies, cache: cache))
            try label(h.upstream, service: "web", value: "during-rotation")
            for (index, watch) in watches.enumerated() {
                await eventually("watch \(index) received the event made with both keys trusted", deadline: .seconds(30)) {
                    contents(watch.output).contains("during-rotation")
                }
                #expect(watch.process.isRunning, "watch \(index) ended")
            }

            // K1 rotated out: every watch opened with a K1 token ends, cleanly.
            h.proxy.replaceAdmission(try admission(
                peers: TrustedPeers([TrustedPeer(clusterUUID: testPeerUUID, keys: [newKey.publicKey], rootCA: rootCA)]),
                policyDirectory: repositoryPolicies, cache: cache))
            for (index, watch) in watches.enumerated() {
                await eventually("watch \(index) ended after K1 was rotated out", deadline: .seconds(10)) { !watch.process.isRunning }
                #expect(watch.process.terminationStatus == 0, "watch \(index): a clean end, not a reset")
            }
            await eventually("the watches closed upstream", deadline: .seconds(10)) { h.upstream.openWatchCount == 0 }
            #expect(h.proxy.value(h.proxy.metrics.watchesRevoked, ["key_revoked"]) == 2)
            try label(h.upstream, service: "web", value: "after-rotation")
            try await Task.sleep(for: .milliseconds(300))
            for watch in watches { #expect(!contents(watch.output).contains("after-rotation")) }

            // New requests with the K1 token: 401, never forwarded, cached or not.
            h.upstream.clearRecentRequests()
            for http1 in [false, true] {
                let old = try await h.curl("/api/v1/namespaces/demo/services", http1: http1, token: h.peerToken)
                #expect(old.code == 401 && old.body.contains(#""reason":"Unauthorized""#), "\(old)")
                let oldWatch = try await h.curl("/api/v1/namespaces/demo/services?watch=1&timeoutSeconds=1", http1: http1,
                                                token: h.peerToken)
                #expect(oldWatch.code == 401, "\(oldWatch)")
            }
            let oldKubectl = try await h.kubectl("get", "svc", "-n", "demo")
            #expect(oldKubectl.status != 0 && oldKubectl.stderr.contains("You must be logged in to the server"), "\(oldKubectl)")
            #expect(!h.upstream.recentRequests.contains { $0.uri.hasPrefix("/api") })

            // A fresh K2 token works, with kubectl over HTTP/2, and its watch is not touched by a reload that keeps K2.
            let now = Int64(Date().timeIntervalSince1970)
            let newToken = mint(TokenClaims(subject: testPeerUUID, audience: localClusterUUID, scope: .api,
                                            notBefore: now - 10, expiresAt: now + 3600), with: newKey)
            try h.writeKubeconfig(token: newToken, name: "rotated")
            let rotated = try await h.kubectl("get", "svc", "-n", "demo", kubeconfig: "rotated")
            #expect(rotated.status == 0 && rotated.stdout.contains("web"), "\(rotated)")
            let k2Watches = try openWatches(h, token: newToken, path: "/api/v1/namespaces/demo/services?watch=1")
            await eventually("both K2 watches are open upstream", deadline: .seconds(30)) { h.upstream.openWatchCount == 2 }
            h.proxy.replaceAdmission(try admission(
                peers: TrustedPeers([TrustedPeer(clusterUUID: testPeerUUID, keys: [newKey.publicKey], rootCA: rootCA)]),
                policyDirectory: repositoryPolicies, cache: cache))
            try label(h.upstream, service: "db", value: "still-watching")
            for (index, watch) in k2Watches.enumerated() {
                await eventually("K2 watch \(index) still receives events", deadline: .seconds(30)) { contents(watch.output).contains("still-watching") }
                #expect(watch.process.isRunning, "K2 watch \(index) ended")
            }
            for watch in k2Watches { await h.kill(watch.process) }
            await eventually("the watches closed upstream", deadline: .seconds(30)) { h.upstream.openWatchCount == 0 }
        }
        await h.stop()
    }

    @Test("a peer removed from the peers file: its watches end within a reload interval, another peer's stay")
    func peerRemovedByFile() async throws {
        let h = try await ProxyHarness.start(configure: { $0.reloadInterval = .milliseconds(200) })
        do {
            let rootCA = h.upstream.caCertificatePEM ?? ""
            let otherUUID = "3c1f8a5e-9b2d-4f6a-8e7c-1d2b3a4c5e6f"
            let otherKey = SigningKeyPair()
            let peersFile = h.directory.appendingPathComponent("peers.json")
            let both = try TrustedPeers([TrustedPeer(clusterUUID: testPeerUUID, keys: [h.peerKey.publicKey], rootCA: rootCA),
                                         TrustedPeer(clusterUUID: otherUUID, keys: [otherKey.publicKey], rootCA: rootCA)])
            try both.encodedJSONString().write(to: peersFile, atomically: true, encoding: .utf8)
            await eventually("the proxy loaded both peers", deadline: .seconds(10)) { h.proxy.reloadStatus[.peers].successes >= 1 }
            let now = Int64(Date().timeIntervalSince1970)
            let otherToken = mint(TokenClaims(subject: otherUUID, audience: localClusterUUID, scope: .api,
                                              notBefore: now - 10, expiresAt: now + 3600), with: otherKey)
            let removed = try openWatches(h, token: h.peerToken, path: "/api/v1/namespaces/demo/services?watch=1")
            let kept = try openWatches(h, token: otherToken, path: "/api/v1/namespaces/demo/services?watch=1")
            await eventually("four watches are open upstream", deadline: .seconds(30)) { h.upstream.openWatchCount == 4 }

            let only = try TrustedPeers([TrustedPeer(clusterUUID: otherUUID, keys: [otherKey.publicKey], rootCA: rootCA)])
            try only.encodedJSONString().write(to: peersFile, atomically: true, encoding: .utf8)
            let removedAt = ContinuousClock.now
            for (index, watch) in removed.enumerated() {
                await eventually("the removed peer's watch \(index) ended", deadline: .seconds(10)) { !watch.process.isRunning }
                #expect(watch.process.terminationStatus == 0)
            }
            // One poll of 200 ms, then the end goes out at once; generous for a loaded machine.
            #expect(ContinuousClock.now - removedAt < .seconds(5))
            #expect(h.proxy.value(h.proxy.metrics.watchesRevoked, ["peer_removed"]) == 2)
            try label(h.upstream, service: "api", value: "after-removal")
            for (index, watch) in kept.enumerated() {
                await eventually("the other peer's watch \(index) still receives events", deadline: .seconds(30)) {
                    contents(watch.output).contains("after-removal")
                }
                #expect(watch.process.isRunning)
            }
            for watch in removed { #expect(!contents(watch.output).contains("after-removal")) }
            let again = try await h.curl("/api/v1/namespaces/demo/services?watch=1", token: h.peerToken)
            #expect(again.code == 401, "\(again)")
            for watch in kept { await h.kill(watch.process) }
        }
        await h.stop()
    }

    @Test("a watch ends when its token expires; a watch with a longer-lived token stays")
    func tokenExpiry() async throws {
        let h = try await ProxyHarness.start(configure: { $0.tokenLeeway = .zero })
        do {
            let now = Int64(Date().timeIntervalSince1970)
            let shortToken = mint(TokenClaims(subject: testPeerUUID, audience: localClusterUUID, scope: .api,
                                              notBefore: now - 10, expiresAt: now + 3), with: h.peerKey)
            let expiring = try openWatches(h, token: shortToken, path: "/api/v1/namespaces/demo/services?watch=1")
            let lasting = try openWatches(h, token: h.peerToken, path: "/api/v1/namespaces/demo/services?watch=1")
            await eventually("four watches are open upstream", deadline: .seconds(30)) { h.upstream.openWatchCount == 4 }
            for (index, watch) in expiring.enumerated() {
                await eventually("the short token's watch \(index) ended", deadline: .seconds(15)) { !watch.process.isRunning }
                #expect(watch.process.terminationStatus == 0)
            }
            #expect(Int64(Date().timeIntervalSince1970) >= now + 3, "not before exp")
            #expect(h.proxy.value(h.proxy.metrics.watchesRevoked, ["token_expired"]) == 2)
            try label(h.upstream, service: "web", value: "after-expiry")
            for watch in lasting {
                await eventually("the long-lived token's watch still receives events", deadline: .seconds(30)) {
                    contents(watch.output).contains("after-expiry")
                }
                #expect(watch.process.isRunning)
            }
            for watch in lasting { await h.kill(watch.process) }
        }
        await h.stop()
    }

    @Test("the policy edited under open watches: the services watches go on, the endpoints watches end, a dropped resource is 403, an added one allowed")
    func policyEdit() async throws {
        let policies = FileManager.default.temporaryDirectory.appendingPathComponent("isthmus-policies-\(UUID().uuidString)")
        let before = policies.appendingPathComponent("before"), after = policies.appendingPathComponent("after")
        let discovery = try String(contentsOfFile: repositoryPolicies + "/discovery.yaml", encoding: .utf8)
        for (directory, resources) in [(before, "[services, endpoints]"), (after, "[services, configmaps]")] {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            try discovery.write(to: directory.appendingPathComponent("discovery.yaml"), atomically: true, encoding: .utf8)
            try """
                rules:
                  - apiGroups: [""]
                    resources: \(resources)
                    verbs: [get, list, watch]

                """.write(to: directory.appendingPathComponent("reader.yaml"), atomically: true, encoding: .utf8)
        }
        defer { try? FileManager.default.removeItem(at: policies) }
        let h = try await ProxyHarness.start(configure: { $0.policyDirectory = before.path })
        do {
            let peers = try TrustedPeers([TrustedPeer(clusterUUID: testPeerUUID, keys: [h.peerKey.publicKey],
                                                  rootCA: h.upstream.caCertificatePEM ?? "")])
            let endpointsBefore = try await h.kubectl("get", "endpoints", "-n", "demo")
            #expect(endpointsBefore.status == 0, "\(endpointsBefore)")
            let configmapsBefore = try await h.kubectl("get", "configmaps", "-n", "demo")
            #expect(configmapsBefore.status != 0 && configmapsBefore.stderr.contains("is forbidden"), "\(configmapsBefore)")

            let watches = try openWatches(h, token: h.peerToken, path: "/api/v1/namespaces/demo/services?watch=1")
            let endpointWatches = try openWatches(h, token: h.peerToken, path: "/api/v1/namespaces/demo/endpoints?watch=1")
            await eventually("four watches are open upstream", deadline: .seconds(30)) { h.upstream.openWatchCount == 4 }

            h.proxy.replaceAdmission(try admission(peers: peers, policyDirectory: after.path, cache: VerifiedTokenCache()))
            for (index, watch) in endpointWatches.enumerated() {
                await eventually("endpoints watch \(index) ended: the policy no longer allows it", deadline: .seconds(10)) {
                    !watch.process.isRunning
                }
            }
            #expect(h.proxy.value(h.proxy.metrics.watchesRevoked, ["policy"]) == 2)

            try label(h.upstream, service: "api", value: "after-policy-edit")
            for (index, watch) in watches.enumerated() {
                await eventually("watch \(index) received the event made after the edit", deadline: .seconds(30)) {
                    contents(watch.output).contains("after-policy-edit")
                }
                #expect(watch.process.isRunning, "watch \(index) ended")
            }

            h.upstream.clearRecentRequests()
            let endpointsAfter = try await h.kubectl("get", "endpoints", "-n", "demo")
            #expect(endpointsAfter.status != 0, "\(endpointsAfter)")
            #expect(endpointsAfter.stderr.contains(
                #"endpoints is forbidden: peer "\#(testPeerUUID)" cannot list resource "endpoints" in API group "" in the namespace "demo""#),
                "\(endpointsAfter)")
            let watchEndpoints = try await h.curl("/api/v1/namespaces/demo/endpoints?watch=1", token: h.peerToken)
            #expect(watchEndpoints.code == 403 && watchEndpoints.body.contains(#""reason":"Forbidden""#), "\(watchEndpoints)")
            #expect(!h.upstream.recentRequests.contains { $0.uri.contains("endpoints") })

            let configmapsAfter = try await h.kubectl("get", "configmaps", "-n", "demo")
            #expect(configmapsAfter.status == 0 && configmapsAfter.stdout.contains("settings"), "\(configmapsAfter)")
            #expect(h.upstream.recentRequests.contains { $0.uri.hasPrefix("/api/v1/namespaces/demo/configmaps") })

            for watch in watches { await h.kill(watch.process) }
            await eventually("the watches closed upstream", deadline: .seconds(30)) { h.upstream.openWatchCount == 0 }
        }
        await h.stop()
    }
}
