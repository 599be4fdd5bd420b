extension RequestAttributes {
    /// Parses like kube-apiserver's `RequestInfoFactory.NewRequestInfo`
    /// (k8s.io/apiserver/pkg/endpoints/request/requestinfo.go, with the API
    /// prefixes `api` and `apis` and the groupless prefix `api`), after checking
    /// that the target cannot mean one thing here and another upstream.
    ///
    /// - `method` is the HTTP method as received (case-sensitive, as in HTTP).
    /// - `target` is the request target as received: `/path?query`.
    ///
    /// The resulting `path` is the *decoded* path (the API server decodes before
    /// it parses, so `/api/v1/%73ecrets` is a request for secrets); forward it
    /// instead of the raw one. `query` is the raw query, forwarded verbatim.
    ///
    /// Differences from kube-apiserver, all deliberate:
    /// - HEAD is reported as `get` for non-resource requests too (the API server
    ///   says `head`): a HEAD is a GET without a body, and a policy that lets a
    ///   peer GET `/version` should not need a second rule to let it HEAD it.
    /// - Targets the API server would read differently from a naive proxy, or
    ///   answer with an error anyway, are refused with a ``TargetRejection``
    ///   instead of being parsed.
    /// - A `fieldSelector` that is not valid UTF-8 sets no name (conservative).
    public init(method: String, target: String) throws(TargetRejection) {
        var contiguous = target
        let result = contiguous.withUTF8 { raw in
            Result { () throws(TargetRejection) in
                try RequestInfoParser.parse(method: method, target: target, raw: raw)
            }
        }
        self = try result.get()
    }
}

/// The parser behind ``RequestAttributes/init(method:target:)``.
enum RequestInfoParser {
    static func parse(
        method: String, target: String, raw: UnsafeBufferPointer<UInt8>
    ) throws(TargetRejection) -> RequestAttributes {
        let checked = try RequestTarget.parse(raw)
        let parameters =
            if let queryStart = checked.queryStart {
                try QueryParameters.parse(raw, from: queryStart)
            } else {
                QueryParameters()
            }
        let query = checked.queryStart.map { raw.string(in: $0..<raw.count) } ?? ""

        if let decodedPath = checked.decodedPath {
            let result = decodedPath.withUnsafeBufferPointer { path in
                Result { () throws(TargetRejection) in
                    try resolve(
                        method: method, path: path, pathString: path.string(in: 0..<path.count),
                        segmentCount: checked.segmentCount, query: query, raw: raw, parameters: parameters)
                }
            }
            return try result.get()
        }
        let pathBytes = UnsafeBufferPointer(rebasing: raw[0..<checked.pathEnd])
        // Without a query or escapes the path is the target: no copy.
        let pathString = checked.pathEnd == raw.count ? target : raw.string(in: 0..<checked.pathEnd)
        return try resolve(
            method: method, path: pathBytes, pathString: pathString,
            segmentCount: checked.segmentCount, query: query, raw: raw, parameters: parameters)
    }

