import AsyncHTTPClient
import Foundation
import IsthmusKubeTypes
import NIOCore
import NIOHTTP1
import NIOSSL

/// An async Kubernetes API client: typed verbs on `KubeResource`s whose
/// objects are `JSON` values, and watches as async sequences.
///
/// ```swift
/// let client = try KubeClient(configuration: .kubeconfig(path: "~/.kube/config"))
/// let cm = try await client.get(.configMaps, namespace: "default", name: "settings")
/// ```
///
/// Errors are `KubeClientError`: `.status` carries the server's `Status`
/// (`isNotFound`, `isConflict`, ...). The client has no lifecycle to manage:
/// connections live in a process-wide pool keyed by TLS settings.
public final class KubeClient: Sendable {
    public let configuration: KubeClientConfiguration
    private let tlsConfiguration: TLSConfiguration?

    /// Largest response body read into memory (a list page, an object).
    public static let maximumBodySize = 256 << 20

    public init(configuration: KubeClientConfiguration) throws(KubeConfigError) {
        self.configuration = configuration
        guard configuration.server.hasPrefix("https://") else {
            tlsConfiguration = nil
            return
        }
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.applicationProtocols = ["h2", "http/1.1"]
        // A cancelled watch closes its connection; waiting long for the
        // server's close_notify would only keep the stream open on its side.
        tls.shutdownTimeout = .milliseconds(250)
        do {
            if let ca = configuration.certificateAuthorityPEM {
                tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(ca))
            }
            if configuration.insecureSkipTLSVerify { tls.certificateVerification = .none }
            if let client = configuration.clientCertificate {
                tls.certificateChain = try NIOSSLCertificate.fromPEMBytes(client.certificatePEM).map { .certificate($0) }
                tls.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: client.privateKeyPEM, format: .pem))
            }
        } catch {
            throw KubeConfigError(file: "configuration", field: "tls", message: "unusable certificate or key: \(error)")
        }
        tlsConfiguration = tls
    }

    // MARK: Reads

    /// GET one object. `namespace` defaults to the configuration's namespace.
    public func get(_ resource: KubeResource, namespace: String? = nil, name: String) async throws(KubeClientError) -> JSON {
        let path = resource.objectPath(namespace: objectNamespace(resource, namespace, nil), name: name)
        return try await send(.GET, path)
    }

    /// LIST, following `continue` tokens until the last page when `limit` is set.
    /// `namespace` nil lists across all namespaces. Items carry `kind` and
    /// `apiVersion` (filled from the list when the server leaves them out).
    public func list(_ resource: KubeResource, namespace: String? = nil, labelSelector: String? = nil,
                     fieldSelector: String? = nil, limit: Int? = nil) async throws(KubeClientError) -> KubeList {
        var items: [JSON] = []
        var continueToken: String?
        var resourceVersion = ""
        var pages = 0
        repeat {
            var query: [(String, String)] = []
            if let labelSelector, !labelSelector.isEmpty { query.append(("labelSelector", labelSelector)) }
            if let fieldSelector, !fieldSelector.isEmpty { query.append(("fieldSelector", fieldSelector)) }
            if let limit { query.append(("limit", String(limit))) }
            if let continueToken { query.append(("continue", continueToken)) }
            let page = try await send(.GET, resource.collectionPath(namespace: namespace), query: query)
            guard let pageItems = page["items"]?.arrayValue ?? (page["items"] == .null ? [] : nil) else {
                throw .invalidResponse("a list of \(resource) without items")
            }
            let itemKind = page["kind"]?.stringValue.map { $0.hasSuffix("List") ? String($0.dropLast(4)) : $0 }
            let apiVersion = page["apiVersion"]?.stringValue ?? resource.apiVersion
            for var item in pageItems {
                if item["kind"] == nil, let itemKind { item["kind"] = .string(itemKind) }
                if item["apiVersion"] == nil { item["apiVersion"] = .string(apiVersion) }
                items.append(item.ordered(first: ["kind", "apiVersion", "metadata"]))
            }
            resourceVersion = page.value(at: ["metadata", "resourceVersion"])?.stringValue ?? resourceVersion
            continueToken = page.value(at: ["metadata", "continue"])?.stringValue.flatMap { $0.isEmpty ? nil : $0 }
            pages += 1
        } while continueToken != nil
        return KubeList(items: items, resourceVersion: resourceVersion, pages: pages)
    }

    /// WATCH from `resourceVersion` (nil: from now, after synthetic ADDED
    /// events for what exists). The stream ends when the server ends it
    /// (`timeoutSeconds`); cancelling the consuming task, or dropping the
    /// sequence, closes the HTTP stream. An HTTP error before the stream
    /// starts is thrown here; a 410 after it starts is an `.error` event.
    public func watch(_ resource: KubeResource, namespace: String? = nil, labelSelector: String? = nil,
                      fieldSelector: String? = nil, resourceVersion: String? = nil, allowWatchBookmarks: Bool = true,
                      timeoutSeconds: Int? = nil) async throws(KubeClientError) -> KubeWatch {
        var query: [(String, String)] = [("watch", "true")]
        if let labelSelector, !labelSelector.isEmpty { query.append(("labelSelector", labelSelector)) }
        if let fieldSelector, !fieldSelector.isEmpty { query.append(("fieldSelector", fieldSelector)) }
        if let resourceVersion { query.append(("resourceVersion", resourceVersion)) }
        if allowWatchBookmarks { query.append(("allowWatchBookmarks", "true")) }
        if let timeoutSeconds { query.append(("timeoutSeconds", String(timeoutSeconds))) }
        let request = try makeRequest(.GET, resource.collectionPath(namespace: namespace) + KubePath.query(query), body: nil, contentType: nil)
        let response = try await execute(request, on: KubeHTTP.watchClient)
        guard response.status.code == 200 else {
            throw await failure(response)
        }
        return KubeWatch(body: response.body)
    }

    // MARK: Writes

    /// POST a new object. The namespace is `namespace`, else the object's, else the configuration's.
    public func create(_ resource: KubeResource, namespace: String? = nil, object: JSON,
                       fieldManager: String? = nil) async throws(KubeClientError) -> JSON {
        let path = resource.collectionPath(namespace: objectNamespace(resource, namespace, object))
        return try await send(.POST, path, query: fieldManager.map { [("fieldManager", $0)] } ?? [],
                              body: object.bytes(), contentType: "application/json")
    }

    /// PUT the whole object. Its `metadata.resourceVersion`, when set, makes
    /// the write conditional: a stale one fails with `isConflict`.
    public func update(_ resource: KubeResource, namespace: String? = nil, object: JSON,
                       fieldManager: String? = nil) async throws(KubeClientError) -> JSON {
        try await put(resource, namespace: namespace, object: object, subresource: nil, fieldManager: fieldManager)
    }

    /// PUT the `status` subresource (the object's status; other changes are ignored by the server).
    public func updateStatus(_ resource: KubeResource, namespace: String? = nil, object: JSON,
                             fieldManager: String? = nil) async throws(KubeClientError) -> JSON {
        try await put(resource, namespace: namespace, object: object, subresource: "status", fieldManager: fieldManager)
    }

    /// PATCH an object (or its `subresource`).
    public func patch(_ resource: KubeResource, namespace: String? = nil, name: String, _ patch: KubePatch,
                      subresource: String? = nil, fieldManager: String? = nil) async throws(KubeClientError) -> JSON {
        let path = resource.objectPath(namespace: objectNamespace(resource, namespace, nil), name: name, subresource: subresource)
        return try await send(.PATCH, path, query: fieldManager.map { [("fieldManager", $0)] } ?? [],
                              body: patch.body, contentType: patch.contentType)
    }

    /// PATCH the `status` subresource.
    public func patchStatus(_ resource: KubeResource, namespace: String? = nil, name: String,
                            _ patch: KubePatch, fieldManager: String? = nil) async throws(KubeClientError) -> JSON {
        try await self.patch(resource, namespace: namespace, name: name, patch, subresource: "status", fieldManager: fieldManager)
    }

    /// Server-side apply (`application/apply-patch+yaml`): creates the object
    /// or merges the fields `fieldManager` owns. `force` takes over fields
    /// another manager owns instead of failing with a conflict.
    public func apply(_ resource: KubeResource, namespace: String? = nil, object: JSON, fieldManager: String,
                      force: Bool = false, subresource: String? = nil) async throws(KubeClientError) -> JSON {
        guard let name = object.value(at: ["metadata", "name"])?.stringValue, !name.isEmpty else {
            throw .invalidResponse("apply needs metadata.name in the object")
        }
        let path = resource.objectPath(namespace: objectNamespace(resource, namespace, object), name: name, subresource: subresource)
        var query = [("fieldManager", fieldManager)]
        if force { query.append(("force", "true")) }
        // JSON is YAML, so the object goes as it is.
        return try await send(.PATCH, path, query: query, body: object.bytes(), contentType: "application/apply-patch+yaml")
    }

    /// DELETE an object; returns what the server answers (the object, or a
    /// Success `Status` for custom resources).
    @discardableResult
    public func delete(_ resource: KubeResource, namespace: String? = nil, name: String,
                       preconditions: DeletePreconditions? = nil,
                       propagationPolicy: String? = nil) async throws(KubeClientError) -> JSON {
        let path = resource.objectPath(namespace: objectNamespace(resource, namespace, nil), name: name)
        var options: [(String, JSON)] = []
        if let preconditions {
            var p: [(String, JSON)] = []
            if let uid = preconditions.uid { p.append(("uid", .string(uid))) }
            if let rv = preconditions.resourceVersion { p.append(("resourceVersion", .string(rv))) }
            options.append(("preconditions", .object(p)))
        }
        if let propagationPolicy { options.append(("propagationPolicy", .string(propagationPolicy))) }
        let body: [UInt8]? = options.isEmpty
            ? nil
            : JSON.object([("kind", .string("DeleteOptions")), ("apiVersion", .string("v1"))] + options).bytes()
        return try await send(.DELETE, path, body: body, contentType: body == nil ? nil : "application/json")
    }

    /// Any other request (`/version`, a subresource): the decoded JSON body of a 2xx answer.
    public func request(method: String, path: String, query: [(String, String)] = [], body: [UInt8]? = nil,
                        contentType: String? = nil) async throws(KubeClientError) -> JSON {
        try await send(HTTPMethod(rawValue: method), path, query: query, body: body, contentType: contentType)
    }

    // MARK: Plumbing

    private func put(_ resource: KubeResource, namespace: String?, object: JSON, subresource: String?,
                     fieldManager: String?) async throws(KubeClientError) -> JSON {
        guard let name = object.value(at: ["metadata", "name"])?.stringValue, !name.isEmpty else {
            throw .invalidResponse("update needs metadata.name in the object")
        }
        let path = resource.objectPath(namespace: objectNamespace(resource, namespace, object), name: name, subresource: subresource)
        return try await send(.PUT, path, query: fieldManager.map { [("fieldManager", $0)] } ?? [],
                              body: object.bytes(), contentType: "application/json")
    }

    /// Explicit namespace, else the object's, else the configured default; nil for cluster-scoped resources.
    private func objectNamespace(_ resource: KubeResource, _ explicit: String?, _ object: JSON?) -> String? {
        guard resource.namespaced else { return nil }
        if let explicit { return explicit }
        if let own = object?.value(at: ["metadata", "namespace"])?.stringValue, !own.isEmpty { return own }
        return configuration.namespace
    }

    private func send(_ method: HTTPMethod, _ path: String, query: [(String, String)] = [], body: [UInt8]? = nil,
                      contentType: String? = nil) async throws(KubeClientError) -> JSON {
        let request = try makeRequest(method, path + KubePath.query(query), body: body, contentType: contentType)
        let response = try await execute(request)
        guard (200..<300).contains(response.status.code) else {
            throw await failure(response)
        }
        let bytes = try await collect(response)
        do {
            return try JSON(parsing: bytes.readableBytesView)
        } catch {
            throw .invalidResponse("\(method) \(path): \(error)")
        }
    }

    private func makeRequest(_ method: HTTPMethod, _ pathAndQuery: String, body: [UInt8]?,
                             contentType: String?) throws(KubeClientError) -> HTTPClientRequest {
        var request = HTTPClientRequest(url: configuration.server + pathAndQuery)
        request.method = method
        request.tlsConfiguration = tlsConfiguration
        request.headers.add(name: "Accept", value: "application/json")
        request.headers.add(name: "User-Agent", value: configuration.userAgent)
        switch configuration.credentials {
        case .none:
            break
        case .bearerToken(let token):
            request.headers.add(name: "Authorization", value: "Bearer \(token)")
        case .tokenFile(let file):
            do {
                request.headers.add(name: "Authorization", value: "Bearer \(try file.read())")
            } catch {
                throw .transport("no token: \(error)")
            }
        case .basic(let username, let password):
            let encoded = Base64.encodeStandard("\(username):\(password)".utf8)
            request.headers.add(name: "Authorization", value: "Basic \(encoded)")
        }
        if let body {
            request.headers.add(name: "Content-Type", value: contentType ?? "application/json")
            request.body = .bytes(ByteBuffer(bytes: body))
        }
        return request
    }

    private func execute(_ request: HTTPClientRequest, on http: HTTPClient = KubeHTTP.client) async throws(KubeClientError) -> HTTPClientResponse {
        let timeout = configuration.requestTimeout.components
        let nanoseconds = timeout.seconds * 1_000_000_000 + timeout.attoseconds / 1_000_000_000
        do {
            return try await http.execute(request, deadline: .now() + .nanoseconds(nanoseconds))
        } catch {
            throw KubeClientError(transportError: error)
        }
    }

    private func collect(_ response: HTTPClientResponse) async throws(KubeClientError) -> ByteBuffer {
        do {
            return try await response.body.collect(upTo: Self.maximumBodySize)
        } catch {
            throw KubeClientError(transportError: error)
        }
    }

    /// The error for a non-2xx answer: its `Status`, or one made from the HTTP code.
    private func failure(_ response: HTTPClientResponse) async -> KubeClientError {
        let retryAfter = response.headers.first(name: "Retry-After").flatMap { Int($0.trimmingCharacters(in: .whitespaces)) }
            .map { Duration.seconds($0) }
        let bytes = (try? await response.body.collect(upTo: 1 << 20)).map { Array($0.readableBytesView) } ?? []
        if let json = try? JSON(parsing: bytes), let status = Status(kubeJSON: json) {
            var status = status
            if status.code == 0 { status.code = Int(response.status.code) }
            return .status(status, retryAfter: retryAfter)
        }
        let code = Int(response.status.code)
        let text = String(decoding: bytes.prefix(512), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        let status = Status(message: text.isEmpty ? response.status.reasonPhrase : text,
                            reason: KubeClientError.reason(forHTTPCode: code), details: nil, code: code)
        return .status(status, retryAfter: retryAfter)
    }
}

