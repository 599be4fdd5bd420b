import IsthmusKubeTypes
@testable import IsthmusMetadata
@testable import IsthmusTrust
import Testing

@Suite("metadata routing and private-metadata authorization")
struct MetadataRouterTests {
    static let now: Int64 = 1_790_000_000
    let peerKey = SigningKeyPair()
    let snapshot: MetadataSnapshot

    init() throws {
        let peers = try TrustedPeers([TrustedPeer(clusterUUID: MetadataFixtures.peerUUID, keys: [peerKey.publicKey],
                                                  rootCA: MetadataFixtures.rootCA)])
        snapshot = MetadataSnapshot(documents: try MetadataDocuments(try MetadataFixtures.sources()),
                                    verifier: TokenVerifier(localClusterUUID: MetadataFixtures.clusterUUID, peers: peers))
    }

    func token(scope: TokenScope, key: SigningKeyPair? = nil, subject: String = MetadataFixtures.peerUUID,
               audience: String = MetadataFixtures.clusterUUID, expiresAt: Int64 = now + 60,
               issuer: String = TokenClaims.deckhouseIssuer) -> String {
        mint(TokenClaims(issuer: issuer, subject: subject, audience: audience, scope: scope, notBefore: Self.now - 10,
                         expiresAt: expiresAt),
             with: key ?? peerKey)
    }

    func get(_ target: String, authorization: [String] = [], method: String = "GET", ifNoneMatch: String? = nil) -> MetadataResponse {
        MetadataRouter.respond(to: MetadataRequest(method: method, target: target, authorization: authorization, ifNoneMatch: ifNoneMatch),
                               snapshot: snapshot, now: Self.now)
    }

    func header(_ response: MetadataResponse, _ name: String) -> String? {
        response.headers.first { $0.0.lowercased() == name.lowercased() }?.1
    }

    @Test("public metadata needs no token")
    func publicNoAuth() {
        let response = get("/metadata/public/public.json")
        #expect(response.code == 200)
        #expect(response.body == snapshot.documents.publicMetadata.body)
        #expect(header(response, "ETag") == snapshot.documents.publicMetadata.etag)
    }

    @Test("private metadata: a private-multicluster token from a trusted peer gets the document, not to be stored")
    func privateAllowed() {
        let response = get("/metadata/private/multicluster.json", authorization: ["Bearer " + token(scope: .privateMulticluster)])
        #expect(response.code == 200)
        #expect(response.body == snapshot.documents.privateMetadata.body)
        #expect(response.peer == MetadataFixtures.peerUUID)
        #expect(header(response, "Cache-Control") == "no-store")
    }

    struct Denied: Sendable, CustomStringConvertible {
        var description: String
        var authorization: @Sendable (MetadataRouterTests) -> [String]
        var code: Int
        var reasonContains: String
    }

    static let denied: [Denied] = [
        Denied(description: "no token", authorization: { _ in [] }, code: 401, reasonContains: "no Authorization header"),
        Denied(description: "not a Bearer header", authorization: { _ in ["Basic dXNlcjpwYXNz"] }, code: 401,
               reasonContains: "not \"Bearer <token>\""),
        Denied(description: "two Authorization headers",
               authorization: { t in ["Bearer " + t.token(scope: .privateMulticluster), "Bearer x"] }, code: 401,
               reasonContains: "more than one"),
        Denied(description: "garbage token", authorization: { _ in ["Bearer abc.def.ghi"] }, code: 401, reasonContains: "malformed"),
        Denied(description: "an api-scoped token from a trusted peer",
               authorization: { t in ["Bearer " + t.token(scope: .api)] }, code: 403, reasonContains: "has scope \"api\""),
        Denied(description: "a federation-scoped token from a trusted peer",
               authorization: { t in ["Bearer " + t.token(scope: .privateFederation)] }, code: 403,
               reasonContains: "has scope \"private-federation\""),
        Denied(description: "an unknown peer", authorization: { t in
            ["Bearer " + t.token(scope: .privateMulticluster, key: SigningKeyPair(), subject: "c0ffee00-0000-4000-8000-000000000000")]
        }, code: 401, reasonContains: "not a trusted peer"),
        Denied(description: "a trusted peer's UUID signed with another key", authorization: { t in
            ["Bearer " + t.token(scope: .privateMulticluster, key: SigningKeyPair())]
        }, code: 401, reasonContains: "signature"),
        Denied(description: "a token for another cluster", authorization: { t in
            ["Bearer " + t.token(scope: .privateMulticluster, audience: "another-cluster")]
        }, code: 401, reasonContains: "not addressed to this cluster"),
        Denied(description: "an expired token", authorization: { t in
            ["Bearer " + t.token(scope: .privateMulticluster, expiresAt: now - 3600)]
        }, code: 401, reasonContains: "expired"),
        Denied(description: "a trusted peer's token for another issuer", authorization: { t in
            ["Bearer " + t.token(scope: .privateMulticluster, issuer: "ci-robot")]
        }, code: 401, reasonContains: "has issuer \"ci-robot\", which is not accepted"),
        Denied(description: "a trusted peer's token with no issuer", authorization: { t in
            ["Bearer " + t.token(scope: .privateMulticluster, issuer: "")]
        }, code: 401, reasonContains: "has issuer (missing)"),
        Denied(description: "an expired api token stays a 401", authorization: { t in
            ["Bearer " + t.token(scope: .api, expiresAt: now - 3600)]
        }, code: 401, reasonContains: "has scope"),
    ]

