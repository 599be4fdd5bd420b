import IsthmusRequestInfo
import Testing

/// One request and everything the parser must derive from it. Grouped like
/// kube-apiserver's own requestinfo_test.go; every API-server rule we reproduce
/// has a row, and every bug fix starts with a new failing row.
struct Row: Sendable, CustomTestStringConvertible {
    var method: String
    var target: String
    var want: RequestAttributes

    init(_ method: String, _ target: String, _ want: RequestAttributes) {
        self.method = method
        self.target = target
        self.want = want
    }

    var testDescription: String { "\(method) \(target)" }
}

/// Expected attributes of a resource request; `path` defaults to the target
/// without its query, which is right whenever the target has no escapes.
private func resource(
    _ verb: Verb, _ path: String, query: String = "", prefix: String = "api", group: String = "",
    version: String = "v1", namespace: String = "", resource: String, subresource: String = "",
    name: String = ""
) -> RequestAttributes {
    RequestAttributes(
        isResourceRequest: true, path: path, query: query, verb: verb, apiPrefix: prefix,
        apiGroup: group, apiVersion: version, namespace: namespace, resource: resource,
        subresource: subresource, name: name)
}

private func nonResource(_ verb: Verb, _ path: String, query: String = "") -> RequestAttributes {
    RequestAttributes(isResourceRequest: false, path: path, query: query, verb: verb)
}

private let proxy = Verb("proxy")
/// What the API server reports for a resource request with a method it does
/// not map (it does not lowercase them).
private let unmapped = Verb("")

enum Rows {
    static let basicResourceRequests: [Row] = [
        Row("GET", "/api/v1/pods", resource(.list, "/api/v1/pods", resource: "pods")),
        Row("HEAD", "/api/v1/pods", resource(.list, "/api/v1/pods", resource: "pods")),
        Row(
            "GET", "/api/v1/namespaces/other/pods/foo",
            resource(.get, "/api/v1/namespaces/other/pods/foo", namespace: "other", resource: "pods", name: "foo")),
        Row(
            "HEAD", "/api/v1/namespaces/other/pods/foo",
            resource(.get, "/api/v1/namespaces/other/pods/foo", namespace: "other", resource: "pods", name: "foo")),
        Row("GET", "/api/v1/nodes/node-1", resource(.get, "/api/v1/nodes/node-1", resource: "nodes", name: "node-1")),
        Row(
            "GET", "/apis/apps/v1/deployments",
            resource(.list, "/apis/apps/v1/deployments", prefix: "apis", group: "apps", resource: "deployments")),
        Row(
            "GET", "/apis/apps/v1/namespaces/default/deployments/web",
            resource(
                .get, "/apis/apps/v1/namespaces/default/deployments/web", prefix: "apis", group: "apps",
                namespace: "default", resource: "deployments", name: "web")),
        Row(
            "GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/foos.example.com",
            resource(
                .get, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/foos.example.com", prefix: "apis",
                group: "apiextensions.k8s.io", resource: "customresourcedefinitions", name: "foos.example.com")),
        Row(
            "GET", "/apis/batch/v1/job",
            resource(.list, "/apis/batch/v1/job", prefix: "apis", group: "batch", resource: "job")),
        Row(
            "GET", "/api/version/resource",
            resource(.list, "/api/version/resource", version: "version", resource: "resource")),
        Row(
            "GET", "/api/v1/pods?limit=500&resourceVersion=0",
            resource(.list, "/api/v1/pods", query: "limit=500&resourceVersion=0", resource: "pods")),
        // An empty query is no query: nothing to forward after the path.
        Row("GET", "/api/v1/pods?", resource(.list, "/api/v1/pods", resource: "pods")),
        // Verbs of the methods a read-only proxy refuses earlier; derived all
        // the same so denials and audit logs name them right.
        Row(
            "POST", "/api/v1/namespaces/other/pods",
            resource(.create, "/api/v1/namespaces/other/pods", namespace: "other", resource: "pods")),
        Row(
            "PUT", "/api/v1/namespaces/other/pods/foo",
            resource(.update, "/api/v1/namespaces/other/pods/foo", namespace: "other", resource: "pods", name: "foo")),
        Row(
            "PATCH", "/api/v1/namespaces/other/pods/foo",
            resource(.patch, "/api/v1/namespaces/other/pods/foo", namespace: "other", resource: "pods", name: "foo")),
        Row(
            "DELETE", "/api/v1/namespaces/other/pods/foo",
            resource(.delete, "/api/v1/namespaces/other/pods/foo", namespace: "other", resource: "pods", name: "foo")),
        Row("DELETE", "/api/v1/nodes", resource(.deletecollection, "/api/v1/nodes", resource: "nodes")),
        Row(
            "DELETE", "/apis/extensions/v1/namespaces/other/pods",
            resource(
                .deletecollection, "/apis/extensions/v1/namespaces/other/pods", prefix: "apis", group: "extensions",
                namespace: "other", resource: "pods")),
        Row(
            "POST", "/apis/extensions/v1beta3/namespaces/other/pods",
            resource(
                .create, "/apis/extensions/v1beta3/namespaces/other/pods", prefix: "apis", group: "extensions",
                version: "v1beta3", namespace: "other", resource: "pods")),
        // Methods are case-sensitive and unknown ones map to no verb at all,
        // as in the API server: `LIST` must not become `list`.
        Row("OPTIONS", "/api/v1/pods", resource(unmapped, "/api/v1/pods", resource: "pods")),
        Row("get", "/api/v1/pods", resource(unmapped, "/api/v1/pods", resource: "pods")),
        Row("LIST", "/api/v1/pods", resource(unmapped, "/api/v1/pods", resource: "pods")),
        Row("WATCH", "/api/v1/pods/foo", resource(unmapped, "/api/v1/pods/foo", resource: "pods", name: "foo")),
    ]

