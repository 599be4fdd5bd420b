import Foundation
import IsthmusKubeTypes
import NIOConcurrencyHelpers
import NIOCore

/// One request as the handler saw it (the Authorization header is never kept).
public struct RecordedRequest: Sendable {
    public var method: String
    public var uri: String
    /// Header names and values; `Authorization` is replaced by `<redacted>`.
    public var headers: [(String, String)]
    public var http2: Bool
    public var statusCode: Int?

    public func header(_ name: String) -> String? {
        headers.first { $0.0.lowercased() == name.lowercased() }?.1
    }
}

/// Faults for tests, all off by default.
public struct FaultInjection: Sendable {
    /// Delay every response (watch headers included) by this long.
    public var responseDelay: Duration?
    /// Close each watch stream abruptly after it has sent this many events.
    public var cutWatchesAfterEvents: Int?
    /// With ``cutWatchesAfterEvents``: the cut falls inside the last event,
    /// of which only the first half is sent.
    public var cutWatchesMidEvent = false
    /// Fraction (0...1) of API requests answered with `errorStatusCode` instead.
    public var errorFraction: Double = 0
    /// 500, 503 or 429 (429 carries `Retry-After: 1`).
    public var errorStatusCode: Int = 503
    /// Close new connections right after accept.
    public var refuseConnections = false
    /// Close an HTTP/1.1 connection, unanswered, when a request arrives on it
    /// after it has already served one: an idle keep-alive timeout racing
    /// the client's next request. The request is recorded with no status.
    public var closeReusedConnections = false
    public init() {}
}

/// The request as the pure core needs it.
public struct APIRequest: Sendable {
    public var method: String
    public var uri: String
    public var headers: [(String, String)]
    public var body: [UInt8]
    public init(method: String, uri: String, headers: [(String, String)], body: [UInt8]) {
        self.method = method
        self.uri = uri
        self.headers = headers
        self.body = body
    }
    func header(_ name: String) -> String? {
        headers.first { $0.0.lowercased() == name.lowercased() }?.1
    }
}

public enum APIResponse: Sendable {
    case full(code: Int, contentType: String, body: [UInt8], extraHeaders: [(String, String)], priorityAndFairness: Bool)
    case watch(WatchSetup)
}

/// Everything a watch stream needs once its headers are sent.
public struct WatchSetup: Sendable {
    public var filter: WatchFilter
    public var plan: WatchPlan
    public var allowBookmarks: Bool
    public var timeout: Duration
    /// `kubectl get -w`: each event's object is a one-row Table (fixture 28f).
    public var asTable = false
}

/// Shared state of one fake API server. Decisions live here; the channel
/// handlers only move bytes.
public final class APIServerCore: Sendable {
    public let store: NIOLockedValueBox<Store>
    let tokens: [String: String]
    let faults: NIOLockedValueBox<FaultInjection>
    let recent: NIOLockedValueBox<[RecordedRequest]>
    /// TCP connections accepted (HTTP/1.1 and HTTP/2 alike).
    let connectionsAccepted = NIOLockedValueBox(0)
    /// The connections open now, so a test can send them GOAWAY or drop them.
    let openConnections = NIOLockedValueBox<[ObjectIdentifier: any Channel]>([:])
    /// Non-watch requests being answered now (a delayed one counts until it is sent), and the most at once.
    let shortInFlight = NIOLockedValueBox((now: 0, peak: 0))
    let recentCapacity = 1000
    let serverAddress: NIOLockedValueBox<String>
    let bookmarkInterval: Duration
    let maxWatchTimeout: Duration
    let uidCounter = NIOLockedValueBox<UInt64>(0)

    init(store: Store, tokens: [String: String], bookmarkInterval: Duration, maxWatchTimeout: Duration,
         namespaceFinalizationDelay: Duration? = .seconds(1)) {
        self.namespaceFinalizationDelay = namespaceFinalizationDelay
        self.store = NIOLockedValueBox(store)
        self.tokens = tokens
        self.faults = NIOLockedValueBox(FaultInjection())
        self.recent = NIOLockedValueBox([])
        self.serverAddress = NIOLockedValueBox("127.0.0.1:6443")
        self.bookmarkInterval = bookmarkInterval
        self.maxWatchTimeout = maxWatchTimeout
    }