    @Test("private metadata refusals: 401 unless a trusted peer's live token has the wrong scope (403)", arguments: denied)
    func privateDenied(_ row: Denied) throws {
        let response = get("/metadata/private/multicluster.json", authorization: row.authorization(self))
        #expect(response.code == row.code)
        let status = try JSON(parsing: response.body)
        #expect(status["kind"] == .string("Status"))
        #expect(status["code"] == .int(row.code))
        #expect(status["reason"] == .string(row.code == 401 ? "Unauthorized" : "Forbidden"))
        if row.code == 401 {
            #expect(status["message"] == .string("Unauthorized"), "a 401 tells a forger nothing")
            #expect(header(response, "WWW-Authenticate") == "Bearer")
        }
        #expect(response.logReason?.contains(row.reasonContains) == true, "\(response.logReason ?? "")")
        #expect(!response.body.isEmpty && response.peer == nil)
    }

    @Test("no log reason or body ever carries the token")
    func tokenNeverEchoed() {
        let presented = token(scope: .api)
        for authorization in [[presented], ["Bearer " + presented], ["Bearer " + presented + "x"]] {
            let response = get("/metadata/private/multicluster.json", authorization: authorization)
            #expect(!(response.logReason ?? "").contains(presented.prefix(40)))
            #expect(!String(decoding: response.body, as: UTF8.self).contains(presented.prefix(40)))
        }
    }

    @Test("methods other than GET and HEAD are a 405 Status on every path", arguments: ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
    func methodNotAllowed(_ method: String) throws {
        for path in ["/metadata/public/public.json", "/metadata/private/multicluster.json", "/nowhere"] {
            let response = get(path, method: method)
            #expect(response.code == 405)
            #expect(try JSON(parsing: response.body)["reason"] == .string("MethodNotAllowed"))
            #expect(header(response, "Allow") == "GET, HEAD")
        }
    }

    @Test("unknown paths are a 404 Status; look-alikes of the document paths too", arguments: [
        "/", "/metadata", "/metadata/public", "/metadata/public/public.json/", "/metadata//public/public.json",
        "/public/public.json", "/metadata/private/../public/public.json", "/metadata/private/federation.json",
    ])
    func notFound(_ path: String) throws {
        let response = get(path)
        #expect(response.code == 404)
        #expect(try JSON(parsing: response.body)["reason"] == .string("NotFound"))
    }

    @Test("a query string does not change the answer; probes answer ok")
    func queryAndProbes() {
        #expect(get("/metadata/public/public.json?ts=1").body == snapshot.documents.publicMetadata.body)
        #expect(get("/healthz").code == 200)
        #expect(get("/readyz").code == 200)
    }

    @Test("If-None-Match with the current ETag answers 304; the private one only once authorized")
    func conditional() {
        let publicTag = snapshot.documents.publicMetadata.etag
        #expect(get("/metadata/public/public.json", ifNoneMatch: publicTag).code == 304)
        #expect(get("/metadata/public/public.json", ifNoneMatch: "\"stale\", " + publicTag).code == 304)
        #expect(get("/metadata/public/public.json", ifNoneMatch: "\"stale\"").code == 200)
        let privateTag = snapshot.documents.privateMetadata.etag
        #expect(get("/metadata/private/multicluster.json", ifNoneMatch: privateTag).code == 401)
        #expect(get("/metadata/private/multicluster.json", authorization: ["Bearer " + token(scope: .privateMulticluster)],
                    ifNoneMatch: privateTag).code == 304)
    }

    @Test("a token shaped as Deckhouse's go-jose mints it (typ header, one-element aud array, no kid) reads private metadata")
    func deckhouseShapedToken() {
        let header = #"{"alg":"EdDSA","typ":"JWT"}"#
        let claims = #"{"aud":["\#(MetadataFixtures.clusterUUID)"],"exp":\#(Self.now + 60),"iss":"d8-istio","nbf":\#(Self.now),"scope":"private-multicluster","sub":"\#(MetadataFixtures.peerUUID)"}"#
        let signingInput = Base64.encodeURL(Array(header.utf8)) + "." + Base64.encodeURL(Array(claims.utf8))
        let token = signingInput + "." + Base64.encodeURL(peerKey.signature(for: Array(signingInput.utf8)))
        let response = get("/metadata/private/multicluster.json", authorization: ["Bearer " + token])
        #expect(response.code == 200, "\(response.logReason ?? "")")
        #expect(response.peer == MetadataFixtures.peerUUID)
    }
}