    static let namespaces: [Row] = [
        Row("GET", "/api/v1/namespaces", resource(.list, "/api/v1/namespaces", resource: "namespaces")),
        Row(
            "GET", "/api/v1/namespaces/other",
            resource(.get, "/api/v1/namespaces/other", namespace: "other", resource: "namespaces", name: "other")),
        Row(
            "PATCH", "/api/v1/namespaces/new-namespace",
            resource(
                .patch, "/api/v1/namespaces/new-namespace", namespace: "new-namespace", resource: "namespaces",
                name: "new-namespace")),
        Row("DELETE", "/api/v1/namespaces", resource(.deletecollection, "/api/v1/namespaces", resource: "namespaces")),
        Row(
            "DELETE", "/api/v1/namespaces/other",
            resource(.delete, "/api/v1/namespaces/other", namespace: "other", resource: "namespaces", name: "other")),
        Row(
            "GET", "/api/v1/namespaces/other/pods",
            resource(.list, "/api/v1/namespaces/other/pods", namespace: "other", resource: "pods")),
        Row(
            "GET", "/apis/apps/v1/namespaces",
            resource(.list, "/apis/apps/v1/namespaces", prefix: "apis", group: "apps", resource: "namespaces")),
        // A namespace named like the keywords is still just a namespace.
        Row(
            "GET", "/api/v1/namespaces/namespaces",
            resource(
                .get, "/api/v1/namespaces/namespaces", namespace: "namespaces", resource: "namespaces",
                name: "namespaces")),
        Row(
            "GET", "/api/v1/namespaces/status",
            resource(.get, "/api/v1/namespaces/status", namespace: "status", resource: "namespaces", name: "status")),
        Row(
            "GET", "/api/v1/namespaces/other/namespaces",
            resource(.list, "/api/v1/namespaces/other/namespaces", namespace: "other", resource: "namespaces")),
    ]

