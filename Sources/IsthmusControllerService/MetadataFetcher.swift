import AsyncHTTPClient
import Foundation
import IsthmusController
import NIOCore
import NIOHTTP1
import NIOSSL

/// Does the I/O a ``PeerMetadataRequest`` describes: reads the file of a
/// `file://` endpoint, or GETs the URL with the spec's CA (or no
/// verification) and the bearer token. Transport problems become
/// `FetchFailure.unreachable`; the caller interprets the response.
public struct MetadataFetcher: Sendable {
    /// A response as ``PeerMetadataResponse`` reads it.
    public struct Response: Sendable {
        public var status: Int
        public var contentType: String?
        public var body: [UInt8]
    }

    /// Metadata documents are small; a larger body is not one.
    public static let maximumBodySize = 1 << 20

    let http: HTTPClient
    let timeout: TimeAmount

    public init(http: HTTPClient = .shared, timeout: TimeAmount = .seconds(10)) {
        self.http = http
        self.timeout = timeout
    }

    public func fetch(_ request: PeerMetadataRequest) async -> Result<Response, FetchFailure> {
        if let path = request.filePath {
            guard let data = FileManager.default.contents(atPath: path) else {
                return .failure(.unreachable("cannot read \(path)"))
            }
            return .success(Response(status: 200, contentType: nil, body: Array(data)))
        }
        var http = HTTPClientRequest(url: request.url)
        http.headers.add(name: "Accept", value: "application/json")
        if let token = request.bearerToken { http.headers.add(name: "Authorization", value: "Bearer \(token.rawValue)") }
        if request.url.hasPrefix("https://") {
            var tls = TLSConfiguration.makeClientConfiguration()
            if request.insecureSkipVerify {
                tls.certificateVerification = .none
            } else if let ca = request.ca {
                do {
                    tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(Array(ca.utf8)))
                } catch {
                    return .failure(.unreachable("spec.metadata.ca is not a usable PEM certificate: \(error)"))
                }
            }
            http.tlsConfiguration = tls
        }
        do {
            let response = try await self.http.execute(http, timeout: timeout)
            let body = try await response.body.collect(upTo: Self.maximumBodySize)
            return .success(Response(status: Int(response.status.code), contentType: response.headers.first(name: "Content-Type"),
                                     body: Array(buffer: body)))
        } catch {
            return .failure(.unreachable(String(describing: error)))
        }
    }

    /// Public, then (if that succeeded) private metadata for one object,
    /// as the round needs them.
    public func fetchBoth(_ spec: IstioMulticlusterSpec, local: LocalIdentity, now: @Sendable () -> Int64) async -> PeerFetch {
        let publicResult: Result<PublicMetadata, FetchFailure>
        switch await fetch(.publicDocument(spec)) {
        case .success(let r): publicResult = PeerMetadataResponse.interpretPublic(status: r.status, contentType: r.contentType, body: r.body)
        case .failure(let f): publicResult = .failure(f)
        }
        let publicAt = now()
        guard case .success(let document) = publicResult else {
            if case .failure(let f) = publicResult { return PeerFetch(publicMetadata: .failed(f, at: publicAt)) }
            return PeerFetch()
        }
        let privateRequest = PeerMetadataRequest.privateDocument(spec, peerClusterUUID: document.clusterUUID, local: local, now: now())
        let privateResult: Result<PrivateMetadata, FetchFailure>
        switch await fetch(privateRequest) {
        case .success(let r): privateResult = PeerMetadataResponse.interpretPrivate(status: r.status, contentType: r.contentType, body: r.body)
        case .failure(let f): privateResult = .failure(f)
        }
        let privateAt = now()
        switch privateResult {
        case .success(let p): return PeerFetch(publicMetadata: .fetched(document, at: publicAt), privateMetadata: .fetched(p, at: privateAt))
        case .failure(let f): return PeerFetch(publicMetadata: .fetched(document, at: publicAt), privateMetadata: .failed(f, at: privateAt))
        }
    }
}
