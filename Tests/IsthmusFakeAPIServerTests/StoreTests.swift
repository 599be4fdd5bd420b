import IsthmusFakeAPIServer
import IsthmusKubeTypes
import Testing

func json(_ text: String) -> JSON {
    do { return try JSON(parsing: text) } catch { fatalError("bad test JSON: \(text)") }
}

struct Fixture {
    var store = Store(historyCapacity: 100)
    var counter = 0
    let registry = ResourceRegistry()

    mutating func context() -> WriteContext {
        counter += 1
        return WriteContext(timestamp: "2026-11-25T16:52:39Z", uid: "uid-\(counter)", nameSuffix: "abcde")
    }

    func type(_ resource: String, group: String = "", version: String = "v1") -> ResourceType {
        guard let t = store.registry.lookup(group: group, version: version, resource: resource) else {
            fatalError("no \(resource)")
        }
        return t
    }

    init(namespaces: [String] = ["fx"]) {
        for ns in namespaces {
            _ = try? store.create(type("namespaces"), namespace: "", body: json(#"{"metadata":{"name":"\#(ns)"}}"#), context: context())
        }
    }

    @discardableResult
    mutating func service(_ name: String, labels: String = "{}", namespace: String = "fx") throws -> JSON {
        let ctx = context()
        return try store.create(type("services"), namespace: namespace,
                                body: json(#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"\#(name)","labels":\#(labels)},"spec":{"ports":[{"port":80}]}}"#),
                                context: ctx)
    }
}

@Suite("Store")
struct StoreTests {
    @Test("create stamps uid, resourceVersion and creationTimestamp, in upstream key order")
    func create() throws {
        var f = Fixture()
        let svc = try f.service("a")
        #expect(svc.serialized().hasPrefix(#"{"kind":"Service","apiVersion":"v1","metadata":{"name":"a","namespace":"fx","uid":"uid-2","resourceVersion":"3","creationTimestamp":"2026-11-25T16:52:39Z","labels":{}},"spec":{"ports":[{"port":80}],"type":"ClusterIP","sessionAffinity":"None"},"status":{"loadBalancer":{}}}"#))
        #expect(f.store.resourceVersion == 3)
    }

    @Test("creating twice is 409 AlreadyExists")
    func alreadyExists() throws {
        var f = Fixture()
        try f.service("a")
        #expect(throws: Status.alreadyExists(resource: "services", name: "a")) { try f.service("a") }
    }

    @Test("a namespaced create in a missing namespace is 404 for the namespace")
    func missingNamespace() {
        var f = Fixture()
        #expect(throws: Status.notFound(resource: "namespaces", name: "nope")) { try f.service("a", namespace: "nope") }
    }

    @Test("an invalid Service name is 422 with the DNS-1035 wording of fixture 18")
    func invalidName() throws {
        var f = Fixture()
        do {
            try f.service("Bad_Name")
            Issue.record("created")
        } catch let status as Status {
            #expect(String(decoding: status.body, as: UTF8.self).contains(#""message":"Service \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')","reason":"Invalid","details":{"name":"Bad_Name","kind":"Service","causes":[{"reason":"FieldValueInvalid""#))
        }
    }

    @Test("an update with a stale resourceVersion is 409 Conflict")
    func staleUpdate() throws {
        var f = Fixture()
        var svc = try f.service("a")
        let ctx = f.context()
        _ = try f.store.patch(f.type("services"), namespace: "fx", name: "a", patchType: .merge,
                              patch: Array(#"{"metadata":{"labels":{"x":"y"}}}"#.utf8), subresource: nil, context: ctx)
        svc.setValue(.string("z"), at: ["metadata", "labels", "stale"])
        let ctx2 = f.context()
        #expect(throws: Status.conflict(resource: "services", name: "a")) {
            try f.store.update(f.type("services"), namespace: "fx", name: "a", body: svc, subresource: nil, context: ctx2)
        }
    }

    @Test("merge patch replaces lists; JSON patch test failure is 422")
    func patches() throws {
        var f = Fixture()
        try f.service("a")
        let t = f.type("services")
        let ctx = f.context()
        let merged = try f.store.patch(t, namespace: "fx", name: "a", patchType: .merge,
                                       patch: Array(#"{"spec":{"ports":[{"port":81}]}}"#.utf8), subresource: nil, context: ctx)
        #expect(merged.value(at: ["spec", "ports"]) == json(#"[{"port":81}]"#))
        let jsonPatched = try f.store.patch(t, namespace: "fx", name: "a", patchType: .json,
                                            patch: Array(#"[{"op":"add","path":"/metadata/labels","value":{"k":"v"}},{"op":"replace","path":"/spec/ports/0/port","value":82}]"#.utf8),
                                            subresource: nil, context: ctx)
        #expect(jsonPatched.value(at: ["metadata", "labels", "k"]) == .string("v"))
        #expect(jsonPatched.value(at: ["spec", "ports", "0"]) == nil)
        #expect(jsonPatched.value(at: ["spec", "ports"])?.arrayValue?.first?["port"]?.intValue == 82)
        #expect(throws: Status.patchRejected) {
            try f.store.patch(t, namespace: "fx", name: "a", patchType: .json,
                              patch: Array(#"[{"op":"test","path":"/spec/type","value":"NodePort"}]"#.utf8), subresource: nil, context: ctx)
        }
    }

    @Test("list pages with limit and continue, and every page reports the first page's resourceVersion")
    func paging() throws {
        var f = Fixture()
        for name in ["a", "b", "c"] { try f.service(name) }
        let t = f.type("services")
        var options = ListOptions()
        options.limit = 1
        let first = try f.store.list(t, namespace: "fx", options: options)
        #expect(first.items.map { $0.value(at: ["metadata", "name"])?.stringValue } == ["a"])
        #expect(first.remainingItemCount == 2)
        try f.service("aa")  // a newer write is not visible to later pages
        options.continueToken = first.continueToken
        let second = try f.store.list(t, namespace: "fx", options: options)
        #expect(second.items.map { $0.value(at: ["metadata", "name"])?.stringValue } == ["b"])
        #expect(second.resourceVersion == first.resourceVersion)
        options.continueToken = second.continueToken
        let third = try f.store.list(t, namespace: "fx", options: options)
        #expect(third.items.map { $0.value(at: ["metadata", "name"])?.stringValue } == ["c"])
        #expect(third.continueToken == nil && third.remainingItemCount == nil)
    }

    @Test("resourceVersion=0 ignores limit, as the watch cache does (fixture 28c)")
    func rv0IgnoresLimit() throws {
        var f = Fixture()
        for name in ["a", "b"] { try f.service(name) }
        var options = ListOptions()
        options.limit = 1
        options.resourceVersion = "0"
        let result = try f.store.list(f.type("services"), namespace: "fx", options: options)
        #expect(result.items.count == 2 && result.continueToken == nil)
    }

    @Test("an exact list in the past is rebuilt from the history; too old is 410")
    func exactList() throws {
        var f = Fixture()
        try f.service("a")
        let rv = f.store.resourceVersion
        try f.service("b")
        var options = ListOptions()
        options.resourceVersion = String(rv)
        options.resourceVersionMatch = "Exact"
        let result = try f.store.list(f.type("services"), namespace: "fx", options: options)
        #expect(result.items.count == 1 && result.resourceVersion == rv)

        var small = Fixture()
        small.store = Store(historyCapacity: 2)
        _ = try small.store.create(small.type("namespaces"), namespace: "", body: json(#"{"metadata":{"name":"fx"}}"#), context: small.context())
        for name in ["a", "b", "c"] { try small.service(name) }
        options.resourceVersion = "1"
        #expect(throws: Status.listTooOld) { try small.store.list(small.type("services"), namespace: "fx", options: options) }
    }

    @Test("label and field selectors filter lists; unsupported fields are 400")
    func selectors() throws {
        var f = Fixture()
        try f.service("a", labels: #"{"app":"fx","tier":"front"}"#)
        try f.service("b", labels: #"{"app":"fx","tier":"back"}"#)
        try f.service("c", labels: #"{"app":"other"}"#)
        let t = f.type("services")
        var options = ListOptions()
        options.labelSelector = try LabelSelector(parsing: "app=fx,tier!=back")
        #expect(try f.store.list(t, namespace: "fx", options: options).items.count == 1)
        options = ListOptions()
        options.fieldSelector = try FieldSelector(parsing: "metadata.name!=a")
        #expect(try f.store.list(t, namespace: "fx", options: options).items.count == 2)
        options.fieldSelector = try FieldSelector(parsing: "spec.sessionAffinity=None")
        #expect(throws: Status.badRequest("field label not supported: spec.sessionAffinity")) {
            try f.store.list(t, namespace: "fx", options: options)
        }
    }

    @Test("a watch from a resourceVersion older than the history is 410 with the real message")
    func watchTooOld() throws {
        var f = Fixture()
        f.store = Store(historyCapacity: 3)
        _ = try f.store.create(f.type("namespaces"), namespace: "", body: json(#"{"metadata":{"name":"fx"}}"#), context: f.context())
        for name in ["a", "b", "c", "d"] { try f.service(name) }
        var options = WatchOptions()
        options.resourceVersion = "1"
        let plan = try f.store.watchPlan(f.type("services"), namespace: "fx", options: options)
        #expect(plan.expired == Status.tooOldResourceVersion(requested: 1, oldest: 3))
    }

    @Test("a legacy watch from 0 starts with the current objects (watch-list defaulting)")
    func watchFromZero() throws {
        var f = Fixture()
        try f.service("a")
        var options = WatchOptions()
        options.resourceVersion = "0"
        options.allowWatchBookmarks = true
        let plan = try f.store.watchPlan(f.type("services"), namespace: "fx", options: options)
        #expect(plan.initialObjects.count == 1 && plan.sendInitialEventsEndBookmark && plan.startResourceVersion == f.store.resourceVersion)
    }

    @Test("sendInitialEvents without resourceVersionMatch=NotOlderThan is refused")
    func sendInitialEventsNeedsMatch() {
        let f = Fixture()
        var options = WatchOptions()
        options.sendInitialEvents = true
        #expect(throws: Status.self) { try f.store.watchPlan(f.type("services"), namespace: "fx", options: options) }
    }

    @Test("a CRD registers its resource; status is a subresource; generation moves on spec changes only")
    func crd() throws {
        var f = Fixture()
        let crd = json(#"{"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition","metadata":{"name":"istiomulticlusters.deckhouse.io"},"spec":{"group":"deckhouse.io","scope":"Cluster","names":{"plural":"istiomulticlusters","kind":"IstioMulticluster"},"versions":[{"name":"v1alpha1","served":true,"storage":true,"subresources":{"status":{}}}]}}"#)
        _ = try f.store.create(f.type("customresourcedefinitions", group: "apiextensions.k8s.io"), namespace: "", body: crd, context: f.context())
        let t = f.type("istiomulticlusters", group: "deckhouse.io", version: "v1alpha1")
        #expect(!t.namespaced && t.hasStatus)
        let created = try f.store.create(t, namespace: "", body: json(#"{"apiVersion":"deckhouse.io/v1alpha1","kind":"IstioMulticluster","metadata":{"name":"remote"},"spec":{"metadataEndpoint":"https://x/"},"status":{"ready":true}}"#), context: f.context())
        #expect(created["status"] == nil)
        #expect(created.value(at: ["metadata", "generation"])?.intValue == 1)
        #expect(created.serialized().hasPrefix(#"{"apiVersion":"deckhouse.io/v1alpha1","kind":"IstioMulticluster","metadata":{"creationTimestamp""#))
        let ctx = f.context()
        let status = try f.store.patch(t, namespace: "", name: "remote", patchType: .merge,
                                       patch: Array(#"{"spec":{"metadataEndpoint":"ignored"},"status":{"ready":true}}"#.utf8),
                                       subresource: "status", context: ctx)
        #expect(status.value(at: ["status", "ready"]) == .bool(true))
        #expect(status.value(at: ["spec", "metadataEndpoint"]) == .string("https://x/"))
        #expect(status.value(at: ["metadata", "generation"])?.intValue == 1)
        let main = try f.store.patch(t, namespace: "", name: "remote", patchType: .merge,
                                     patch: Array(#"{"spec":{"metadataEndpoint":"https://y/"},"status":{"ready":false}}"#.utf8),
                                     subresource: nil, context: ctx)
        #expect(main.value(at: ["metadata", "generation"])?.intValue == 2)
        #expect(main.value(at: ["status", "ready"]) == .bool(true))
    }

    @Test("a deleted namespace is Terminating (fixture 53), refuses creates with the 403 of fixture 53b, then goes with its objects")
    func namespaceDelete() throws {
        var f = Fixture()
        try f.service("a")
        let terminating = try f.store.delete(f.type("namespaces"), namespace: "", name: "fx", timestamp: "2026-11-25T16:57:46Z")
        #expect(terminating.value(at: ["status", "phase"]) == .string("Terminating"))
        #expect(terminating.value(at: ["metadata", "deletionTimestamp"]) == .string("2026-11-25T16:57:46Z"))
        #expect(terminating.value(at: ["spec", "finalizers"]) == .array([.string("kubernetes")]))
        #expect(f.store.log.entries(after: f.store.resourceVersion - 1, limit: 1)?.first?.type == .modified)
        // Contents stay until the controller runs.
        #expect(f.store.count(of: GroupResource(group: "", resource: "services")) == 1)
        do {
            try f.service("late")
            Issue.record("created in a terminating namespace")
        } catch let error as Status {
            #expect(String(decoding: error.body, as: UTF8.self) == #"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"services \"late\" is forbidden: unable to create new content in namespace fx because it is being terminated","reason":"Forbidden","details":{"name":"late","kind":"services","causes":[{"reason":"NamespaceTerminating","message":"namespace fx is being terminated","field":"metadata.namespace"}]},"code":403}"# + "\n")
        }
        do {
            _ = try f.store.delete(f.type("namespaces"), namespace: "", name: "fx")
            Issue.record("a second DELETE succeeded")
        } catch {
            #expect(error.code == 409 && error.message?.contains("The system is ensuring all content is removed from this namespace.") == true)
        }
        let before = f.store.resourceVersion
        let finalized = f.store.finalizeNamespace("fx")
        #expect(finalized)
        let events = f.store.log.entries(after: before, limit: 10) ?? []
        #expect(events.map(\.type) == [.deleted, .deleted])
        #expect(events.map(\.name) == ["a", "fx"])
        #expect(f.store.count(of: GroupResource(group: "", resource: "services")) == 0)
        #expect(throws: Status.notFound(resource: "namespaces", name: "fx")) { try f.store.get(f.type("namespaces"), namespace: "", name: "fx") }
        let again = f.store.finalizeNamespace("fx")
        #expect(!again)
    }

    @Test("deletecollection deletes what the label selector matches and nothing else")
    func deleteCollection() throws {
        var f = Fixture(namespaces: ["fx", "other"])
        try f.service("a", labels: #"{"app":"fx"}"#)
        try f.service("b", labels: #"{"app":"fx"}"#)
        try f.service("c", labels: #"{"app":"keep"}"#)
        try f.service("d", labels: #"{"app":"fx"}"#, namespace: "other")
        var options = ListOptions()
        options.labelSelector = try LabelSelector(parsing: "app=fx")
        let deleted = try f.store.deleteCollection(f.type("services"), namespace: "fx", options: options)
        #expect(deleted.compactMap { $0.value(at: ["metadata", "name"])?.stringValue } == ["a", "b"])
        #expect(f.store.count(of: GroupResource(group: "", resource: "services")) == 2)
        _ = try f.store.get(f.type("services"), namespace: "fx", name: "c")
        _ = try f.store.get(f.type("services"), namespace: "other", name: "d")
    }
}

@Suite("WatchFilter")
struct WatchFilterTests {
    @Test("an object leaving a label selector is DELETED with its old labels and the new resourceVersion (fixture 29b)")
    func leaveAndEnter() throws {
        var f = Fixture()
        try f.service("w", labels: #"{"app":"fx"}"#)
        let t = f.type("services")
        let filter = WatchFilter(type: t, namespace: "fx", labelSelector: try LabelSelector(parsing: "app=fx"))
        let ctx = f.context()
        _ = try f.store.patch(t, namespace: "fx", name: "w", patchType: .merge, patch: Array(#"{"metadata":{"labels":{"app":"gone"}}}"#.utf8), subresource: nil, context: ctx)
        let leave = try #require(f.store.log.entries(after: f.store.resourceVersion - 1, limit: 1)?.first)
        guard case .custom(let bytes) = filter.decide(leave) else { Issue.record("not rewritten"); return }
        let event = try JSON(parsing: bytes.dropLast())
        #expect(event["type"] == .string("DELETED"))
        #expect(event.value(at: ["object", "metadata", "labels", "app"]) == .string("fx"))
        #expect(event.value(at: ["object", "metadata", "resourceVersion"]) == .string(String(f.store.resourceVersion)))
        _ = try f.store.patch(t, namespace: "fx", name: "w", patchType: .merge, patch: Array(#"{"metadata":{"labels":{"x":"1"}}}"#.utf8), subresource: nil, context: ctx)
        let still = try #require(f.store.log.entries(after: f.store.resourceVersion - 1, limit: 1)?.first)
        #expect(filter.decide(still) == .skip)
        _ = try f.store.patch(t, namespace: "fx", name: "w", patchType: .merge, patch: Array(#"{"metadata":{"labels":{"app":"fx"}}}"#.utf8), subresource: nil, context: ctx)
        let enter = try #require(f.store.log.entries(after: f.store.resourceVersion - 1, limit: 1)?.first)
        guard case .custom(let added) = filter.decide(enter) else { Issue.record("not rewritten"); return }
        #expect(try JSON(parsing: added.dropLast())["type"] == .string("ADDED"))
    }

    @Test("bookmarks carry only the resourceVersion, like fixture 29")
    func bookmark() {
        let f = Fixture()
        let bytes = WatchFilter(type: f.type("services"), namespace: "fx").bookmark(resourceVersion: 506, initialEventsEnd: false)
        #expect(String(decoding: bytes, as: UTF8.self)
            == #"{"type":"BOOKMARK","object":{"kind":"Service","apiVersion":"v1","metadata":{"resourceVersion":"506","creationTimestamp":null},"spec":{},"status":{"loadBalancer":{}}}}"# + "\n")
        let end = WatchFilter(type: f.type("services"), namespace: "fx").bookmark(resourceVersion: 510, initialEventsEnd: true)
        #expect(String(decoding: end, as: UTF8.self).contains(#""annotations":{"k8s.io/initial-events-end":"true","kubernetes.io/initial-events-list-blueprint":"eyJraW5kIjoiU2VydmljZUxpc3QiLCJhcGlWZXJzaW9uIjoidjEiLCJtZXRhZGF0YSI6e30sIml0ZW1zIjpudWxsfQo="}"#))
    }
}

@Suite("Routing")
struct RoutingTests {
    let registry = ResourceRegistry()

    @Test("resource paths resolve like kube-apiserver's")
    func routes() throws {
        guard case .resource(let r) = Router.route(path: "/api/v1/namespaces/fx/services/a", registry: registry) else { Issue.record("no route"); return }
        #expect(r.namespace == "fx" && r.name == "a" && r.type.resource == "services")
        guard case .resource(let w) = Router.route(path: "/api/v1/watch/namespaces/fx/services", registry: registry) else { Issue.record("no route"); return }
        #expect(w.watchPath && w.name.isEmpty)
        guard case .resource(let ns) = Router.route(path: "/api/v1/namespaces/fx/status", registry: registry) else { Issue.record("no route"); return }
        #expect(ns.type.resource == "namespaces" && ns.name == "fx" && ns.subresource == "status")
        guard case .resource(let es) = Router.route(path: "/apis/discovery.k8s.io/v1/endpointslices", registry: registry) else { Issue.record("no route"); return }
        #expect(es.namespace.isEmpty && es.type.kind == "EndpointSlice")
        #expect(Router.route(path: "/api/v1/namespaces/fx/foos", registry: registry) == .unknownResource)
        #expect(Router.route(path: "/apis/nosuch.example.com/v1", registry: registry) == .notFound)
        #expect(Router.route(path: "/api", registry: registry) == .legacyVersions)
        #expect(Router.route(path: "/apis/discovery.k8s.io/v1", registry: registry) == .resourceList(group: "discovery.k8s.io", version: "v1"))
    }

    @Test("Accept negotiation: protobuf-only is 406, protobuf-then-JSON is JSON, aggregated discovery falls back to JSON")
    func negotiation() {
        #expect(Negotiation(accept: "application/vnd.kubernetes.protobuf") == .notAcceptable)
        #expect(Negotiation(accept: "application/vnd.kubernetes.protobuf,application/json") == .json)
        #expect(Negotiation(accept: "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json") == .json)
        #expect(Negotiation(accept: "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json") == .table)
        #expect(Negotiation(accept: nil) == .json)
        #expect(Negotiation(accept: "*/*") == .json)
    }

    @Test("query values are percent-decoded")
    func query() {
        let q = Query("labelSelector=app%3Dfx%2Ctier%21%3Dback&watch=1&x=a+b")
        #expect(q["labelSelector"] == "app=fx,tier!=back" && q.bool("watch") == true && q["x"] == "a b")
    }
}