    static let subresources: [Row] = [
        Row(
            "GET", "/api/v1/namespaces/other/pods/foo/status",
            resource(
                .get, "/api/v1/namespaces/other/pods/foo/status", namespace: "other", resource: "pods",
                subresource: "status", name: "foo")),
        Row(
            "GET", "/api/v1/namespaces/other/pods/foo/log",
            resource(
                .get, "/api/v1/namespaces/other/pods/foo/log", namespace: "other", resource: "pods",
                subresource: "log", name: "foo")),
        // Parts beyond the subresource are not interpreted.
        Row(
            "GET", "/api/v1/namespaces/other/pods/foo/proxy/subpath",
            resource(
                .get, "/api/v1/namespaces/other/pods/foo/proxy/subpath", namespace: "other", resource: "pods",
                subresource: "proxy", name: "foo")),
        Row(
            "GET", "/apis/apps/v1/namespaces/ns/deployments/web/scale/extra/parts",
            resource(
                .get, "/apis/apps/v1/namespaces/ns/deployments/web/scale/extra/parts", prefix: "apis", group: "apps",
                namespace: "ns", resource: "deployments", subresource: "scale", name: "web")),
        Row(
            "GET", "/apis/batch/v1/job/foo/scale",
            resource(
                .get, "/apis/batch/v1/job/foo/scale", prefix: "apis", group: "batch", resource: "job",
                subresource: "scale", name: "foo")),
        // `status` and `finalize` after a namespace name are subresources of
        // the namespace, not resources inside it.
        Row(
            "PUT", "/api/v1/namespaces/other/finalize",
            resource(
                .update, "/api/v1/namespaces/other/finalize", namespace: "other", resource: "namespaces",
                subresource: "finalize", name: "other")),
        Row(
            "PUT", "/api/v1/namespaces/other/status",
            resource(
                .update, "/api/v1/namespaces/other/status", namespace: "other", resource: "namespaces",
                subresource: "status", name: "other")),
        Row(
            "GET", "/api/v1/namespaces/other/status",
            resource(
                .get, "/api/v1/namespaces/other/status", namespace: "other", resource: "namespaces",
                subresource: "status", name: "other")),
        Row(
            "GET", "/api/v1/namespaces/other/status/extra",
            resource(
                .get, "/api/v1/namespaces/other/status/extra", namespace: "other", resource: "namespaces",
                subresource: "status", name: "other")),
    ]

