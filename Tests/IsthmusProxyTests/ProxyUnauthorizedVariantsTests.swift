import Foundation
import IsthmusFakeAPIServer
import IsthmusProxy
import IsthmusTrust
import Testing

/// kube-apiserver 1.32's 401 body, byte for byte (kube-fixtures 37-unauthorized-401).
private let apiServerUnauthorizedBody =
    #"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}"#

private func base64URL(_ bytes: some Sequence<UInt8>) -> String {
    Data(bytes).base64EncodedString()
        .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
        .replacingOccurrences(of: "=", with: "")
}

/// HMAC-SHA256 by `openssl dgst`, as an attacker would compute it.
private func hmacSHA256(key: [UInt8], message: String) throws -> [UInt8] {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
    process.arguments = ["dgst", "-sha256", "-mac", "HMAC", "-macopt",
                         "hexkey:" + key.map { String(format: "%02x", $0) }.joined(), "-binary"]
    let input = Pipe(), output = Pipe()
    process.standardInput = input
    process.standardOutput = output
    try process.run()
    input.fileHandleForWriting.write(Data(message.utf8))
    try input.fileHandleForWriting.close()
    let mac = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return [UInt8](mac)
}

/// Every way a token can be wrong that DESIGN §3 names, each built the way a
/// confused or hostile client would build it. The names are for failure messages.
private func badTokens(_ h: ProxyHarness) throws -> [(what: String, token: String)] {
    let now = Int64(Date().timeIntervalSince1970)
    func claims(subject: String = testPeerUUID, audience: String = localClusterUUID, scope: TokenScope = .api,
                notBefore: Int64 = now - 10, expiresAt: Int64 = now + 3600, issuer: String = TokenClaims.deckhouseIssuer) -> TokenClaims {
        TokenClaims(issuer: issuer, subject: subject, audience: audience, scope: scope, notBefore: notBefore, expiresAt: expiresAt)
    }
    let valid = h.peerToken.split(separator: ".").map(String.init)
    let (header, payload, signature) = (valid[0], valid[1], valid[2])
    // A signature with one byte changed in the middle (a change in the last
    // character could touch only padding bits).
    var signatureCharacters = Array(signature)
    let middle = signatureCharacters.count / 2
    signatureCharacters[middle] = signatureCharacters[middle] == "A" ? "B" : "A"
    // The claims of a token the peer never signed: a later expiry.
    let extendedPayload = base64URL(Array(
        #"{"aud":"\#(localClusterUUID)","exp":\#(now + 86_400 * 365),"iss":"d8-istio","nbf":\#(now - 10),"scope":"api","sub":"\#(testPeerUUID)"}"#.utf8))
    let noneHeader = base64URL(Array(#"{"alg":"none"}"#.utf8))
    // Key confusion (RFC 8725 §2.2): HS256 keyed with the peer's public key.
    let hsHeader = base64URL(Array(#"{"alg":"HS256","typ":"JWT"}"#.utf8))
    let hsSignature = base64URL(try hmacSHA256(key: h.peerKey.publicKey.rawRepresentation, message: hsHeader + "." + payload))

    return [
        ("expired an hour ago", mint(claims(notBefore: now - 7200, expiresAt: now - 3600), with: h.peerKey)),
        ("not valid for another hour", mint(claims(notBefore: now + 3600, expiresAt: now + 7200), with: h.peerKey)),
        ("addressed to another cluster", mint(claims(audience: "5c3b2a19-0d4e-4f6a-8b7c-9e1f2a3b4c5d"), with: h.peerKey)),
        ("scope private-multicluster", mint(claims(scope: .privateMulticluster), with: h.peerKey)),
        ("scope private-federation", mint(claims(scope: .privateFederation), with: h.peerKey)),
        ("from an unknown peer", mint(claims(subject: "e1f2a3b4-c5d6-4e7f-8a9b-0c1d2e3f4a5b"), with: SigningKeyPair())),
        ("an unknown peer signing with a trusted peer's key", mint(claims(subject: "e1f2a3b4-c5d6-4e7f-8a9b-0c1d2e3f4a5b"), with: h.peerKey)),
        ("with a tampered signature", header + "." + payload + "." + String(signatureCharacters)),
        ("with tampered claims", header + "." + extendedPayload + "." + signature),
        ("alg none, no signature", noneHeader + "." + payload + "."),
        ("alg none, the original signature", noneHeader + "." + payload + "." + signature),
        ("HS256 keyed with the peer's public key", hsHeader + "." + payload + "." + hsSignature),
        ("signed by the peer for another issuer", mint(claims(issuer: "ci-robot"), with: h.peerKey)),
        ("signed by the peer with no issuer", mint(claims(issuer: ""), with: h.peerKey)),
    ]
}

@Suite("Proxy: every kind of bad token gets the API server's 401, end to end, and nothing is forwarded", .serialized)
struct ProxyUnauthorizedVariantsTests {
    @Test("expired, not yet valid, wrong audience, wrong scope, unknown peer, tampered, alg none, HS256, wrong or no issuer: kubectl (HTTP/2) and curl (HTTP/2, HTTP/1.1)")
    func badTokensAreUnauthorized() async throws {
        let h = try await ProxyHarness.start()
        do {
            let tokens = try badTokens(h)
            h.upstream.clearRecentRequests()
            for (what, token) in tokens {
                try h.writeKubeconfig(token: token, name: "bad")
                let result = try await h.kubectl("get", "svc", "-n", "demo", kubeconfig: "bad")
                #expect(result.status != 0, "token \(what): \(result)")
                // kubectl's wording for a 401, as against a real API server.
                #expect(result.stderr.contains("error: You must be logged in to the server"), "token \(what): \(result)")

                for http1 in [false, true] {
                    let response = try await curlWithHeaders(h, "/api/v1/namespaces/demo/services", http1: http1, token: token)
                    let on = "token \(what) over \(http1 ? "HTTP/1.1" : "HTTP/2")"
                    #expect(response.code == 401, "\(on): \(response)")
                    #expect(response.body == apiServerUnauthorizedBody + "\n", "\(on): \(response)")
                    // The API server's headers for a 401: no priority-and-fairness
                    // UIDs (authentication comes before APF), not cacheable.
                    #expect(response.headers["content-type"] == "application/json", "\(on): \(response)")
                    #expect(response.headers["cache-control"] == "no-cache, private", "\(on): \(response)")
                    #expect(!response.headers.keys.contains { $0.hasPrefix("x-kubernetes-pf-") }, "\(on): \(response)")
                }
            }
            // Nothing reached the upstream: no discovery, no list.
            let forwarded = h.upstream.recentRequests.filter { $0.uri.hasPrefix("/api") }
            #expect(forwarded.isEmpty, "forwarded: \(forwarded.map { "\($0.method) \($0.uri)" })")

            // The same request with the valid token is forwarded: the check above can fail.
            let good = try await h.kubectl("get", "svc", "-n", "demo")
            #expect(good.status == 0 && good.stdout.contains("web"), "\(good)")
            #expect(h.upstream.recentRequests.contains { $0.uri.hasPrefix("/api/v1/namespaces/demo/services") })
        }
        await h.stop()
    }
}

struct CurlResponse: CustomStringConvertible {
    var code: Int
    /// Lower-cased names; the last value of a repeated field.
    var headers: [String: String]
    var body: String
    var description: String { "\(code) \(headers) \(body)" }
}

/// One request with curl, headers included.
func curlWithHeaders(_ h: ProxyHarness, _ path: String, http1: Bool, token: String?) async throws -> CurlResponse {
    let id = UUID().uuidString
    let headerFile = h.directory.appendingPathComponent("headers-\(id)")
    let bodyFile = h.directory.appendingPathComponent("body-\(id)")
    let output = try await h.run(ProxyHarness.curlPath, ["-D", headerFile.path, "-o", bodyFile.path, "-w", "%{http_code}"]
        + h.curlArguments(path, http1: http1, token: token))
    var headers: [String: String] = [:]
    for line in ((try? String(contentsOf: headerFile, encoding: .utf8)) ?? "").split(whereSeparator: \.isNewline) {
        guard let colon = line.firstIndex(of: ":") else { continue }
        headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
    }
    return CurlResponse(code: Int(output.stdout) ?? -1, headers: headers,
                        body: (try? String(contentsOf: bodyFile, encoding: .utf8)) ?? "")
}