/// The items of a LIST (all pages) and the resourceVersion to watch from.
public struct KubeList: Sendable {
    public var items: [JSON]
    public var resourceVersion: String
    /// How many requests the list took.
    public var pages: Int
    public init(items: [JSON], resourceVersion: String, pages: Int = 1) {
        self.items = items
        self.resourceVersion = resourceVersion
        self.pages = pages
    }
}

/// A PATCH body and its content type.
public enum KubePatch: Sendable {
    /// RFC 7386 JSON merge patch (`null` deletes a key).
    case merge(JSON)
    /// RFC 6902 JSON patch: `[{"op":"replace","path":"/data/x","value":"y"}, ...]`.
    case json([JSON])
    /// Kubernetes strategic merge patch (built-in types only).
    case strategicMerge(JSON)

    public var contentType: String {
        switch self {
        case .merge: "application/merge-patch+json"
        case .json: "application/json-patch+json"
        case .strategicMerge: "application/strategic-merge-patch+json"
        }
    }

    var body: [UInt8] {
        switch self {
        case .merge(let patch), .strategicMerge(let patch): patch.bytes()
        case .json(let operations): JSON.array(operations).bytes()
        }
    }
}

/// Delete only if the object still has this uid / resourceVersion (else 409 Conflict).
public struct DeletePreconditions: Sendable {
    public var uid: String?
    public var resourceVersion: String?
    public init(uid: String? = nil, resourceVersion: String? = nil) {
        self.uid = uid
        self.resourceVersion = resourceVersion
    }
}