    static let watches: [Row] = [
        Row("GET", "/api/v1/pods?watch=true", resource(.watch, "/api/v1/pods", query: "watch=true", resource: "pods")),
        Row("GET", "/api/v1/pods?watch=false", resource(.list, "/api/v1/pods", query: "watch=false", resource: "pods")),
        Row(
            "GET", "/api/v1/namespaces/other/pods?watch=1",
            resource(.watch, "/api/v1/namespaces/other/pods", query: "watch=1", namespace: "other", resource: "pods")),
        Row(
            "GET", "/api/v1/namespaces/other/pods?watch=0",
            resource(.list, "/api/v1/namespaces/other/pods", query: "watch=0", namespace: "other", resource: "pods")),
        Row("HEAD", "/api/v1/pods?watch=1", resource(.watch, "/api/v1/pods", query: "watch=1", resource: "pods")),
        // Convert_Slice_string_To_bool: only "0" and EqualFold "false" are false.
        Row("GET", "/api/v1/pods?watch", resource(.watch, "/api/v1/pods", query: "watch", resource: "pods")),
        Row("GET", "/api/v1/pods?watch=", resource(.watch, "/api/v1/pods", query: "watch=", resource: "pods")),
        Row("GET", "/api/v1/pods?watch=FALSE", resource(.list, "/api/v1/pods", query: "watch=FALSE", resource: "pods")),
        Row("GET", "/api/v1/pods?watch=fAlSe", resource(.list, "/api/v1/pods", query: "watch=fAlSe", resource: "pods")),
        // U+017F LATIN SMALL LETTER LONG S case-folds to `s`.
        Row(
            "GET", "/api/v1/pods?watch=fal%C5%BFe",
            resource(.list, "/api/v1/pods", query: "watch=fal%C5%BFe", resource: "pods")),
        Row(
            "GET", "/api/v1/pods?watch=fal%C5%BF",
            resource(.watch, "/api/v1/pods", query: "watch=fal%C5%BF", resource: "pods")),
        Row("GET", "/api/v1/pods?watch=no", resource(.watch, "/api/v1/pods", query: "watch=no", resource: "pods")),
        Row("GET", "/api/v1/pods?watch=00", resource(.watch, "/api/v1/pods", query: "watch=00", resource: "pods")),
        Row("GET", "/api/v1/pods?watch=falsey", resource(.watch, "/api/v1/pods", query: "watch=falsey", resource: "pods")),
        // `+` is a space in a query value, so this is " false", which is true.
        Row("GET", "/api/v1/pods?watch=+false", resource(.watch, "/api/v1/pods", query: "watch=+false", resource: "pods")),
        // Keys and values are percent-decoded before they are compared.
        Row("GET", "/api/v1/pods?watch=%66alse", resource(.list, "/api/v1/pods", query: "watch=%66alse", resource: "pods")),
        Row("GET", "/api/v1/pods?w%61tch=1", resource(.watch, "/api/v1/pods", query: "w%61tch=1", resource: "pods")),
        // Keys are case-sensitive.
        Row("GET", "/api/v1/pods?Watch=true", resource(.list, "/api/v1/pods", query: "Watch=true", resource: "pods")),
        // A get with a name stays a get whatever `watch` says.
        Row(
            "GET", "/api/v1/pods/foo?watch=true",
            resource(.get, "/api/v1/pods/foo", query: "watch=true", resource: "pods", name: "foo")),
        // Legacy `/watch/` prefix.
        Row("GET", "/api/v1/watch/pods", resource(.watch, "/api/v1/watch/pods", resource: "pods")),
        Row(
            "GET", "/api/v1/watch/namespaces/other/pods",
            resource(.watch, "/api/v1/watch/namespaces/other/pods", namespace: "other", resource: "pods")),
        Row(
            "GET", "/api/v1/watch/namespaces/other/pods/foo",
            resource(.watch, "/api/v1/watch/namespaces/other/pods/foo", namespace: "other", resource: "pods", name: "foo")),
        Row(
            "GET", "/api/v1/watch/namespaces/other",
            resource(.watch, "/api/v1/watch/namespaces/other", namespace: "other", resource: "namespaces", name: "other")),
        Row(
            "GET", "/apis/apps/v1/watch/namespaces/ns/deployments/web",
            resource(
                .watch, "/apis/apps/v1/watch/namespaces/ns/deployments/web", prefix: "apis", group: "apps",
                namespace: "ns", resource: "deployments", name: "web")),
        Row(
            "GET", "/api/v1/watch/pods/foo/status",
            resource(.watch, "/api/v1/watch/pods/foo/status", resource: "pods", subresource: "status", name: "foo")),
        // The prefix decides, not the query and not the method.
        Row(
            "GET", "/api/v1/watch/pods?watch=false",
            resource(.watch, "/api/v1/watch/pods", query: "watch=false", resource: "pods")),
        Row("POST", "/api/v1/watch/pods", resource(.watch, "/api/v1/watch/pods", resource: "pods")),
        // The legacy watch never reads the field selector.
        Row(
            "GET", "/apis/group/version/watch/resource?fieldSelector=metadata.name=foo",
            resource(
                .watch, "/apis/group/version/watch/resource", query: "fieldSelector=metadata.name=foo", prefix: "apis",
                group: "group", version: "version", resource: "resource")),
        Row(
            "GET", "/apis/group/version/watch/resource/name?fieldSelector=metadata.name=foo",
            resource(
                .watch, "/apis/group/version/watch/resource/name", query: "fieldSelector=metadata.name=foo",
                prefix: "apis", group: "group", version: "version", resource: "resource", name: "name")),
    ]

