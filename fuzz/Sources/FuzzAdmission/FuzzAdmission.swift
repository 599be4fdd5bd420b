import CFuzzerDriver
import FuzzSupport
import IsthmusAdmission
import IsthmusPolicy
import IsthmusRequestInfo
import IsthmusTrust

/// SwiftPM links executables with `main` renamed to `<Module>_main`.
@_cdecl("FuzzAdmission_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv) { data, size in
        guard let data else { return 0 }
        fuzzOne(Array(UnsafeBufferPointer(start: data, count: size)))
        return 0
    }
}

private let peerUUID = "8d5f5d2e-1c1a-4a8e-9a53-2f6f4a3d2c11"
private let localUUID = "0b4e3f66-7a2d-4e55-8f0c-5d1e9b7c3a22"
private let now: Int64 = 1_800_000_000
private let peerKey = try! SigningKeyPair(seed: [UInt8](repeating: 9, count: 32))
private let validToken = mint(TokenClaims(subject: peerUUID, audience: localUUID, scope: .api,
                                          notBefore: now - 10, expiresAt: now + 3600), with: peerKey)
private let expiredToken = mint(TokenClaims(subject: peerUUID, audience: localUUID, scope: .api,
                                            notBefore: now - 7200, expiresAt: now - 3600), with: peerKey)
