/// Why a request target was refused before any authorization decision.
///
/// Every case names one way in which the proxy's view of a request could
/// diverge from kube-apiserver's view of the same bytes (or in which the target
/// is simply not something a Kubernetes client sends). Refusing is the only
/// safe answer: an authorizer that decides on a different path than the one the
/// API server serves can be walked around.
///
/// The cases carry no payload on purpose (nothing of the input leaks into a
/// response or a log through them), which also makes them `CaseIterable` for
/// metrics labels.
///
/// `description` is a short sentence meant for the `message` of a Kubernetes
/// `Status` (400 BadRequest). It never quotes the target: the target is
/// attacker-controlled and may be up to ``RequestInfoLimits/maxTargetBytes`` long.
public enum TargetRejection: Error, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    // MARK: The target as a whole

    /// The request target is empty; HTTP requires at least `/`.
    case emptyTarget
    /// Longer than ``RequestInfoLimits/maxTargetBytes``. Kubernetes clients
    /// never need that much, and a bound keeps parsing cheap.
    case targetTooLong
    /// Not origin form (`/path?query`): absolute form (`http://host/...`) and
    /// asterisk form (`*`) would let the client pick a different authority or
    /// none; a proxy to one API server only ever needs origin form.
    case notOriginForm
    /// A `#` in the target. Fragments are never sent by clients; a server or an
    /// intermediary may cut the target there or keep it, so the two views diverge.
    case fragment
    /// A byte outside ASCII, raw anywhere in the target or percent-encoded in
    /// the path. Kubernetes paths are ASCII; non-ASCII invites normalization tricks.
    case nonASCII
    /// A control character (0x00–0x1F or DEL), raw anywhere in the target or
    /// percent-encoded in the path. Raw ones are invalid HTTP and a header- or
    /// log-injection vector; Go's URL parser refuses them too.
    case controlCharacter

    // MARK: The path

    /// A raw `\` in the path. Some stacks treat it as `/`, so the segments the
    /// authorizer sees may not be the segments served.
    case backslashInPath
    /// A `;` in the path, raw or encoded. Path parameters (`/pods;x=y`) are
    /// split off by some servers and kept by others.
    case semicolonInPath
    /// `%` not followed by two hex digits in the path. Go refuses such a URL
    /// with 400; any guess of ours could differ from another component's guess.
    case invalidPercentEncodingInPath
    /// `%2F`: the API server decodes it into a real `/` before splitting the
    /// path, so `/api/v1/namespaces%2Fkube-system%2Fsecrets` would be authorized
    /// as one thing and served as another.
    case encodedSlash
    /// `%5C`: an encoded `\`, which some stacks turn into a separator.
    case encodedBackslash
    /// `%2E`: an encoded `.`; with `%2E%2E` a client hides a `..` segment from
    /// any check that looks at the raw path.
    case encodedDot
    /// `%00`: truncates the path in C-string based components.
    case encodedNUL
    /// A character that may not appear unencoded in a forwarded path segment,
    /// raw or after decoding (space, `"`, `<`, `%`, `?`, `#`, …). The proxy
    /// forwards the decoded path, so whatever it contains must mean the same
    /// thing unencoded.
    case unsafeCharacterInPath
    /// A `.` or `..` segment. Path cleaning would move the request to another
    /// resource after it was authorized.
    case dotSegment
    /// `//` or a trailing `/` (other than the bare root `/`). The API server's
    /// splitting trims and merges these, so the segment positions shift.
    case emptySegment
    /// `/api/VERSION/watch` or `/api/VERSION/proxy` with nothing after the verb:
    /// kube-apiserver fails to resolve such a request ("unable to determine kind
    /// and namespace from url") and answers 500.
    case missingResourceAfterVerb

    // MARK: The query

    /// A raw `;` in the query. Go (since 1.17) no longer treats `;` as a
    /// separator and silently drops the whole `a=b;c=d` pair, so our reading of
    /// that pair would not be the API server's.
    case semicolonInQuery
    /// `%` not followed by two hex digits in the query. Go drops the pair, we
    /// would have to guess; refuse instead.
    case invalidPercentEncodingInQuery
    /// A raw character that RFC 3986 never allows in a query (space, `"`, `<`,
    /// `>`, `\`, `^`, `` ` ``, `{`, `|`, `}`, `[`, `]`). Clients encode these; the
    /// query is forwarded verbatim, so it has to be a valid one.
    case unsafeCharacterInQuery
    /// `watch` given more than once. The API server reads the first value;
    /// refusing keeps every component from having to agree on which one counts.
    case duplicateWatchParameter
    /// `fieldSelector` given more than once. The API server reads the first one
    /// and may authorize by its `metadata.name`; refuse the ambiguity.
    case duplicateFieldSelector
    /// `labelSelector` given more than once. The proxy may narrow the selector
    /// it forwards (secrets it never serves); it must narrow the one that counts.
    case duplicateLabelSelector

    public var description: String {
        switch self {
        case .emptyTarget: "the request target is empty"
        case .targetTooLong:
            "the request target is longer than \(RequestInfoLimits.maxTargetBytes) bytes"
        case .notOriginForm: "the request target is not an absolute path"
        case .fragment: "the request target contains a fragment ('#')"
        case .nonASCII: "the request target contains a non-ASCII byte"
        case .controlCharacter: "the request target contains a control character"
        case .backslashInPath: "the request path contains a backslash"
        case .semicolonInPath: "the request path contains a semicolon"
        case .invalidPercentEncodingInPath: "the request path contains an invalid percent-encoding"
        case .encodedSlash: "the request path contains an encoded slash"
        case .encodedBackslash: "the request path contains an encoded backslash"
        case .encodedDot: "the request path contains an encoded dot"
        case .encodedNUL: "the request path contains an encoded NUL byte"
        case .unsafeCharacterInPath:
            "the request path contains a character that is not allowed in a path segment"
        case .dotSegment: "the request path contains a '.' or '..' segment"
        case .emptySegment: "the request path contains an empty segment"
        case .missingResourceAfterVerb:
            "the request path names a watch or proxy verb but no resource"
        case .semicolonInQuery: "the query string contains a semicolon"
        case .invalidPercentEncodingInQuery: "the query string contains an invalid percent-encoding"
        case .unsafeCharacterInQuery: "the query string contains a character that must be percent-encoded"
        case .duplicateWatchParameter: "the query string repeats the watch parameter"
        case .duplicateFieldSelector: "the query string repeats the fieldSelector parameter"
        case .duplicateLabelSelector: "the query string repeats the labelSelector parameter"
        }
    }
}

/// Bounds on what the parser accepts.
public enum RequestInfoLimits {
    /// The longest request target accepted, in bytes. kubectl's longest
    /// requests (a long label selector, a continue token) stay far below it.
    public static let maxTargetBytes = 8192
}