    static let specialVerbsAndFieldSelectorNames: [Row] = [
        Row(
            "GET", "/api/v1/proxy/namespaces/other/pods/foo",
            resource(proxy, "/api/v1/proxy/namespaces/other/pods/foo", namespace: "other", resource: "pods", name: "foo")),
        // `proxy` has no subresources: the rest is the proxied path.
        Row(
            "GET", "/api/v1/proxy/namespaces/other/pods/foo/subpath/not/a/subresource",
            resource(
                proxy, "/api/v1/proxy/namespaces/other/pods/foo/subpath/not/a/subresource", namespace: "other",
                resource: "pods", name: "foo")),
        Row(
            "GET", "/api/v1/proxy/namespaces/other/status",
            resource(proxy, "/api/v1/proxy/namespaces/other/status", namespace: "other", resource: "namespaces", name: "other")),
        Row(
            "GET", "/api/v1/proxy/nodes/node-1/status",
            resource(proxy, "/api/v1/proxy/nodes/node-1/status", resource: "nodes", name: "node-1")),
        Row(
            "GET", "/apis/group/version/resource?fieldSelector=metadata.name=name1",
            resource(
                .list, "/apis/group/version/resource", query: "fieldSelector=metadata.name=name1", prefix: "apis",
                group: "group", version: "version", resource: "resource", name: "name1")),
        Row(
            "GET", "/apis/group/version/resource?watch=true&fieldSelector=metadata.name=name1",
            resource(
                .watch, "/apis/group/version/resource", query: "watch=true&fieldSelector=metadata.name=name1",
                prefix: "apis", group: "group", version: "version", resource: "resource", name: "name1")),
        Row(
            "GET", "/api/v1/namespaces/ns/configmaps?fieldSelector=metadata.name==cm1",
            resource(
                .list, "/api/v1/namespaces/ns/configmaps", query: "fieldSelector=metadata.name==cm1", namespace: "ns",
                resource: "configmaps", name: "cm1")),
        Row(
            "GET", "/api/v1/pods?fieldSelector=metadata.name!=name1",
            resource(.list, "/api/v1/pods", query: "fieldSelector=metadata.name!=name1", resource: "pods")),
        Row(
            "GET", "/api/v1/pods?fieldSelector=foo=bar",
            resource(.list, "/api/v1/pods", query: "fieldSelector=foo=bar", resource: "pods")),
        // Among other terms.
        Row(
            "GET", "/api/v1/pods?fieldSelector=spec.nodeName=n1,metadata.name=name1",
            resource(
                .list, "/api/v1/pods", query: "fieldSelector=spec.nodeName=n1,metadata.name=name1", resource: "pods",
                name: "name1")),
        Row(
            "GET", "/api/v1/pods?fieldSelector=metadata.name=name1,,",
            resource(.list, "/api/v1/pods", query: "fieldSelector=metadata.name=name1,,", resource: "pods", name: "name1")),
        // One bad term invalidates the selector: no name.
        Row(
            "GET", "/api/v1/pods?fieldSelector=metadata.name=name1,foo",
            resource(.list, "/api/v1/pods", query: "fieldSelector=metadata.name=name1,foo", resource: "pods")),
        Row(
            "GET", "/api/v1/pods?fieldSelector=metadata.name=name1,foo&watch=true",
            resource(.watch, "/api/v1/pods", query: "fieldSelector=metadata.name=name1,foo&watch=true", resource: "pods")),
        // Percent-decoding first, then field-selector escaping.
        Row(
            "GET", "/api/v1/pods?fieldSelector=metadata.name%3Dname1",
            resource(.list, "/api/v1/pods", query: "fieldSelector=metadata.name%3Dname1", resource: "pods", name: "name1")),
        Row(
            "GET", "/api/v1/pods?fieldSelector=metadata.name=a%5C,b",
            resource(.list, "/api/v1/pods", query: "fieldSelector=metadata.name=a%5C,b", resource: "pods", name: "a,b")),
        Row(
            "GET", "/api/v1/pods?fieldSelector=metadata.name=a%5C=b",
            resource(.list, "/api/v1/pods", query: "fieldSelector=metadata.name=a%5C=b", resource: "pods", name: "a=b")),
        Row(
            "GET", "/api/v1/pods?fieldSelector=metadata.name=a%5C%5Cb",
            resource(.list, "/api/v1/pods", query: "fieldSelector=metadata.name=a%5C%5Cb", resource: "pods", name: "a\\b")),
        Row(
            "GET", "/api/v1/pods?fieldSelector=metadata.name=a%5Cb",
            resource(.list, "/api/v1/pods", query: "fieldSelector=metadata.name=a%5Cb", resource: "pods")),
        Row(
            "GET", "/api/v1/pods?fieldSelector=metadata.name=a%5C",
            resource(.list, "/api/v1/pods", query: "fieldSelector=metadata.name=a%5C", resource: "pods")),
        Row(
            "GET", "/api/v1/pods?fieldSelector=metadata.name=a=b",
            resource(.list, "/api/v1/pods", query: "fieldSelector=metadata.name=a=b", resource: "pods")),
        Row(
            "GET", "/api/v1/pods?fieldSelector=metadata.name=my+pod",
            resource(.list, "/api/v1/pods", query: "fieldSelector=metadata.name=my+pod", resource: "pods", name: "my pod")),
        // path.IsValidPathSegmentName: no `.`, `..`, `/`, `%`.
        Row(
            "GET", "/api/v1/pods?fieldSelector=metadata.name=..",
            resource(.list, "/api/v1/pods", query: "fieldSelector=metadata.name=..", resource: "pods")),
        Row(
            "GET", "/api/v1/pods?fieldSelector=metadata.name=.",
            resource(.list, "/api/v1/pods", query: "fieldSelector=metadata.name=.", resource: "pods")),
        Row(
            "GET", "/api/v1/pods?fieldSelector=metadata.name=a%2Fb",
            resource(.list, "/api/v1/pods", query: "fieldSelector=metadata.name=a%2Fb", resource: "pods")),
        Row(
            "GET", "/api/v1/pods?fieldSelector=metadata.name=a%25b",
            resource(.list, "/api/v1/pods", query: "fieldSelector=metadata.name=a%25b", resource: "pods")),
        // Terms are sorted as raw strings before the first match is taken.
        Row(
            "GET", "/api/v1/pods?fieldSelector=metadata.name=b,metadata.name=a",
            resource(.list, "/api/v1/pods", query: "fieldSelector=metadata.name=b,metadata.name=a", resource: "pods", name: "a")),
        Row(
            "GET", "/api/v1/pods?fieldSelector=metadata.name==b,metadata.name=a",
            resource(.list, "/api/v1/pods", query: "fieldSelector=metadata.name==b,metadata.name=a", resource: "pods", name: "b")),
        Row(
            "GET", "/api/v1/pods?fieldSelector=metadata.name=,metadata.name=a",
            resource(.list, "/api/v1/pods", query: "fieldSelector=metadata.name=,metadata.name=a", resource: "pods")),
        // The field name is not trimmed.
        Row(
            "GET", "/api/v1/pods?fieldSelector=+metadata.name=x",
            resource(.list, "/api/v1/pods", query: "fieldSelector=+metadata.name=x", resource: "pods")),
        Row(
            "GET", "/api/v1/pods?fieldSelector=",
            resource(.list, "/api/v1/pods", query: "fieldSelector=", resource: "pods")),
        // Not valid UTF-8: no name (deliberately stricter than the API server).
        Row(
            "GET", "/api/v1/pods?fieldSelector=metadata.name=fo%FF",
            resource(.list, "/api/v1/pods", query: "fieldSelector=metadata.name=fo%FF", resource: "pods")),
        Row(
            "GET", "/apis/apps/v1/namespaces/ns/deployments?fieldSelector=metadata.name%3Dweb&watch=1&labelSelector=app%3Dweb",
            resource(
                .watch, "/apis/apps/v1/namespaces/ns/deployments",
                query: "fieldSelector=metadata.name%3Dweb&watch=1&labelSelector=app%3Dweb", prefix: "apis", group: "apps",
                namespace: "ns", resource: "deployments", name: "web")),
        // Only a get turned list/watch reads the selector.
        Row(
            "GET", "/api/v1/namespaces/ns/pods/foo?fieldSelector=metadata.name=bar",
            resource(
                .get, "/api/v1/namespaces/ns/pods/foo", query: "fieldSelector=metadata.name=bar", namespace: "ns",
                resource: "pods", name: "foo")),
        Row(
            "DELETE", "/api/v1/pods?fieldSelector=metadata.name=foo",
            resource(.deletecollection, "/api/v1/pods", query: "fieldSelector=metadata.name=foo", resource: "pods")),
    ]