/// The process-wide HTTP clients. Globals are never deinitialised, so they
/// need no shutdown; requests carry their own TLS settings, which key the pools.
enum KubeHTTP {
    /// Requests with a bounded answer: HTTP/2 when the server offers it; a
    /// body that stalls for a minute fails rather than hanging the caller.
    static let client = make(.automatic, readTimeout: .seconds(60))
    /// Watches, each on an HTTP/1.1 connection of its own, without a read
    /// timeout (a quiet watch may send nothing for minutes). On HTTP/2 a
    /// stream reset makes the client drop DATA frames that arrived before it
    /// but were not yet read, so a cut watch could lose events it was sent;
    /// on HTTP/1.1 what the server wrote before closing is read before the EOF.
    static let watchClient = make(.http1Only, readTimeout: nil)

    private static func make(_ version: HTTPClient.Configuration.HTTPVersion, readTimeout: TimeAmount?) -> HTTPClient {
        var configuration = HTTPClient.Configuration(
            redirectConfiguration: .disallow,
            // The pool retries a failed connect until this passes, so keep it short.
            timeout: .init(connect: .seconds(5), read: readTimeout),
            decompression: .disabled)
        configuration.httpVersion = version
        return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }
}

extension KubeClientError {
    init(transportError error: any Error) {
        if error is CancellationError {
            self = .cancelled
        } else if let http = error as? HTTPClientError, http == .cancelled {
            self = .cancelled
        } else if Task.isCancelled {
            self = .cancelled
        } else {
            self = .transport(String(describing: error))
        }
    }

