import IsthmusPolicy
import IsthmusAdmission
import IsthmusRequestInfo
import IsthmusTrust
import Testing

private let local = "0b4e3f66-7a2d-4e55-8f0c-5d1e9b7c3a22"
private let peerUUID = "8d5f5d2e-1c1a-4a8e-9a53-2f6f4a3d2c11"
private let now: Int64 = 1_800_000_000
private let peerKey = SigningKeyPair()
private let rootCA = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"

private let policiesDirectory: String = {
    var parts = #filePath.split(separator: "/", omittingEmptySubsequences: false)
    parts.removeLast(3)  // Tests/IsthmusAdmissionTests/AdmissionPipelineTests.swift
    return parts.joined(separator: "/") + "/policies"
}()

private func pipeline() throws -> AdmissionPipeline {
    let peers = try TrustedPeers([TrustedPeer(clusterUUID: peerUUID, keys: [peerKey.publicKey], rootCA: rootCA)])
    return AdmissionPipeline(
        verifier: TokenVerifier(localClusterUUID: local, peers: peers),
        policy: try PolicySet.load(directory: policiesDirectory),
        cache: VerifiedTokenCache())
}

private func token(scope: TokenScope = .api, subject: String = peerUUID, key: SigningKeyPair = peerKey,
                   expiresAt: Int64 = now + 3600) -> String {
    mint(TokenClaims(subject: subject, audience: local, scope: scope, notBefore: now - 10, expiresAt: expiresAt), with: key)
}

private func head(_ method: String = "GET", _ target: String, auth: String? = "Bearer " + token(),
                  _ extra: [(String, String)] = []) -> ProxyRequestHead {
    var headers: [(name: String, value: String)] = [("Accept", "application/json"), ("User-Agent", "pilot-discovery/1.27")]
    if let auth { headers.append(("Authorization", auth)) }
    headers += extra.map { (name: $0.0, value: $0.1) }
    return ProxyRequestHead(method: method, target: target, headers: headers)
}

/// The rejection, or nil when admitted.
private func rejection(_ head: ProxyRequestHead) throws -> RequestRejection? {
    let admission = try pipeline()
    do {
        _ = try admission.admit(head, now: now)
        return nil
    } catch {
        return error
    }
}

@Suite("Admission pipeline")
struct AdmissionPipelineTests {
    @Test("an istiod watch is admitted with the parsed target and only allowlisted headers")
    func admitted() throws {
        let target = "/apis/discovery.k8s.io/v1/endpointslices?allowWatchBookmarks=true&resourceVersion=5&watch=true"
        let admitted = try pipeline().admit(head("GET", target, [
            ("Cookie", "session=1"), ("X-Forwarded-For", "10.0.0.1"), ("Host", "proxy.example"),
            ("Accept-Encoding", "gzip"), ("Connection", "keep-alive"), ("Content-Length", "0"),
        ]), now: now)
        #expect(admitted.peer == peerUUID)
        #expect(admitted.attributes.verb == .watch)
        #expect(admitted.attributes.resource == "endpointslices")
        // A cluster-wide list of a namespaced kind: the Isthmus namespace is left out upstream.
        #expect(admitted.forwardTarget == target + "&fieldSelector=metadata.namespace%21%3Disthmus-system")
        #expect(admitted.rule?.file == "istio-reader.yaml")
        #expect(admitted.reason == "allowed by \(try #require(admitted.rule))")
        #expect(admitted.forwardHeaders.map(\.name) == ["accept", "user-agent", "accept-encoding"])
        #expect(admitted.forwardHeaders.map(\.value) == ["application/json", "pilot-discovery/1.27", "gzip"])
    }

    @Test("a field value may hold tabs, spaces and non-ASCII text (RFC 9110 obs-text): forwarded as sent")
    func fieldValueWithTabAndNonASCII() throws {
        let admitted = try pipeline().admit(head("GET", "/api/v1/namespaces/istio-system/services/istiod", [
            ("User-Agent", "istiod\t1.27 (caf\u{E9})"), ("X-Custom_Name~1", "v"),
        ]), now: now)
        #expect(admitted.forwardHeaders.last?.name == "user-agent")
        #expect(admitted.forwardHeaders.last?.value == "istiod\t1.27 (caf\u{E9})")
        #expect(!admitted.forwardHeaders.contains { $0.name.hasPrefix("x-") })
    }

    @Test("HEAD is decided as get")
    func headIsGet() throws {
        let admitted = try pipeline().admit(head("HEAD", "/api/v1/namespaces/istio-system/services/istiod"), now: now)
        #expect(admitted.attributes.verb == .get)
        #expect(admitted.attributes.name == "istiod")
    }

