import IsthmusRequestInfo
import Testing

/// A target that must be refused, and the reason it must be refused for.
struct RejectionRow: Sendable, CustomTestStringConvertible {
    var method: String
    var target: String
    var want: TargetRejection

    init(_ target: String, _ want: TargetRejection, method: String = "GET") {
        self.method = method
        self.target = target
        self.want = want
    }

    var testDescription: String {
        let shown = target.count > 80 ? String(target.prefix(60)) + "…(\(target.utf8.count) bytes)" : target
        return "\(method) \(shown.debugDescription) → \(want)"
    }
}

enum RejectionRows {
    static let all: [RejectionRow] = [
        RejectionRow("", .emptyTarget),

        RejectionRow("/" + String(repeating: "a", count: RequestInfoLimits.maxTargetBytes), .targetTooLong),
        // The length check comes first, whatever else is wrong.
        RejectionRow("/api/v1/pods?x=" + String(repeating: "%2F", count: 3000), .targetTooLong),
        RejectionRow("http://example.com" + String(repeating: "/a", count: 5000), .targetTooLong),

        RejectionRow("*", .notOriginForm),
        RejectionRow("http://example.com/api/v1/pods", .notOriginForm),
        RejectionRow("https://kubernetes.default.svc/api", .notOriginForm),
        RejectionRow("api/v1/pods", .notOriginForm),
        RejectionRow("?watch=1", .notOriginForm),
        RejectionRow(" /api/v1/pods", .notOriginForm),
        RejectionRow("%2Fapi/v1/pods", .notOriginForm),

        RejectionRow("/api/v1/pods#frag", .fragment),
        RejectionRow("/api/v1/pods?watch=1#x", .fragment),
        RejectionRow("/#", .fragment),

        RejectionRow("/api/v1/pods/caf\u{E9}", .nonASCII),
        RejectionRow("/api/v1/pods/caf%C3%A9", .nonASCII),
        RejectionRow("/api/v1/pods/%80", .nonASCII),
        RejectionRow("/api/v1/pods/%ff", .nonASCII),
        RejectionRow("/api/v1/pods?x=\u{E9}", .nonASCII),
        // U+2215 DIVISION SLASH, a classic look-alike of `/`.
        RejectionRow("/api/v1/namespaces\u{2215}kube-system", .nonASCII),

        RejectionRow("/api/v1/pods\t", .controlCharacter),
        RejectionRow("/api/v1/pods/a\u{7F}", .controlCharacter),
        RejectionRow("/api/v1/pods/%0A", .controlCharacter),
        RejectionRow("/api/v1/pods/%0d%0aX-Injected:%201", .controlCharacter),
        RejectionRow("/api/v1/pods/%1f", .controlCharacter),
        RejectionRow("/api/v1/pods/%7F", .controlCharacter),
        RejectionRow("/api/v1/pods?x=a\r\nHost: evil", .controlCharacter),
        RejectionRow("/api/v1/pods?x=\u{0}", .controlCharacter),

        RejectionRow("/api/v1\\pods", .backslashInPath),
        RejectionRow("/api\\..\\v1/secrets", .backslashInPath),

        RejectionRow("/api/v1/pods;x=y", .semicolonInPath),
        RejectionRow("/api/v1/pods/;", .semicolonInPath),
        RejectionRow("/api/v1/pods/%3B", .semicolonInPath),
        RejectionRow("/api/v1/pods/a%3bb", .semicolonInPath),

        RejectionRow("/api/v1/%zzpods", .invalidPercentEncodingInPath),
        RejectionRow("/api/v1/%g1", .invalidPercentEncodingInPath),
        RejectionRow("/api/v1/pods%4", .invalidPercentEncodingInPath),
        RejectionRow("/api/v1/pods%", .invalidPercentEncodingInPath),
        RejectionRow("/api/v1/pods%4?x=1", .invalidPercentEncodingInPath),
        RejectionRow("/api/v1/pods%?x=1", .invalidPercentEncodingInPath),
        RejectionRow("/api/v1/pods/%%32%46", .invalidPercentEncodingInPath),

        RejectionRow("/api/v1/namespaces%2Fkube-system%2Fsecrets", .encodedSlash),
        RejectionRow("/api/v1/namespaces/default%2fsecrets", .encodedSlash),
        RejectionRow("/api/v1/pods%2F", .encodedSlash),
        RejectionRow("/%2F", .encodedSlash),

        RejectionRow("/api/v1/pods%5C..%5Csecrets", .encodedBackslash),
        RejectionRow("/api/v1/pods/%5c", .encodedBackslash),

        RejectionRow("/api/v1/pods/%2e", .encodedDot),
        RejectionRow("/api/v1/%2e%2e/secrets", .encodedDot),
        RejectionRow("/api/v1/pods/.%2E", .encodedDot),
        RejectionRow("/api/v1/pods/foo%2Ebar", .encodedDot),

        RejectionRow("/api/v1/pods/%00", .encodedNUL),
        RejectionRow("/api/v1/secrets%00/pods", .encodedNUL),

        RejectionRow("/api/v1/pods/a b", .unsafeCharacterInPath),
        RejectionRow("/api/v1/pods/\"x\"", .unsafeCharacterInPath),
        RejectionRow("/api/v1/pods/<x>", .unsafeCharacterInPath),
        RejectionRow("/api/v1/pods/{x}", .unsafeCharacterInPath),
        RejectionRow("/api/v1/pods/a|b", .unsafeCharacterInPath),
        RejectionRow("/api/v1/pods/a^b", .unsafeCharacterInPath),
        RejectionRow("/api/v1/pods/a`b", .unsafeCharacterInPath),
        RejectionRow("/api/v1/pods/[0]", .unsafeCharacterInPath),
        RejectionRow("/api/v1/pods/a%20b", .unsafeCharacterInPath),
        RejectionRow("/api/v1/pods/a%22b", .unsafeCharacterInPath),
        RejectionRow("/api/v1/pods/a%3Cb", .unsafeCharacterInPath),
        // Double encoding: `%252F` decodes to `%2F`, which must not reach a
        // second decoder.
        RejectionRow("/api/v1/namespaces%252Fkube-system", .unsafeCharacterInPath),
        RejectionRow("/api/v1/pods/a%3Fwatch=1", .unsafeCharacterInPath),
        RejectionRow("/api/v1/pods/a%23b", .unsafeCharacterInPath),
        RejectionRow("/api/v1/pods/a%5Bb", .unsafeCharacterInPath),

        RejectionRow("/api/v1/pods/.", .dotSegment),
        RejectionRow("/api/v1/pods/..", .dotSegment),
        RejectionRow("/api/v1/../secrets", .dotSegment),
        RejectionRow("/./api/v1/pods", .dotSegment),
        RejectionRow("/..", .dotSegment),
        RejectionRow("/api/./v1/pods?watch=1", .dotSegment),
        RejectionRow("/api/v1/namespaces/default/pods/..?x=1", .dotSegment),

        RejectionRow("//", .emptySegment),
        RejectionRow("//api/v1/pods", .emptySegment),
        RejectionRow("/api//v1/pods", .emptySegment),
        RejectionRow("/api/v1/pods/", .emptySegment),
        RejectionRow("/api/version/", .emptySegment),
        RejectionRow("/apis/extensions/v1beta1/", .emptySegment),
        RejectionRow("/api/v1/pods/?watch=1", .emptySegment),

        RejectionRow("/api/v1/watch", .missingResourceAfterVerb),
        RejectionRow("/api/v1/proxy", .missingResourceAfterVerb),
        RejectionRow("/apis/apps/v1/watch", .missingResourceAfterVerb),
        RejectionRow("/api/v1/watch?watch=1", .missingResourceAfterVerb),
        RejectionRow("/api/v1/watch", .missingResourceAfterVerb, method: "HEAD"),

        RejectionRow("/api/v1/pods?watch=1;fieldSelector=metadata.name=x", .semicolonInQuery),
        RejectionRow("/api/v1/pods?a=b&c=d;", .semicolonInQuery),
        RejectionRow("/api/v1/pods?;", .semicolonInQuery),
        RejectionRow("/version?a;b", .semicolonInQuery),

        RejectionRow("/api/v1/pods?fieldSelector=%zz", .invalidPercentEncodingInQuery),
        RejectionRow("/api/v1/pods?a=%4", .invalidPercentEncodingInQuery),
        RejectionRow("/api/v1/pods?a=%4&b=1", .invalidPercentEncodingInQuery),
        RejectionRow("/api/v1/pods?%", .invalidPercentEncodingInQuery),
        RejectionRow("/api/v1/pods?a%=b", .invalidPercentEncodingInQuery),
        RejectionRow("/api/v1/pods?watch=%G0", .invalidPercentEncodingInQuery),
        RejectionRow("/version?x=%", .invalidPercentEncodingInQuery),

        RejectionRow("/api/v1/pods?a=b c", .unsafeCharacterInQuery),
        RejectionRow("/api/v1/pods?a=\"x\"", .unsafeCharacterInQuery),
        RejectionRow("/api/v1/pods?a=<script>", .unsafeCharacterInQuery),
        RejectionRow("/api/v1/pods?a={}", .unsafeCharacterInQuery),
        RejectionRow("/api/v1/pods?a=|", .unsafeCharacterInQuery),
        RejectionRow("/api/v1/pods?a=\\", .unsafeCharacterInQuery),
        RejectionRow("/api/v1/pods?a=^", .unsafeCharacterInQuery),
        RejectionRow("/api/v1/pods?a=`", .unsafeCharacterInQuery),
        RejectionRow("/api/v1/pods?a[0]=1", .unsafeCharacterInQuery),

        RejectionRow("/api/v1/pods?watch=1&watch=0", .duplicateWatchParameter),
        RejectionRow("/api/v1/pods?watch=0&watch=1", .duplicateWatchParameter),
        RejectionRow("/api/v1/pods?watch&watch", .duplicateWatchParameter),
        RejectionRow("/api/v1/pods?watch=1&w%61tch=1", .duplicateWatchParameter),
        RejectionRow("/api/v1/pods/foo?watch=1&watch=1", .duplicateWatchParameter),
        RejectionRow("/version?watch&watch=", .duplicateWatchParameter),

        RejectionRow(
            "/api/v1/pods?fieldSelector=metadata.name=a&fieldSelector=metadata.name=b", .duplicateFieldSelector),
        RejectionRow("/api/v1/pods?fieldSelector=&fieldSelector=", .duplicateFieldSelector),
        RejectionRow("/api/v1/pods?fieldSelector=a=b&field%53elector=c=d", .duplicateFieldSelector),
        RejectionRow("/api/v1/watch/pods?fieldSelector=a=b&fieldSelector=c=d", .duplicateFieldSelector),
        RejectionRow("/api/v1/secrets?labelSelector=a&labelSelector=b", .duplicateLabelSelector),
        RejectionRow("/api/v1/secrets?labelSelector=&label%53elector=", .duplicateLabelSelector),
    ]
}

@Suite("RequestAttributes(method:target:) refuses targets that could be read two ways")
struct TargetRejectionTableTests {
    @Test("each rejection reason", arguments: RejectionRows.all)
    func rejects(_ row: RejectionRow) {
        #expect(throws: row.want) {
            try RequestAttributes(method: row.method, target: row.target)
        }
    }

    @Test("every rejection reason has at least one row")
    func everyReasonCovered() {
        let covered = Set(RejectionRows.all.map(\.want))
        #expect(covered == Set(TargetRejection.allCases))
    }

    @Test("descriptions are short, distinct sentences for a Status message")
    func descriptions() {
        let descriptions = TargetRejection.allCases.map(\.description)
        #expect(Set(descriptions).count == descriptions.count)
        for description in descriptions {
            #expect(description.hasPrefix("the "))
            #expect(description.utf8.count < 100)
        }
    }
}
