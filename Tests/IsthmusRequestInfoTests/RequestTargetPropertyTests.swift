import IsthmusRequestInfo
import PropertyBased
import Testing

/// Generators of canonical paths: segments of characters that are safe
/// unencoded in a path, never `.` or `..`, sometimes a Kubernetes keyword so
/// the resource-parsing branches get exercised too.
enum CanonicalPaths {
    static let safeCharacters = Array(
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,=:@")
    static let keywords = [
        "api", "apis", "v1", "apps", "namespaces", "default", "pods", "watch", "proxy", "status", "finalize",
    ]

    static let randomSegment = Gen<Character?>.element(of: safeCharacters)
        .map { $0 ?? "a" }
        .string(of: 1...8)
        .map { $0 == "." || $0 == ".." ? $0 + "x" : $0 }

    static let keyword = Gen<String?>.element(of: keywords).map { $0 ?? "api" }

    static let segment = zip(Gen.bool(0.5), keyword, randomSegment)
        .map { useKeyword, keyword, random in useKeyword ? keyword : random }

    static let segments = segment.array(of: 0...8)

    static func path(_ segments: [String]) -> String { "/" + segments.joined(separator: "/") }

    /// The one canonical shape the parser refuses: a legacy verb prefix
    /// (`/api/V/watch`, `/apis/G/V/proxy`) with nothing after it.
    static func isBareVerbPrefix(_ segments: [String]) -> Bool {
        let verbs: Set<String> = ["watch", "proxy"]
        switch segments.first {
        case "api": return segments.count == 3 && verbs.contains(segments[2])
        case "apis": return segments.count == 4 && verbs.contains(segments[3])
        default: return false
        }
    }
}

@Suite("Request target properties")
struct RequestTargetPropertyTests {
    @Test("a canonical path parses and its path comes back unchanged")
    func canonicalPathRoundTrips() async {
        await propertyCheck(count: 1000, input: CanonicalPaths.segments) { segments in
            let path = CanonicalPaths.path(segments)
            do throws(TargetRejection) {
                let attributes = try RequestAttributes(method: "GET", target: path)
                #expect(attributes.path == path)
                #expect(attributes.query == "")
                #expect(attributes.forwardTarget == path)
            } catch {
                #expect(error == .missingResourceAfterVerb && CanonicalPaths.isBareVerbPrefix(segments))
            }
        }
    }

    @Test("an encoded slash anywhere in the path is refused")
    func encodedSlashIsRefused() async {
        let input = zip(CanonicalPaths.segments, Gen.int(in: 0...1000), Gen.bool)
        await propertyCheck(count: 1000, input: input) { segments, position, lowercase in
            let path = Array(CanonicalPaths.path(segments).utf8)
            // Anywhere after the leading `/` (before it, the target is not a path at all).
            let offset = 1 + position % path.count
            let injected = Array((lowercase ? "%2f" : "%2F").utf8)
            let target = String(decoding: path[..<offset] + injected + path[offset...], as: UTF8.self)
            #expect(throws: TargetRejection.encodedSlash) {
                try RequestAttributes(method: "GET", target: target + "?watch=1")
            }
        }
    }

    @Test("a dot segment anywhere in the path is refused, raw or encoded")
    func dotSegmentIsRefused() async {
        let dotSegments = ["." , "..", "%2e", "%2E", "%2e%2e", ".%2E", "%2E."]
        let input = zip(
            CanonicalPaths.segments, Gen.int(in: 0...1000),
            Gen<String?>.element(of: dotSegments).map { $0 ?? "." })
        await propertyCheck(count: 1000, input: input) { segments, position, dotSegment in
            var withDot = segments
            withDot.insert(dotSegment, at: position % (segments.count + 1))
            let target = CanonicalPaths.path(withDot)
            let expected: TargetRejection = dotSegment.contains("%") ? .encodedDot : .dotSegment
            #expect(throws: expected) {
                try RequestAttributes(method: "GET", target: target)
            }
        }
    }

    @Test("percent-encoding unreserved characters changes nothing")
    func encodingUnreservedCharactersChangesNothing() async {
        let queries = ["", "?watch=1", "?watch=false&fieldSelector=metadata.name%3Dx", "?fieldSelector=metadata.name=y"]
        let input = zip(
            CanonicalPaths.segments, Gen.bool.array(of: 1...32), Gen.bool,
            Gen<String?>.element(of: queries).map { $0 ?? "" })
        await propertyCheck(count: 1000, input: input) { segments, encodeMask, uppercaseHex, query in
            let plain = CanonicalPaths.path(segments)
            let encoded = percentEncodingUnreserved(of: plain, where: encodeMask, uppercaseHex: uppercaseHex)
            let plainResult = Result { () throws(TargetRejection) in
                try RequestAttributes(method: "GET", target: plain + query)
            }
            let encodedResult = Result { () throws(TargetRejection) in
                try RequestAttributes(method: "GET", target: encoded + query)
            }
            #expect(encodedResult == plainResult, "\(encoded + query)")
        }
    }

    @Test("anything accepted is canonical: re-parsing what is forwarded gives the same attributes")
    func acceptedTargetsAreFixpoints() async {
        // Few characters, heavy on the ones that matter, so that random strings
        // hit escapes, dot segments, keywords and query syntax often.
        let pieces = [
            "/", "/", "/", "%", "2", "F", "f", "e", "E", "5", "C", "0", ".", ".", "?", "&", "=", ";", "#", "+", "\\",
            " ", "a", "api", "apis", "v1", "watch", "namespaces", "pods", "status", "watch=", "fieldSelector=",
            "metadata.name", "%2F", "%2e", "%3D", "%5C", "%25", "%41",
        ]
        let prefixes = ["/", "/api/v1/", "/apis/apps/v1/", "/api/v1/namespaces/"]
        let input = zip(
            Gen<String?>.element(of: prefixes).map { $0 ?? "/" },
            Gen<String?>.element(of: pieces).map { $0 ?? "/" }.array(of: 0...12))
        await propertyCheck(count: 2000, input: input) { prefix, pieces in
            let target = prefix + pieces.joined()
            guard let attributes = try? RequestAttributes(method: "GET", target: target) else { return }
            #expect(!attributes.path.contains("%"))
            #expect(!attributes.path.contains("//"))
            let again = Result { () throws(TargetRejection) in
                try RequestAttributes(method: "GET", target: attributes.forwardTarget)
            }
            #expect(again == .success(attributes), "\(target)")
        }
    }

    /// Percent-encodes the unreserved characters of `path` (ALPHA, DIGIT, `-`,
    /// `_`, `~`; not `.`, whose encoding is refused on purpose) chosen by `mask`.
    private func percentEncodingUnreserved(of path: String, where mask: [Bool], uppercaseHex: Bool) -> String {
        let digits = Array((uppercaseHex ? "0123456789ABCDEF" : "0123456789abcdef").utf8)
        var result = [UInt8]()
        for (index, byte) in path.utf8.enumerated() {
            let isUnreserved =
                switch byte {
                case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                    UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "~"):
                    true
                default: false
                }
            if isUnreserved && mask[index % mask.count] {
                result += [UInt8(ascii: "%"), digits[Int(byte >> 4)], digits[Int(byte & 0x0F)]]
            } else {
                result.append(byte)
            }
        }
        return String(decoding: result, as: UTF8.self)
    }
}
