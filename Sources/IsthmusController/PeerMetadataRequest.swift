import IsthmusTrust

/// What the fetcher must do to get one metadata document: the URL (or file),
/// the TLS settings from the spec, and for private metadata over HTTP(S), a
/// fresh one-minute JWT. The fetcher does the I/O, then hands the response
/// to ``PeerMetadataResponse``.
public struct PeerMetadataRequest: Sendable, CustomStringConvertible {
    /// `https://…/public/public.json` and the like, for logs and conditions.
    public var url: String
    /// For `file://` endpoints: the file to read instead of a request.
    public var filePath: String?
    /// `Authorization: Bearer` for private metadata; nil for public metadata
    /// and files. Its description is `<redacted>`.
    public var bearerToken: BearerToken?
    /// PEM the server certificate must chain to (`spec.metadata.ca`); nil:
    /// the system roots.
    public var ca: String?
    public var insecureSkipVerify: Bool

    /// `GET <endpoint>/public/public.json`, unauthenticated.
    public static func publicDocument(_ spec: IstioMulticlusterSpec) -> PeerMetadataRequest {
        PeerMetadataRequest(
            url: spec.endpoint.publicURL, filePath: spec.endpoint.filePath.map { $0 + "/public/public.json" },
            bearerToken: nil, ca: spec.ca, insecureSkipVerify: spec.insecureSkipVerify)
    }

    /// `GET <endpoint>/private/multicluster.json` with a token for the peer
    /// named by the public document just fetched (`aud` = its UUID), so a
    /// token is never sent to an endpoint whose identity we did not read.
    public static func privateDocument(_ spec: IstioMulticlusterSpec, peerClusterUUID: String, local: LocalIdentity, now: Int64) -> PeerMetadataRequest {
        let file = spec.endpoint.filePath.map { $0 + "/private/multicluster.json" }
        return PeerMetadataRequest(
            url: spec.endpoint.privateURL, filePath: file,
            bearerToken: file == nil ? local.privateMetadataToken(peerClusterUUID: peerClusterUUID, now: now) : nil,
            ca: spec.ca, insecureSkipVerify: spec.insecureSkipVerify)
    }

    public var description: String { "GET \(url)" }
}