    static let nonResourceRequests: [Row] = [
        Row("GET", "/", nonResource(.get, "/")),
        Row("GET", "/api", nonResource(.get, "/api")),
        Row("GET", "/api/v1", nonResource(.get, "/api/v1")),
        Row("GET", "/apis", nonResource(.get, "/apis")),
        Row("GET", "/apis/apps", nonResource(.get, "/apis/apps")),
        Row("GET", "/apis/apps/v1", nonResource(.get, "/apis/apps/v1")),
        Row("GET", "/version", nonResource(.get, "/version")),
        Row("GET", "/openapi/v2", nonResource(.get, "/openapi/v2")),
        Row("GET", "/openapi/v3/apis/apps/v1", nonResource(.get, "/openapi/v3/apis/apps/v1")),
        Row("GET", "/healthz", nonResource(.get, "/healthz")),
        Row("GET", "/metrics", nonResource(.get, "/metrics")),
        // A leading dot does not make a dot segment.
        Row("GET", "/.well-known/openid-configuration", nonResource(.get, "/.well-known/openid-configuration")),
        Row("GET", "/openid/v1/jwks", nonResource(.get, "/openid/v1/jwks")),
        Row("GET", "/badprefix/version/resource", nonResource(.get, "/badprefix/version/resource")),
        // `apis` needs a group before the version.
        Row("GET", "/apis/version/resource", nonResource(.get, "/apis/version/resource")),
        // Prefixes are case-sensitive.
        Row("GET", "/API/v1/pods", nonResource(.get, "/API/v1/pods")),
        Row("GET", "/version?watch=true", nonResource(.get, "/version", query: "watch=true")),
        Row(
            "GET", "/openapi/v3?hash=ABC123&timeout=32s",
            nonResource(.get, "/openapi/v3", query: "hash=ABC123&timeout=32s")),
        // HEAD is `get` here too (the API server says `head`): Isthmus's choice.
        Row("HEAD", "/version", nonResource(.get, "/version")),
        Row("HEAD", "/apis", nonResource(.get, "/apis")),
        // Any other method: lowercased, as the API server does.
        Row("POST", "/api", nonResource(Verb("post"), "/api")),
        Row("PUT", "/healthz", nonResource(Verb("put"), "/healthz")),
        Row("OPTIONS", "/version", nonResource(Verb("options"), "/version")),
        Row("Get", "/version", nonResource(.get, "/version")),
    ]