    func record(_ request: RecordedRequest) {
        recent.withLockedValue {
            $0.append(request)
            if $0.count > recentCapacity { $0.removeFirst($0.count - recentCapacity) }
        }
    }

    static func timestamp(_ date: Date = Date()) -> String {
        var t = time_t(date.timeIntervalSince1970)
        var tm = tm()
        gmtime_r(&t, &tm)
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec)
    }

    public func writeContext() -> WriteContext {
        let letters = Array("bcdfghjklmnpqrstvwxz2456789")
        let suffix = String((0..<5).map { _ in letters.randomElement() ?? "x" })
        return WriteContext(timestamp: Self.timestamp(), uid: UUID().uuidString.lowercased(), nameSuffix: suffix)
    }

    // MARK: Handling

    public func handle(_ request: APIRequest) -> APIResponse {
        // Authentication: a bearer token from the static list, else 401 (fixture 37).
        let authorization = request.header("authorization") ?? ""
        guard authorization.hasPrefix("Bearer "), tokens[String(authorization.dropFirst(7))] != nil else {
            return status(.unauthorized, priorityAndFairness: false)
        }
        let faults = self.faults.withLockedValue { $0 }
        if faults.errorFraction > 0, Double.random(in: 0..<1) < faults.errorFraction {
            switch faults.errorStatusCode {
            case 429: return statusWithHeaders(.tooManyRequests(), extra: [("Retry-After", "1")])
            case 500: return status(.internalError("injected fault"))
            default: return status(.serviceUnavailable())
            }
        }

        let (path, rawQuery) = Self.splitURI(request.uri)
        let query = Query(rawQuery)
        let userAgent = request.header("user-agent") ?? ""
        let pretty = query.bool("pretty") ?? (userAgent.hasPrefix("curl") || userAgent.hasPrefix("Wget") || userAgent.hasPrefix("Mozilla/5.0"))
        let registry = store.withLockedValue { $0.registry }
        let route = Router.route(path: path, registry: registry)

        func json(_ value: JSON, code: Int = 200) -> APIResponse {
            let body = pretty ? Array(value.prettySerialized().utf8) : value.bytes() + [0x0A]
            return .full(code: code, contentType: "application/json", body: body, extraHeaders: [], priorityAndFairness: true)
        }

        switch route {
        case .version:
            guard request.method == "GET" else { return status(.methodNotAllowed) }
            return .full(code: 200, contentType: "application/json", body: Array(Discovery.version().prettySerialized().utf8),
                         extraHeaders: [], priorityAndFairness: true)
        case .health:
            return .full(code: 200, contentType: "text/plain; charset=utf-8", body: Array("ok".utf8), extraHeaders: [("X-Content-Type-Options", "nosniff")], priorityAndFairness: true)
        case .legacyVersions:
            return json(Discovery.apiVersions(serverAddress: serverAddress.withLockedValue { $0 }))
        case .groupList:
            return json(Discovery.groupList(registry: registry))
        case .group(let g):
            return json(Discovery.group(g, registry: registry))
        case .resourceList(let g, let v):
            return json(Discovery.resourceList(group: g, version: v, registry: registry))
        case .openAPIv3(let gv):
            if gv.isEmpty {
                // The index is text/plain upstream (fixture 11).
                return .full(code: 200, contentType: "text/plain; charset=utf-8", body: OpenAPI.index(registry).bytes(),
                             extraHeaders: [], priorityAndFairness: true)
            }
            guard let doc = OpenAPI.document(gv, registry) else { return notFoundText() }
            return .full(code: 200, contentType: "application/json", body: doc.bytes(),
                         extraHeaders: [("Cache-Control", "public, immutable")].filter { _ in query["hash"] != nil }, priorityAndFairness: true)
        case .notFound:
            // /openapi/v2 too: kubectl uses v3 and falls back to compiled-in types.
            return .full(code: 404, contentType: "text/plain; charset=utf-8", body: Array("404 page not found\n".utf8),
                         extraHeaders: [("X-Content-Type-Options", "nosniff")], priorityAndFairness: true)
        case .unknownResource:
            return status(.resourceNotFound)
        case .resource(let r):
            let negotiation = Negotiation(accept: request.header("accept"))
            if negotiation == .notAcceptable { return status(.notAcceptable) }
            do {
                return try resource(r, request: request, query: query, table: negotiation == .table, pretty: pretty)
            } catch {
                return status(error)
            }
        }
    }

    func notFoundText() -> APIResponse {
        .full(code: 404, contentType: "text/plain; charset=utf-8", body: Array("404 page not found\n".utf8),
              extraHeaders: [("X-Content-Type-Options", "nosniff")], priorityAndFairness: true)
    }

    static func splitURI(_ uri: String) -> (String, Substring) {
        if let q = uri.firstIndex(of: "?") {
            return (String(uri[..<q]), uri[uri.index(after: q)...])
        }
        return (uri, "")
    }

    func status(_ s: Status, priorityAndFairness: Bool = true) -> APIResponse {
        .full(code: s.code, contentType: "application/json", body: s.body, extraHeaders: [], priorityAndFairness: priorityAndFairness)
    }

    func statusWithHeaders(_ s: Status, extra: [(String, String)]) -> APIResponse {
        .full(code: s.code, contentType: "application/json", body: s.body, extraHeaders: extra, priorityAndFairness: true)
    }

    func encode(_ value: JSON, code: Int, pretty: Bool) -> APIResponse {
        let body = pretty ? Array(value.prettySerialized().utf8) : value.bytes() + [0x0A]
        return .full(code: code, contentType: "application/json", body: body, extraHeaders: [], priorityAndFairness: true)
    }

    func parseBody(_ request: APIRequest) throws(Status) -> JSON {
        let contentType = (request.header("content-type") ?? "application/json").lowercased()
        if contentType.hasPrefix("application/yaml") {
            guard let doc = try? ApplyDocument.parse(request.body) else { throw Status.badRequest("error decoding YAML") }
            return doc
        }
        if contentType.hasPrefix("application/vnd.kubernetes.protobuf") {
            do { return try ProtobufBody.decode(request.body) } catch {
                switch error {
                case .unsupportedKind(let kind):
                    throw Status.unsupportedProtobuf("protobuf bodies of \(kind) are not decoded by the embedded API server")
                case .unsupportedField(let field):
                    throw Status.unsupportedProtobuf("the embedded API server does not decode field \(field) of this protobuf body")
                case .malformed(let why): throw Status.badRequest("error decoding protobuf body: \(why)")
                }
            }
        }
        guard contentType.hasPrefix("application/json") else { throw Status.unsupportedMediaType }
        do { return try JSON(parsing: request.body) } catch {
            throw Status.badRequest("error decoding body: \(error.description)")
        }
    }

    func resource(_ r: ResourceRoute, request: APIRequest, query: Query, table: Bool, pretty: Bool) throws(Status) -> APIResponse {
        let type = r.type
        let dryRun = query["dryRun"] == "All"
        switch request.method {
        case "GET":
            let isWatch = r.watchPath || query.bool("watch") == true
            if r.name.isEmpty || (isWatch && !r.name.isEmpty) {
                var labelSelector = LabelSelector.everything
                var fieldSelector = FieldSelector.everything
                if let l = query["labelSelector"] { labelSelector = try LabelSelector(parsing: l) }
                if let f = query["fieldSelector"] { fieldSelector = try FieldSelector(parsing: f) }
                if !r.name.isEmpty {
                    fieldSelector.requirements.append(.init(field: "metadata.name", value: r.name, negated: false))
                }
                if isWatch {
                    var options = WatchOptions()
                    options.labelSelector = labelSelector
                    options.fieldSelector = fieldSelector
                    options.resourceVersion = query["resourceVersion"]
                    options.resourceVersionMatch = query["resourceVersionMatch"]
                    options.sendInitialEvents = query.bool("sendInitialEvents")
                    options.allowWatchBookmarks = query.bool("allowWatchBookmarks") ?? false
                    let plan = try read { s throws(Status) in try s.watchPlan(type, namespace: r.namespace, options: options) }
                    var timeout = maxWatchTimeout
                    if let t = query["timeoutSeconds"].flatMap(Int.init), t > 0 { timeout = min(timeout, .seconds(t)) }
                    return .watch(WatchSetup(filter: WatchFilter(type: type, namespace: r.namespace, labelSelector: labelSelector, fieldSelector: fieldSelector),
                                             plan: plan, allowBookmarks: options.allowWatchBookmarks, timeout: timeout, asTable: table))
                }
                if query["sendInitialEvents"] != nil {
                    throw Status.invalid(kind: "ListOptions", group: "meta.k8s.io", name: "", causes: [
                        Status.Cause(reason: "FieldValueForbidden", message: "Forbidden: sendInitialEvents is forbidden for list", field: "sendInitialEvents"),
                    ])
                }
                var options = ListOptions()
                options.labelSelector = labelSelector
                options.fieldSelector = fieldSelector
                options.limit = query["limit"].flatMap(Int.init)
                options.continueToken = query["continue"]
                options.resourceVersion = query["resourceVersion"]
                options.resourceVersionMatch = query["resourceVersionMatch"]
                let result = try read { s throws(Status) in try s.list(type, namespace: r.namespace, options: options) }
                return encode(table ? Tables.table(result) : Self.listJSON(result), code: 200, pretty: pretty)
            }
            let object = try read { s throws(Status) in try s.get(type, namespace: r.namespace, name: r.name) }
            if table {
                let result = ListResult(type: type, items: [object], resourceVersion: UInt64(object.value(at: ["metadata", "resourceVersion"])?.stringValue ?? "") ?? 0)
                return encode(Tables.table(result), code: 200, pretty: pretty)
            }
            return encode(object, code: 200, pretty: pretty)

        case "POST":
            guard r.name.isEmpty else { return status(.methodNotAllowed) }
            let body = try parseBody(request)
            let context = writeContext()
            let object = try mutate(dryRun) { s throws(Status) in try s.create(type, namespace: r.namespace, body: body, context: context) }
            return encode(object, code: 201, pretty: pretty)

        case "PUT":
            guard !r.name.isEmpty else { return status(.methodNotAllowed) }
            let body = try parseBody(request)
            let context = writeContext()
            let object = try mutate(dryRun) { s throws(Status) in
                try s.update(type, namespace: r.namespace, name: r.name, body: body,
                             subresource: r.subresource.isEmpty ? nil : r.subresource, context: context)
            }
            return encode(object, code: 200, pretty: pretty)

        case "PATCH":
            guard !r.name.isEmpty else { return status(.methodNotAllowed) }
            guard let patchType = PatchType(contentType: request.header("content-type") ?? "") else {
                throw Status.unsupportedMediaType
            }
            // Checked before the object is looked up, as the patch handler does.
            if patchType == .strategic && type.isCustom { throw Status.strategicMergeUnsupported }
            if patchType == .apply || patchType == .applyCBOR, (query["fieldManager"] ?? "").isEmpty {
                throw Status.invalid(kind: "PatchOptions", group: "meta.k8s.io", name: "", causes: [
                    Status.Cause(reason: "FieldValueRequired", message: "Required value: is required for apply patch", field: "fieldManager"),
                ])
            }
            let context = writeContext()
            let body = request.body
            let object = try mutate(dryRun) { s throws(Status) in
                try s.patch(type, namespace: r.namespace, name: r.name, patchType: patchType, patch: body,
                            subresource: r.subresource.isEmpty ? nil : r.subresource, context: context)
            }
            return encode(object, code: 200, pretty: pretty)

        case "DELETE":
            guard r.subresource.isEmpty else { return status(.methodNotAllowed) }
            if r.name.isEmpty {
                // deletecollection; namespaces have none upstream (405).
                guard type.groupResource != ResourceRegistry.namespaceResource else { return status(.methodNotAllowed) }
                var options = ListOptions()
                if let l = query["labelSelector"] { options.labelSelector = try LabelSelector(parsing: l) }
                if let f = query["fieldSelector"] { options.fieldSelector = try FieldSelector(parsing: f) }
                let list = try mutate(dryRun) { s throws(Status) in
                    let deleted = try s.deleteCollection(type, namespace: r.namespace, options: options)
                    return Self.listJSON(ListResult(type: type, items: deleted, resourceVersion: s.resourceVersion))
                }
                return encode(list, code: 200, pretty: pretty)
            }
            var uid: String?
            var rv: String?
            if !request.body.isEmpty, let options = try? JSON(parsing: request.body) {
                uid = options.value(at: ["preconditions", "uid"])?.stringValue
                rv = options.value(at: ["preconditions", "resourceVersion"])?.stringValue
            }
            let deleted = try mutate(dryRun) { s throws(Status) in
                try s.delete(type, namespace: r.namespace, name: r.name, precondition: (uid, rv))
            }
            if type.groupResource == ResourceRegistry.namespaceResource && !dryRun { finalizeNamespaceLater(r.name) }
            if type.isCustom {
                // Custom resources answer a Success Status (fixture 51).
                let s = Status(status: "Success", message: nil, reason: nil, details: Status.Details(
                    name: r.name, group: type.group, kind: type.resource, uid: deleted.value(at: ["metadata", "uid"])?.stringValue), code: 0)
                return encode(s.json, code: 200, pretty: pretty)
            }
            return encode(deleted, code: 200, pretty: pretty)

        default:
            return status(.methodNotAllowed)
        }
    }

    /// Runs a write under the store lock; a dry run works on a copy.
    func mutate(_ dryRun: Bool, _ body: (inout Store) throws(Status) -> JSON) throws(Status) -> JSON {
        let result: Result<JSON, Status> = store.withLockedValue { s in
            if dryRun {
                var copy = s
                do throws(Status) { return .success(try body(&copy)) } catch { return .failure(error) }
            }
            do throws(Status) { return .success(try body(&s)) } catch { return .failure(error) }
        }
        switch result {
        case .success(let object):
            if !dryRun { onCommit() }
            return object
        case .failure(let status):
            throw status
        }
    }

    /// Runs a read under the store lock.
    func read<T>(_ body: (Store) throws(Status) -> T) throws(Status) -> T {
        let result: Result<T, Status> = store.withLockedValue { s in
            do throws(Status) { return .success(try body(s)) } catch { return .failure(error) }
        }
        return try result.get()
    }

    /// How long a deleted namespace stays `Terminating` before its contents and it are removed.
    let namespaceFinalizationDelay: Duration?
    /// Set by the server: the loop that runs the namespace "controller"; its timers die with the server.
    let timerLoop = NIOLockedValueBox<(any EventLoop)?>(nil)

    /// Schedules what the namespace controller does after a namespace DELETE.
    func finalizeNamespaceLater(_ name: String) {
        guard let delay = namespaceFinalizationDelay, let loop = timerLoop.withLockedValue({ $0 }) else { return }
        loop.scheduleTask(in: TimeAmount(delay)) { [self] in
            _ = try? mutate(false) { s throws(Status) in s.finalizeNamespace(name); return .null }
        }
    }

    /// Set by the server: wakes the watchers after a commit.
    let commitHook = NIOLockedValueBox<(@Sendable () -> Void)?>(nil)
    func onCommit() { commitHook.withLockedValue { $0 }?() }

    /// Typed lists drop item kinds and keep upstream key order; custom resource lists are maps (sorted keys).
    static func listJSON(_ result: ListResult) -> JSON {
        let type = result.type
        var metadata: [(String, JSON)] = [("resourceVersion", .string(String(result.resourceVersion)))]
        if let c = result.continueToken { metadata.append(("continue", .string(c))) }
        if let remaining = result.remainingItemCount { metadata.append(("remainingItemCount", .int(remaining))) }
        if type.isCustom {
            if result.continueToken == nil { metadata.append(("continue", .string(""))) }
            return JSON.object([
                ("apiVersion", .string(type.groupVersion)), ("items", .array(result.items)),
                ("kind", .string(type.listKind)), ("metadata", .object(metadata)),
            ]).sortedKeys()
        }
        let items: [JSON] = result.items.map { item in
            var i = item
            i["kind"] = nil
            i["apiVersion"] = nil
            return i
        }
        return .object([("kind", .string(type.listKind)), ("apiVersion", .string(type.groupVersion)),
                        ("metadata", .object(metadata)), ("items", .array(items))])
    }
}