    /// NewRequestInfo proper, over the canonical path.
    private static func resolve(
        method: String, path: UnsafeBufferPointer<UInt8>, pathString: String, segmentCount: Int,
        query: String, raw: UnsafeBufferPointer<UInt8>, parameters: QueryParameters
    ) throws(TargetRejection) -> RequestAttributes {
        // A non-resource request until proven otherwise.
        var attributes = RequestAttributes(
            isResourceRequest: false, path: pathString, query: query,
            verb: nonResourceVerb(method: method))

        var segments = PathSegments(path)
        guard segmentCount >= 3, let prefix = segments.next() else { return attributes }
        let isGroupless: Bool
        if path.bytes(in: prefix, equal: "api") {
            isGroupless = true
        } else if path.bytes(in: prefix, equal: "apis") {
            isGroupless = false
        } else {
            return attributes
        }

        var apiGroup = ""
        if !isGroupless {
            // `/apis/GROUP/VERSION` is discovery: a group needs four segments.
            guard segmentCount >= 4, let group = segments.next() else { return attributes }
            apiGroup = path.string(in: group)
        }
        guard let version = segments.next(), var part = segments.next() else { return attributes }

        attributes.isResourceRequest = true
        attributes.apiPrefix = isGroupless ? "api" : "apis"
        attributes.apiGroup = apiGroup
        attributes.apiVersion = path.string(in: version)

        // Legacy verb prefixes: `/api/v1/watch/...`, `/api/v1/proxy/...`. The
        // verb comes from the path whatever the method is.
        let isProxy = path.bytes(in: part, equal: "proxy")
        if isProxy || path.bytes(in: part, equal: "watch") {
            guard let next = segments.next() else { throw .missingResourceAfterVerb }
            attributes.verb = isProxy ? Verb("proxy") : .watch
            part = next
        } else {
            attributes.verb = resourceVerb(method: method)
        }
        // `proxy` takes everything after the name as a proxied sub-path, not a
        // subresource.
        let allowsSubresource = !isProxy

        // What the API server calls `parts`: resource/name/subresource, and
        // anything after that is not interpreted.
        var nameFollows = true
        if path.bytes(in: part, equal: "namespaces"), let namespace = segments.next() {
            attributes.namespace = path.string(in: namespace)
            let afterNamespace = segments.next()
            if let afterNamespace, !isNamespaceSubresource(afterNamespace, in: path) {
                // `/namespaces/NS/RESOURCE/...`: a resource inside the namespace.
                attributes.resource = path.string(in: afterNamespace)
            } else {
                // `/namespaces/NS` or `/namespaces/NS/status|finalize`: the
                // namespace object itself, whose namespace is its own name.
                attributes.resource = "namespaces"
                attributes.name = attributes.namespace
                if allowsSubresource, let afterNamespace {
                    attributes.subresource = path.string(in: afterNamespace)
                }
                nameFollows = false
            }
        } else {
            attributes.resource = path.string(in: part)
        }
        if nameFollows, let name = segments.next() {
            attributes.name = path.string(in: name)
            if allowsSubresource, let subresource = segments.next() {
                attributes.subresource = path.string(in: subresource)
            }
        }

        // A get without a name is a collection read: a list, or a watch when
        // `?watch=` is true. Then a `metadata.name` field selector narrows it
        // to one object, and the name is what authorization sees.
        if attributes.name.isEmpty && attributes.verb == .get {
            let isWatch = parameters.watch.map { QueryParameters.isTrue(watch: QueryComponent(raw, $0)) } ?? false
            attributes.verb = isWatch ? .watch : .list
            if let selector = parameters.fieldSelector,
                let name = FieldSelector.requiredName(QueryComponent(raw, selector)),
                FieldSelector.isValidPathSegmentName(name)
            {
                attributes.name = name
            }
        }
        if attributes.name.isEmpty && attributes.verb == .delete {
            attributes.verb = .deletecollection
        }
        return attributes
    }

    /// The API server's `namespaceSubresources`: after `/namespaces/NS/` these
    /// name a subresource of the namespace, anything else a resource in it.
    private static func isNamespaceSubresource(_ segment: Range<Int>, in path: UnsafeBufferPointer<UInt8>) -> Bool {
        path.bytes(in: segment, equal: "status") || path.bytes(in: segment, equal: "finalize")
    }

    /// The API server lowercases the method for non-resource requests; HEAD is
    /// reported as `get` (see ``RequestAttributes/init(method:target:)``).
    private static func nonResourceVerb(method: String) -> Verb {
        switch method {
        case "GET", "HEAD": .get
        default: Verb(method.lowercased())
        }
    }

    /// Exactly the API server's switch: methods are case-sensitive, and any
    /// other method yields the empty verb. Lowercasing an unknown method
    /// instead would turn a `LIST` or `WATCH` request into an allowed verb.
    private static func resourceVerb(method: String) -> Verb {
        switch method {
        case "GET", "HEAD": .get
        case "POST": .create
        case "PUT": .update
        case "PATCH": .patch
        case "DELETE": .delete
        default: Verb("")
        }
    }
}

/// Walks the segments of a canonical path (leading `/`, no empty segments).
private struct PathSegments {
    let path: UnsafeBufferPointer<UInt8>
    var position = 1

    init(_ path: UnsafeBufferPointer<UInt8>) { self.path = path }

    mutating func next() -> Range<Int>? {
        guard position < path.count else { return nil }
        var end = position
        while end < path.count && path[end] != ASCII.slash { end += 1 }
        defer { position = end + 1 }
        return position..<end
    }
}
