import IsthmusHTTP
import IsthmusKubeTypes

/// DESIGN §3 step 1's optional client-certificate check: the ingress in
/// front of the proxy authenticates itself with a certificate from a known CA
/// and subject. TLS asks for the certificate without requiring it (and
/// refuses one that does not chain to the CA); this decides per request.
///
/// A request without a matching certificate gets **403 Forbidden**, not 401:
/// 401 means "send other HTTP credentials" (client-go would report the peer's
/// bearer token as bad, which it may not be), while the missing credential
/// here is at the TLS layer and no `Authorization` header can fix it.
struct ClientCertificateCheck: Sendable {
    /// nil: any certificate that chains to the CA.
    let subject: ClientSubjectRequirement?

    /// Probes answer without a certificate: the kubelet that sends them has none.
    static func isProbe(_ uri: String) -> Bool {
        let path = uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)[0]
        return path == "/healthz" || path == "/readyz"
    }

    /// Whether a connection whose handshake verified `certificateDER` (nil:
    /// none was sent) may send requests other than probes.
    func admits(certificateDER: [UInt8]?) -> Bool {
        guard let certificateDER else { return false }
        guard let subject else { return true }
        return subject.matches(certificateDER: certificateDER)
    }

    /// The answer to everything but probes without an admitted certificate.
    static let refusal = Status(
        message: "forbidden: this proxy requires a client certificate from its client CA with an allowed subject; "
            + "only /healthz and /readyz answer without one",
        reason: "Forbidden", details: nil, code: 403)
}