    /// The `reason` kube-apiserver uses for an HTTP code, for answers without a Status body.
    static func reason(forHTTPCode code: Int) -> String? {
        switch code {
        case 400: "BadRequest"
        case 401: "Unauthorized"
        case 403: "Forbidden"
        case 404: "NotFound"
        case 405: "MethodNotAllowed"
        case 409: "Conflict"
        case 410: "Expired"
        case 415: "UnsupportedMediaType"
        case 422: "Invalid"
        case 429: "TooManyRequests"
        case 500: "InternalError"
        case 503: "ServiceUnavailable"
        case 504: "Timeout"
        default: nil
        }
    }
}

// MARK: - Conveniences

extension KubeClient {
    /// GET that answers nil for 404 instead of throwing.
    public func getIfPresent(_ resource: KubeResource, namespace: String? = nil, name: String) async throws(KubeClientError) -> JSON? {
        do {
            return try await get(resource, namespace: namespace, name: name)
        } catch where error.isNotFound {
            return nil
        }
    }

    /// Read-modify-write with optimistic concurrency: gets the object, lets
    /// `change` edit it (returning false to leave it alone), PUTs it (or its
    /// status when `subresource` is "status"), and starts over on a conflict,
    /// up to `attempts` times. Returns the object as stored.
    @discardableResult
    public func modify(_ resource: KubeResource, namespace: String? = nil, name: String, subresource: String? = nil,
                       attempts: Int = 5, fieldManager: String? = nil,
                       _ change: (inout JSON) -> Bool) async throws(KubeClientError) -> JSON {
        var attempt = 0
        while true {
            attempt += 1
            var object = try await get(resource, namespace: namespace, name: name)
            guard change(&object) else { return object }
            do {
                if subresource == "status" {
                    return try await updateStatus(resource, namespace: namespace, object: object, fieldManager: fieldManager)
                }
                return try await update(resource, namespace: namespace, object: object, fieldManager: fieldManager)
            } catch where error.isConflict && attempt < attempts {
                continue
            }
        }
    }
}