private let verifier: TokenVerifier = {
    let peer = try! TrustedPeer(clusterUUID: peerUUID, keys: [peerKey.publicKey],
                                rootCA: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    return TokenVerifier(localClusterUUID: localUUID, peers: try! TrustedPeers([peer]))
}()

/// The repository's default policies, as the chart ships them.
private let policy = try! PolicySet.load(directory: repositoryPolicies)
private let protected = ProtectedObjects(isthmusNamespace: "isthmus-system")
private let pipeline = AdmissionPipeline(verifier: verifier, policy: policy, cache: VerifiedTokenCache(capacity: 64, stripes: 4),
                                         protected: protected)
private let limits = ProxyRequestLimits()

/// The input is a request head, one line each: the method, the target, then
/// `name:value` header fields (the value as is, no space trimmed). In a value,
/// `$T` stands for a valid token of the trusted peer and `$E` for an expired
/// one, so the fuzzer reaches the policy stages past the signature.
func fuzzOne(_ input: [UInt8]) {
    let lines = input.split(separator: 0x0A, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
    guard lines.count >= 2 else { return }
    var headers: [(name: String, value: String)] = []
    for line in lines.dropFirst(2) {
        guard let colon = line.firstIndex(of: ":") else { continue }
        let value = String(line[line.index(after: colon)...])
            .replacing("$T", with: validToken).replacing("$E", with: expiredToken)
        headers.append((String(line[..<colon]), value))
    }
    let head = ProxyRequestHead(method: lines[0], target: lines[1], headers: headers)
    let admitted: AdmittedRequest?
    let rejection: RequestRejection?
    do {
        admitted = try pipeline.admit(head, now: now)
        rejection = nil
    } catch {
        admitted = nil
        rejection = error
    }
    let expected = oracle(head)
    precondition((admitted != nil) == expected, "admitted \(admitted != nil), but the stages, checked one by one, say \(expected)")
    if let rejection { checkRejection(rejection, head) }
    if let admitted { checkAdmitted(admitted, head) }
}

/// Field names are compared as ASCII, case-insensitively (RFC 9110 §5.1).
private func asciiLowercased(_ s: String) -> String {
    String(decoding: s.utf8.map { $0 >= 0x41 && $0 <= 0x5A ? $0 | 0x20 : $0 }, as: UTF8.self)
}

/// RFC 9110 §5.6.2 `token`: what a field name is made of.
private func isToken(_ s: String) -> Bool {
    !s.isEmpty && s.utf8.allSatisfy { byte in
        (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
            || "!#$%&'*+-.^_`|~".utf8.contains(byte)
    }
}

/// RFC 9110 §5.5 field value: visible characters, obs-text, spaces and tabs
/// inside, none of CR, LF, NUL or another control character.
private func isFieldValue(_ s: String) -> Bool {
    s.utf8.allSatisfy { $0 == 0x09 || ($0 >= 0x20 && $0 != 0x7F) }
}

/// Every stage written out again from its rule, not from the pipeline's code:
/// whether the request must be admitted.
private func oracle(_ head: ProxyRequestHead) -> Bool {
    guard head.headers.count <= limits.maxHeaderCount,
          head.headers.reduce(0, { $0 + $1.name.utf8.count + $1.value.utf8.count }) <= limits.maxHeaderBytes,
          let attributes = try? RequestAttributes(method: head.method, target: head.target),
          head.method == "GET" || head.method == "HEAD"
    else { return false }
    var authorization: [String] = []
    for header in head.headers {
        guard isToken(header.name), isFieldValue(header.value) else { return false }
        let name = asciiLowercased(header.name)
        let trimmed = header.value.trimmingSpacesAndTabs()
        if name == "authorization" { authorization.append(header.value) }
        if name == "upgrade" || name == "http2-settings" || name == "transfer-encoding" || name.hasPrefix("impersonate-") {
            return false
        }
        if name == "content-length", trimmed != "0" { return false }
        if name == "connection",
           header.value.split(separator: ",").contains(where: { asciiLowercased(String($0).trimmingSpacesAndTabs()) == "upgrade" }) {
            return false
        }
    }
    guard authorization.count == 1, let token = BearerToken(authorizationHeader: authorization[0]),
          let verified = try? verifier.verify(token, scope: .api, now: now)
    else { return false }
    switch protected.decide(attributes) {
    case .refuse: return false
    case .narrow(let narrowing):
        if narrowing.target(for: attributes).utf8.count > RequestInfoLimits.maxTargetBytes { return false }
    case .unrestricted, .checkSecretFirst: break
    }
    return policy.decide(attributes, peer: verified.peer).allowed
}

/// What is forwarded is exactly what was decided on: the target parses again as
/// the same request, the headers are the client's allowlisted ones in order with
/// canonical names, and nothing that carries credentials or switches protocols.
private func checkAdmitted(_ admitted: AdmittedRequest, _ head: ProxyRequestHead) {
    precondition(admitted.peer == peerUUID, "admitted for another peer")
    guard let again = try? RequestAttributes(method: head.method, target: admitted.forwardTarget) else {
        preconditionFailure("the forwarded target does not parse")
    }
    precondition(again.path == admitted.attributes.path && again.verb == admitted.attributes.verb
                 && again.apiGroup == admitted.attributes.apiGroup && again.namespace == admitted.attributes.namespace
                 && again.resource == admitted.attributes.resource && again.subresource == admitted.attributes.subresource,
                 "the forwarded target is another request")
    if case .unrestricted = protected.decide(admitted.attributes) {
        precondition(admitted.forwardTarget == again.forwardTarget, "the forwarded target is not canonical")
    }
    let expected = head.headers.compactMap { header -> (String, String)? in
        let name = asciiLowercased(header.name)
        return ForwardedHeaders.names.contains(name) ? (name, header.value) : nil
    }
    precondition(admitted.forwardHeaders.count == expected.count
                 && zip(admitted.forwardHeaders, expected).allSatisfy { $0.name == $1.0 && $0.value == $1.1 },
                 "the forwarded headers are not the client's allowlisted ones")
    for header in admitted.forwardHeaders {
        precondition(isToken(header.name) && header.name == asciiLowercased(header.name) && isFieldValue(header.value),
                     "a forwarded header is not a canonical field")
        precondition(header.name != "authorization" && !header.name.hasPrefix("impersonate-"), "credentials forwarded")
    }
    precondition(admitted.tokenValidUntil > now, "admitted past the token's expiry")
}

/// A refusal is worded without the token (it goes into logs and to the client).
private func checkRejection(_ rejection: RequestRejection, _ head: ProxyRequestHead) {
    let text = Array((rejection.message + "\n" + rejection.logReason).utf8)
    for token in [validToken, expiredToken] {
        precondition(!containsBytes(text, Array(token.utf8)), "a refusal quotes the token")
    }
    if rejection.code == 401 { precondition(rejection.message == "Unauthorized", "a 401 says why (an oracle for forgers)") }
}

extension String {
    func trimmingSpacesAndTabs() -> String {
        var s = Substring(self)
        while let first = s.first, first == " " || first == "\t" { s = s.dropFirst() }
        while let last = s.last, last == " " || last == "\t" { s = s.dropLast() }
        return String(s)
    }
}
