/// A request target that passed every check: a canonical path (decoded, no
/// dot or empty segments, nothing that means something else unencoded) and a
/// well-formed query.
///
/// Go's `net/http` hands kube-apiserver `URL.Path` already percent-decoded, and
/// RequestInfo splits that decoded path on `/`. So `/api/v1/%73ecrets` *is* a
/// request for secrets, and `%2F` would add a segment after any check on the
/// raw path. The proxy therefore decides on the decoded path and forwards the
/// decoded path: the bytes it authorized are the bytes the API server splits.
/// That is only sound if decoding is unambiguous and the decoded path needs no
/// re-encoding, which is what the rejections here guarantee.
struct RequestTarget {
    /// Where the path ends in the raw target: the index of `?`, or the end.
    var pathEnd: Int
    /// The decoded path when the raw path contained a percent-escape; nil when
    /// the raw path is already its own decoding.
    var decodedPath: [UInt8]?
    /// Segments of the path; 0 for the root `/`.
    var segmentCount: Int
    /// Index of the first query byte (after `?`), or nil without a `?`.
    var queryStart: Int?

    /// Checks `raw` and decodes its path.
    ///
    /// Scans left to right once; the first problem found is the one reported.
    static func parse(_ raw: UnsafeBufferPointer<UInt8>) throws(TargetRejection) -> RequestTarget {
        guard !raw.isEmpty else { throw .emptyTarget }
        guard raw.count <= RequestInfoLimits.maxTargetBytes else { throw .targetTooLong }
        guard raw[0] == ASCII.slash else { throw .notOriginForm }

        var path = PathScanner()
        var index = 1
        while index < raw.count {
            let byte = raw[index]
            if byte == ASCII.question { break }
            if byte == ASCII.slash {
                try path.endSegment()
                path.decodedPath?.append(byte)
                index += 1
            } else if byte == ASCII.percent {
                guard index + 2 < raw.count,
                    let high = ASCII.hexValue(raw[index + 1]),
                    let low = ASCII.hexValue(raw[index + 2])
                else { throw .invalidPercentEncodingInPath }
                let decoded = high << 4 | low
                try checkDecodedPathByte(decoded)
                if path.decodedPath == nil {
                    var copy = [UInt8]()
                    copy.reserveCapacity(raw.count)
                    copy.append(contentsOf: UnsafeBufferPointer(rebasing: raw[0..<index]))
                    path.decodedPath = copy
                }
                path.decodedPath?.append(decoded)
                path.appendCharacter(isRawDot: false)
                index += 3
            } else {
                try checkRawPathByte(byte)
                path.decodedPath?.append(byte)
                path.appendCharacter(isRawDot: byte == ASCII.dot)
                index += 1
            }
        }
        let pathEnd = index
        // The bare root `/` is the only path allowed to end in `/`.
        if pathEnd > 1 { try path.endSegment() }

        var queryStart: Int? = nil
        if pathEnd < raw.count {
            queryStart = pathEnd + 1
            try checkQuery(raw, from: pathEnd + 1)
        }
        return RequestTarget(
            pathEnd: pathEnd, decodedPath: path.decodedPath,
            segmentCount: path.segmentCount, queryStart: queryStart)
    }

    /// A raw (not percent-encoded) path byte.
    @inline(__always)
    private static func checkRawPathByte(_ byte: UInt8) throws(TargetRejection) {
        if ASCII.isSafeInPathSegment(byte) { return }
        if byte >= 0x80 { throw .nonASCII }
        if ASCII.isControl(byte) { throw .controlCharacter }
        switch byte {
        case ASCII.backslash: throw .backslashInPath
        case ASCII.semicolon: throw .semicolonInPath
        case ASCII.hash: throw .fragment
        default: throw .unsafeCharacterInPath
        }
    }

    /// A byte that came out of a `%XX` escape in the path. Separators and dots
    /// get their own reasons: those are the smuggling attempts worth naming in
    /// a log.
    @inline(__always)
    private static func checkDecodedPathByte(_ byte: UInt8) throws(TargetRejection) {
        switch byte {
        case ASCII.slash: throw .encodedSlash
        case ASCII.backslash: throw .encodedBackslash
        case ASCII.dot: throw .encodedDot
        case ASCII.nul: throw .encodedNUL
        case ASCII.semicolon: throw .semicolonInPath
        default:
            if ASCII.isSafeInPathSegment(byte) { return }
            if byte >= 0x80 { throw .nonASCII }
            if ASCII.isControl(byte) { throw .controlCharacter }
            throw .unsafeCharacterInPath
        }
    }

    /// The query is forwarded verbatim, so it is only checked, never rewritten:
    /// it must be valid RFC 3986, and every part of it must decode the way Go's
    /// `url.ParseQuery` decodes it without an error (an error there means the
    /// API server silently drops the pair, and our reading would differ).
    private static func checkQuery(
        _ raw: UnsafeBufferPointer<UInt8>, from start: Int
    ) throws(TargetRejection) {
        var index = start
        while index < raw.count {
            let byte = raw[index]
            if byte == ASCII.percent {
                guard index + 2 < raw.count,
                    ASCII.hexValue(raw[index + 1]) != nil,
                    ASCII.hexValue(raw[index + 2]) != nil
                else { throw .invalidPercentEncodingInQuery }
                index += 3
                continue
            }
            if !ASCII.isAllowedRawInQuery(byte) {
                if byte >= 0x80 { throw .nonASCII }
                if ASCII.isControl(byte) { throw .controlCharacter }
                switch byte {
                case ASCII.hash: throw .fragment
                case ASCII.semicolon: throw .semicolonInQuery
                default: throw .unsafeCharacterInQuery
                }
            }
            index += 1
        }
    }
}

/// Segment bookkeeping while the path is scanned.
private struct PathScanner {
    var decodedPath: [UInt8]? = nil
    var segmentCount = 0
    /// Characters (after decoding) in the current segment.
    var segmentLength = 0
    /// Raw dots in the current segment; encoded dots are refused on sight.
    var segmentDots = 0

    @inline(__always)
    mutating func appendCharacter(isRawDot: Bool) {
        segmentLength += 1
        if isRawDot { segmentDots += 1 }
    }

    /// Closes the current segment at a `/` or at the end of the path.
    @inline(__always)
    mutating func endSegment() throws(TargetRejection) {
        if segmentLength == 0 { throw .emptySegment }
        if segmentLength <= 2 && segmentDots == segmentLength { throw .dotSegment }
        segmentCount += 1
        segmentLength = 0
        segmentDots = 0
    }
}
