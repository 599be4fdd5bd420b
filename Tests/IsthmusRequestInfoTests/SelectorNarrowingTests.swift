import IsthmusRequestInfo
import Testing

private let secretsExclusions = SelectorNarrowing(
    fieldRequirements: ["type!=kubernetes.io/service-account-token"], labelRequirements: ["istio/multiCluster!=true"])

/// What Go's url.ParseQuery gives for one key: the decoded value of its first pair.
private func decoded(_ query: String, _ key: String) -> String? {
    for pair in query.split(separator: "&", omittingEmptySubsequences: true) {
        let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
        guard String(parts[0]) == key else { continue }
        let raw = parts.count > 1 ? Array(parts[1].utf8) : []
        var out: [UInt8] = []
        var i = 0
        while i < raw.count {
            if raw[i] == UInt8(ascii: "%"), i + 2 < raw.count, let byte = UInt8(String(decoding: raw[(i + 1)...(i + 2)], as: UTF8.self), radix: 16) {
                out.append(byte)
                i += 3
            } else {
                out.append(raw[i] == UInt8(ascii: "+") ? UInt8(ascii: " ") : raw[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
    return nil
}

@Suite("Selector narrowing: the proxy's exclusions in front of the client's selectors")
struct SelectorNarrowingTests {
    @Test("without client selectors both are added, every other parameter kept in order")
    func added() {
        let query = secretsExclusions.narrow(query: "watch=1&resourceVersion=5&allowWatchBookmarks=true")
        #expect(query == "watch=1&resourceVersion=5&allowWatchBookmarks=true"
            + "&fieldSelector=type%21%3Dkubernetes.io%2Fservice-account-token"
            + "&labelSelector=istio%2FmultiCluster%21%3Dtrue")
        #expect(secretsExclusions.narrow(query: "") ==
            "fieldSelector=type%21%3Dkubernetes.io%2Fservice-account-token&labelSelector=istio%2FmultiCluster%21%3Dtrue")
    }

    @Test("the client's selectors follow the exclusions, joined by one comma, still as the client encoded them")
    func prefixed() {
        let query = secretsExclusions.narrow(query: "labelSelector=app+in+(a,b)&limit=500&field%53elector=metadata.name%3Dx")
        #expect(decoded(query, "labelSelector") == "istio/multiCluster!=true,app in (a,b)")
        // The key as the client spelled it is replaced by its decoded name; the value keeps the client's bytes.
        #expect(decoded(query, "fieldSelector") == "type!=kubernetes.io/service-account-token,metadata.name=x")
        #expect(query.contains("%2Cmetadata.name%3Dx"))
        #expect(decoded(query, "limit") == "500")
        #expect(!query.contains("field%53elector"))
    }

    @Test("an empty client selector, or a key without '=', becomes the exclusions alone (no trailing comma)")
    func emptyClientSelector() {
        #expect(decoded(secretsExclusions.narrow(query: "labelSelector=&fieldSelector"), "labelSelector") == "istio/multiCluster!=true")
        #expect(decoded(secretsExclusions.narrow(query: "labelSelector=&fieldSelector"), "fieldSelector")
            == "type!=kubernetes.io/service-account-token")
    }

    @Test("a trailing backslash in the client's field selector cannot swallow an exclusion")
    func trailingBackslash() {
        // Appended, `a=b\` + `,type!=…` would read as a=`b,type!=…`; in front, the exclusion stands alone.
        let query = secretsExclusions.narrow(query: "fieldSelector=a%3Db%5C")
        #expect(decoded(query, "fieldSelector") == "type!=kubernetes.io/service-account-token,a=b\\")
    }

    @Test("empty pairs and a trailing '&' are kept; an empty narrowing changes nothing")
    func untouched() {
        #expect(SelectorNarrowing().narrow(query: "a=1&&b=2&") == "a=1&&b=2&")
        let query = SelectorNarrowing(fieldRequirements: ["x!=y"]).narrow(query: "a=1&&b=2&")
        #expect(query == "a=1&&b=2&&fieldSelector=x%21%3Dy")
    }

    @Test("field values are escaped as fields.EscapeValue does")
    func escaping() {
        #expect(SelectorNarrowing.escapedFieldValue(#"a,b=c\d"#) == #"a\,b\=c\\d"#)
    }

    @Test("a repeated labelSelector is refused at parse, like a repeated fieldSelector")
    func duplicateLabelSelector() {
        #expect(throws: TargetRejection.duplicateLabelSelector) {
            try RequestAttributes(method: "GET", target: "/api/v1/secrets?labelSelector=a&label%53elector=b")
        }
    }
}
