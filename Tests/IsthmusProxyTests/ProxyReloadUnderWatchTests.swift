import Foundation
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
    @Test("a peer's key rotated under open watches: the watches go on, K2 tokens work, K1 tokens get 401")
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
            // The K1 token is verified and cached before the rotation.
            let beforeRotation = try await h.curl("/api/v1/namespaces/demo/services", token: h.peerToken)
            #expect(beforeRotation.code == 200, "\(beforeRotation)")
            #expect(cache.statistics.insertions >= 1)

            h.proxy.replaceAdmission(try admission(
                peers: TrustedPeers([TrustedPeer(clusterUUID: testPeerUUID, keys: [newKey.publicKey], rootCA: rootCA)]),
                policyDirectory: repositoryPolicies, cache: cache))

            // A change made after the rotation reaches both open watches.
            try label(h.upstream, service: "web", value: "after-rotation")
            for (index, watch) in watches.enumerated() {
                await eventually("watch \(index) received the event made after the rotation", deadline: .seconds(30)) {
                    contents(watch.output).contains("after-rotation")
                }
            }
            #expect(h.upstream.openWatchCount == 2)

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

            // A fresh K2 token works, with kubectl over HTTP/2.
            let now = Int64(Date().timeIntervalSince1970)
            let newToken = mint(TokenClaims(subject: testPeerUUID, audience: localClusterUUID, scope: .api,
                                            notBefore: now - 10, expiresAt: now + 3600), with: newKey)
            try h.writeKubeconfig(token: newToken, name: "rotated")
            let rotated = try await h.kubectl("get", "svc", "-n", "demo", kubeconfig: "rotated")
            #expect(rotated.status == 0 && rotated.stdout.contains("web"), "\(rotated)")

            // The watches opened with K1 are still live and still relaying.
            try label(h.upstream, service: "db", value: "still-watching")
            for (index, watch) in watches.enumerated() {
                await eventually("watch \(index) still receives events", deadline: .seconds(30)) { contents(watch.output).contains("still-watching") }
                #expect(watch.process.isRunning, "watch \(index) ended")
            }
            for watch in watches { await h.kill(watch.process) }
            await eventually("the watches closed upstream", deadline: .seconds(30)) { h.upstream.openWatchCount == 0 }
        }
        await h.stop()
    }

    @Test("the policy edited under an open services watch: the watch goes on, a dropped resource is 403, an added one allowed")
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
            await eventually("both watches are open upstream", deadline: .seconds(30)) { h.upstream.openWatchCount == 2 }

            h.proxy.replaceAdmission(try admission(peers: peers, policyDirectory: after.path, cache: VerifiedTokenCache()))

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