    static let edgeCases: [Row] = [
        // The API server decodes before it parses: this is a request for secrets.
        Row("GET", "/api/v1/%73ecrets", resource(.list, "/api/v1/secrets", resource: "secrets")),
        Row(
            "GET", "/api/v1/namespaces/%6Bube-system/secrets/%74oken",
            resource(.get, "/api/v1/namespaces/kube-system/secrets/token", namespace: "kube-system", resource: "secrets", name: "token")),
        Row("GET", "/%61pi/v1/pods", resource(.list, "/api/v1/pods", resource: "pods")),
        Row("GET", "/api/%76%31/pods?watch=1", resource(.watch, "/api/v1/pods", query: "watch=1", resource: "pods")),
        Row("GET", "/api/v1/pods/a%2Bb", resource(.get, "/api/v1/pods/a+b", resource: "pods", name: "a+b")),
        Row("GET", "/api/v1/pods/foo%7ebar", resource(.get, "/api/v1/pods/foo~bar", resource: "pods", name: "foo~bar")),
        Row("GET", "/api/v1/pods/a%3Ab%40c", resource(.get, "/api/v1/pods/a:b@c", resource: "pods", name: "a:b@c")),
        Row(
            "GET", "/api/v1/pods/name:with@chars!$&'()*+,=",
            resource(.get, "/api/v1/pods/name:with@chars!$&'()*+,=", resource: "pods", name: "name:with@chars!$&'()*+,=")),
        // Only `.` and `..` are dot segments.
        Row("GET", "/api/v1/pods/...", resource(.get, "/api/v1/pods/...", resource: "pods", name: "...")),
        Row("GET", "/api/v1/pods/.hidden", resource(.get, "/api/v1/pods/.hidden", resource: "pods", name: ".hidden")),
        Row("GET", "/api/v1/pods/a..", resource(.get, "/api/v1/pods/a..", resource: "pods", name: "a..")),
        // The query is forwarded verbatim, escapes and all.
        Row(
            "GET", "/api/v1/pods?labelSelector=app%20in%20(a,b)",
            resource(.list, "/api/v1/pods", query: "labelSelector=app%20in%20(a,b)", resource: "pods")),
        Row(
            "GET", "/api/v1/pods?continue=abc?def/ghi",
            resource(.list, "/api/v1/pods", query: "continue=abc?def/ghi", resource: "pods")),
        Row("GET", "/api/v1/pods?a=1&&b=2", resource(.list, "/api/v1/pods", query: "a=1&&b=2", resource: "pods")),
        Row("GET", "/api/v1/pods?=x&watch", resource(.watch, "/api/v1/pods", query: "=x&watch", resource: "pods")),
        Row("GET", "/api/v1/pods?%C3%A9=1", resource(.list, "/api/v1/pods", query: "%C3%A9=1", resource: "pods")),
        Row(
            "GET", "/api/v1/watch/pods?watch=1&fieldSelector=a",
            resource(.watch, "/api/v1/watch/pods", query: "watch=1&fieldSelector=a", resource: "pods")),
        // The longest accepted target.
        Row("GET", longestTarget, nonResource(.get, longestTarget)),
    ]