    @Test("the decoded path is what is forwarded")
    func decodedPath() throws {
        let admitted = try pipeline().admit(head("GET", "/api/v1/namespaces/istio-system/%73ervices"), now: now)
        #expect(admitted.forwardTarget == "/api/v1/namespaces/istio-system/services")
    }

    struct ShapeRow: Sendable, CustomTestStringConvertible {
        var name: String
        var method = "GET"
        var target = "/api/v1/services"
        var headers: [(String, String)] = []
        var want: ShapeViolation
        var testDescription: String { name }
    }

    static let shapeRows: [ShapeRow] = [
        ShapeRow(name: "Upgrade", headers: [("Upgrade", "SPDY/3.1")], want: .upgrade),
        ShapeRow(name: "Connection: upgrade in a list", headers: [("Connection", "keep-alive, Upgrade")], want: .upgrade),
        ShapeRow(name: "HTTP2-Settings", headers: [("HTTP2-Settings", "AAMAAABkAAQCAAAAAAIAAAAA")], want: .http2Settings),
        ShapeRow(name: "a body by length", headers: [("Content-Length", "12")], want: .requestBody),
        ShapeRow(name: "a chunked body", headers: [("Transfer-Encoding", "chunked")], want: .requestBody),
        ShapeRow(name: "too many headers", headers: Array(repeating: ("X-A", "b"), count: 70), want: .tooManyHeaders),
        ShapeRow(name: "headers too large", headers: [("X-Big", String(repeating: "a", count: 17_000))], want: .headersTooLarge),
        ShapeRow(name: "an encoded slash", target: "/api/v1/namespaces/a%2Fb/pods", want: .target(.encodedSlash)),
        ShapeRow(name: "a dot segment", target: "/api/v1/../v1/secrets", want: .target(.dotSegment)),
        // Found by FuzzAdmission: "upgra\u{FFFD}e" was no Upgrade header, yet no valid one either.
        ShapeRow(name: "a field name with a non-ASCII byte", headers: [("upgra\u{FFFD}e", "websocket")], want: .invalidHeaderField),
        ShapeRow(name: "a field name with a space", headers: [("Impersonate User", "admin")], want: .invalidHeaderField),
        ShapeRow(name: "an empty field name", headers: [("", "x")], want: .invalidHeaderField),
        ShapeRow(name: "a value with CR LF", headers: [("Accept", "a\r\nImpersonate-User: admin")], want: .invalidHeaderField),
        ShapeRow(name: "a value with NUL", headers: [("User-Agent", "a\u{0}b")], want: .invalidHeaderField),
    ]

    @Test("what a read-only client never sends is a 400 with its reason", arguments: shapeRows)
    func shape(_ row: ShapeRow) throws {
        let found = try rejection(head(row.method, row.target, row.headers))
        #expect(found == .badRequest(row.want))
        #expect(found?.code == 400)
        #expect(found?.reason == "BadRequest")
        #expect(found?.message == row.want.description)
    }

    @Test("impersonation (kubectl --as) is a 403 before authentication, whatever the header's case", arguments: [
        ("Impersonate-User", "system:admin"), ("IMPERSONATE-GROUP", "system:masters"),
        ("Impersonate-Extra-scopes", "x"), ("impersonate-uid", "1"),
    ])
    func impersonation(_ header: String, _ value: String) throws {
        let found = try #require(try rejection(head("GET", "/api/v1/services", auth: nil, [(header, value)])))
        #expect(found == .impersonation)
        #expect(found.code == 403)
        #expect(found.reason == "Forbidden")
        #expect(found.message == "forbidden: the Isthmus proxy never allows impersonation (Impersonate-* headers, kubectl --as)")
    }

    @Test("writes are refused as read-only before authentication, in the API server's Forbidden wording")
    func readOnly() throws {
        for (method, target, message) in [
            ("DELETE", "/api/v1/namespaces/istio-system/services/istiod",
             "services \"istiod\" is forbidden: the Isthmus proxy is read-only and never allows DELETE"),
            ("POST", "/apis/networking.istio.io/v1/namespaces/a/virtualservices",
             "virtualservices.networking.istio.io is forbidden: the Isthmus proxy is read-only and never allows POST"),
            ("get", "/version", "forbidden: the Isthmus proxy is read-only and never allows get"),
        ] {
            // No credentials at all: the method alone decides, and is cheaper to check.
            let found = try #require(try rejection(head(method, target, auth: nil, [("Content-Type", "application/json"), ("Content-Length", "90")])))
            #expect(found.code == 403)
            #expect(found.reason == "Forbidden")
            #expect(found.message == message)
        }
        let delete = try #require(try rejection(head("DELETE", "/api/v1/namespaces/istio-system/services/istiod")))
        #expect(delete.details?.name == "istiod")
        #expect(delete.details?.kind == "services")
    }