    static let longestTarget = "/" + String(repeating: "a", count: RequestInfoLimits.maxTargetBytes - 1)
}

@Suite("RequestAttributes(method:target:) resolves targets as kube-apiserver does")
struct RequestAttributesTableTests {
    @Test("basic resource requests", arguments: Rows.basicResourceRequests)
    func basicResourceRequests(_ row: Row) throws {
        try check(row)
    }

    @Test("namespaces", arguments: Rows.namespaces)
    func namespaces(_ row: Row) throws {
        try check(row)
    }

    @Test("subresource identification", arguments: Rows.subresources)
    func subresources(_ row: Row) throws {
        try check(row)
    }

    @Test("watch and the legacy watch prefix", arguments: Rows.watches)
    func watches(_ row: Row) throws {
        try check(row)
    }

    @Test("special verbs and fieldSelector names", arguments: Rows.specialVerbsAndFieldSelectorNames)
    func specialVerbs(_ row: Row) throws {
        try check(row)
    }

    @Test("non-resource URLs", arguments: Rows.nonResourceRequests)
    func nonResourceRequests(_ row: Row) throws {
        try check(row)
    }

    @Test("edge cases that still parse", arguments: Rows.edgeCases)
    func edgeCases(_ row: Row) throws {
        try check(row)
    }

    private func check(_ row: Row) throws {
        let got = try RequestAttributes(method: row.method, target: row.target)
        #expect(got == row.want)
    }

    @Test("forwardTarget puts the decoded path and the raw query back together")
    func forwardTarget() throws {
        let attributes = try RequestAttributes(method: "GET", target: "/api/v1/%73ecrets?watch=1&labelSelector=a%3Db")
        #expect(attributes.forwardTarget == "/api/v1/secrets?watch=1&labelSelector=a%3Db")
        #expect(try RequestAttributes(method: "GET", target: "/api/v1/pods?").forwardTarget == "/api/v1/pods")
    }
}