    @Test("authentication failures are all 401 Unauthorized to the client, with distinct log reasons and no token")
    func unauthorized() throws {
        let stranger = SigningKeyPair()
        let cases: [(String?, [(String, String)], AuthenticationFailure?)] = [
            (nil, [], .missingCredentials),
            ("Basic YWRtaW46YWRtaW4=", [], .malformedAuthorization),
            ("Bearer " + token(), [("Authorization", "Bearer " + token())], .multipleAuthorization),
            ("Bearer " + token(scope: .privateMulticluster), [], nil),
            ("Bearer " + token(expiresAt: now - 3600), [], nil),
            ("Bearer " + token(subject: "cluster-x", key: stranger), [], nil),
            ("Bearer " + token(key: stranger), [], nil),
        ]
        var reasons: Set<String> = []
        for (auth, extra, want) in cases {
            let found = try #require(try rejection(head("GET", "/api/v1/services", auth: auth, extra)))
            #expect(found.code == 401)
            #expect(found.reason == "Unauthorized")
            #expect(found.message == "Unauthorized")
            #expect(found.metricLabel == "unauthorized")
            if let want { #expect(found == .unauthorized(want)) }
            if let auth {
                let credential = String(auth.split(separator: " ").last ?? "")
                #expect(!found.logReason.contains(credential))
                #expect(!found.message.contains(credential))
            }
            reasons.insert(found.logReason)
        }
        #expect(reasons.count == cases.count, "each failure logs its own reason: \(reasons)")
    }

    @Test("a request the policy does not allow is a 403 naming the peer, as the API server words it")
    func forbidden() throws {
        let found = try #require(try rejection(head("GET", "/api/v1/namespaces/fx/configmaps?limit=500")))
        #expect(found.code == 403)
        #expect(found.message == "configmaps is forbidden: peer \"\(peerUUID)\" cannot list resource \"configmaps\" in API group \"\" in the namespace \"fx\"")
        #expect(found.details?.kind == "configmaps")
        #expect(found.details?.name == "")
        #expect(found.metricLabel == "forbidden")
    }

    @Test("stages run cheapest first: shape, then token, then policy")
    func order() throws {
        let badToken = "Bearer " + token(key: SigningKeyPair())
        // A bad target with a bad token: the shape answers.
        #expect(try rejection(head("GET", "/api/v1/a%2fb", auth: badToken))?.code == 400)
        // A disallowed resource with a bad token: the token answers, the policy is never asked.
        #expect(try rejection(head("GET", "/api/v1/configmaps", auth: badToken))?.code == 401)
        // Impersonation with no token: the shape answers.
        #expect(try rejection(head("GET", "/api/v1/services", auth: nil, [("Impersonate-User", "x")])) == .impersonation)
    }

    @Test("a verified token is cached, and a new trusted set empties the cache")
    func tokenCache() throws {
        let admission = try pipeline()
        let request = head("GET", "/api/v1/services")
        _ = try admission.admit(request, now: now)
        _ = try admission.admit(request, now: now)
        #expect(admission.cache.count == 1)
        // The peer is removed: a pipeline built on the new set refuses the cached token.
        let emptied = AdmissionPipeline(
            verifier: TokenVerifier(localClusterUUID: local, peers: .empty),
            policy: admission.policy, cache: admission.cache)
        #expect(throws: RequestRejection.self) { try emptied.admit(request, now: now) }
    }
}

@Suite("Admission pipeline: protected objects and open watches decided again")
struct AdmissionProtectionTests {
    @Test("the cluster key is refused with its own reason although the default policy grants secrets")
    func clusterKey() throws {
        let refused = try rejection(head("GET", "/api/v1/namespaces/isthmus-system/secrets/isthmus-cluster-key"))
        #expect(refused == .protected(try RequestAttributes(method: "GET", target: "/api/v1/namespaces/isthmus-system/secrets/isthmus-cluster-key"),
                                      peer: peerUUID, .isthmusNamespace, isthmusNamespace: "isthmus-system"))
        #expect(refused?.code == 403)
        #expect(refused?.message == #"secrets "isthmus-cluster-key" is forbidden: objects in the Isthmus namespace "isthmus-system" (this cluster's signing key, its trusted peers) are never served to a peer"#)
        #expect(refused?.metricLabel == "protected_isthmus_namespace")
        #expect(refused?.authenticatedPeer == peerUUID)
    }

    @Test("protection comes before the allowlist and without a valid token nothing is said about it")
    func orderOfStages() throws {
        // No token: 401 as for anything else, no hint that the object is protected.
        #expect(try rejection(head("GET", "/api/v1/namespaces/isthmus-system/secrets", auth: nil))?.code == 401)
        // configmaps are not in the default policy, yet the Isthmus namespace's own reason is given.
        #expect(try rejection(head("GET", "/api/v1/namespaces/isthmus-system/configmaps"))?.metricLabel == "protected_isthmus_namespace")
    }

    @Test("a cluster-wide Secret watch is forwarded with every exclusion in front of the client's selectors")
    func narrowedWatch() throws {
        let admitted = try pipeline().admit(head("GET", "/api/v1/secrets?watch=1&labelSelector=app%3Dgw"), now: now)
        #expect(admitted.forwardTarget == "/api/v1/secrets?watch=1"
            + "&labelSelector=istio%2FmultiCluster%21%3Dtrue%2Capp%3Dgw"
            + "&fieldSelector=metadata.namespace%21%3Disthmus-system%2Ctype%21%3Dkubernetes.io%2Fservice-account-token%2Ctype%21%3Dhelm.sh%2Frelease.v1")
        #expect(admitted.attributes.query == "watch=1&labelSelector=app%3Dgw", "what was decided on stays the client's")
        #expect(!admitted.checkSecretFirst)
        #expect(admitted.tokenValidUntil == now + 3600 + 60)
    }

    @Test("a list whose target the exclusions would take past the 8 KiB limit is refused, not forwarded unparseable (FuzzProtectedObjects)")
    func narrowedTooLong() throws {
        let selector = String(repeating: "a", count: RequestInfoLimits.maxTargetBytes - 60)
        let target = "/api/v1/secrets?labelSelector=" + selector
        #expect(target.utf8.count < RequestInfoLimits.maxTargetBytes)
        #expect(try rejection(head("GET", target)) == .badRequest(.target(.targetTooLong)))
        // A namespaced Service list of the same length carries no exclusion and is admitted.
        #expect(try rejection(head("GET", "/api/v1/namespaces/demo/services?labelSelector=" + selector)) == nil)
    }

    @Test("a get of a Secret by name is admitted for a check of the object first")
    func secretGet() throws {
        let admitted = try pipeline().admit(head("GET", "/api/v1/namespaces/istio-system/secrets/gateway-cert"), now: now)
        #expect(admitted.checkSecretFirst)
        #expect(admitted.forwardTarget == "/api/v1/namespaces/istio-system/secrets/gateway-cert")
    }

    @Test("an open watch is decided again: unchanged state keeps it, each change that takes access away ends it")
    func redecide() throws {
        let admission = try pipeline()
        let watch = try admission.admit(head("GET", "/api/v1/namespaces/demo/services?watch=1"), now: now)
        #expect(admission.redecide(watch, now: now + 10) == nil)

        let otherKey = SigningKeyPair()
        let rotated = admission.replacing(verifier: TokenVerifier(localClusterUUID: local, peers: try TrustedPeers([
            TrustedPeer(clusterUUID: peerUUID, keys: [otherKey.publicKey], rootCA: rootCA)])))
        #expect(rotated.redecide(watch, now: now) == .keyRevoked)
        let overlapping = admission.replacing(verifier: TokenVerifier(localClusterUUID: local, peers: try TrustedPeers([
            TrustedPeer(clusterUUID: peerUUID, keys: [otherKey.publicKey, peerKey.publicKey], rootCA: rootCA)])))
        #expect(overlapping.redecide(watch, now: now) == nil, "a rotation that still lists the old key keeps the watch")

        let removed = admission.replacing(verifier: TokenVerifier(localClusterUUID: local, peers: .empty))
        #expect(removed.redecide(watch, now: now) == .peerRemoved)

        #expect(admission.redecide(watch, now: watch.tokenValidUntil) == .tokenExpired)
        #expect(admission.redecide(watch, now: watch.tokenValidUntil - 1) == nil)

        let narrowed = admission.replacing(policy: try PolicySet(sources: [PolicySource(name: "narrow.yaml", contents: """
            rules:
              - apiGroups: [""]
                resources: [endpoints]
                verbs: [get, list, watch]
            """)]))
        #expect(narrowed.redecide(watch, now: now) == .policy)
    }
}
