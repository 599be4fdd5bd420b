/// The query parameters RequestInfo reads, located the way Go's
/// `url.ParseQuery` locates them: pairs split on `&`, empty pairs skipped, key
/// and value split at the first `=`, both `+`-as-space and percent-decoded.
/// The query must already have passed ``RequestTarget``'s checks (no `;`, every
/// `%` followed by two hex digits), so decoding here cannot fail.
struct QueryParameters {
    /// Raw (still encoded) value of the one `watch` parameter.
    var watch: Range<Int>?
    /// Raw (still encoded) value of the one `fieldSelector` parameter.
    var fieldSelector: Range<Int>?
    /// Whether a `labelSelector` parameter is present (only its uniqueness matters here).
    var hasLabelSelector = false

    static func parse(
        _ raw: UnsafeBufferPointer<UInt8>, from start: Int
    ) throws(TargetRejection) -> QueryParameters {
        var parameters = QueryParameters()
        var pairStart = start
        while pairStart < raw.count {
            var pairEnd = pairStart
            while pairEnd < raw.count && raw[pairEnd] != ASCII.ampersand { pairEnd += 1 }
            if pairEnd > pairStart {
                var keyEnd = pairStart
                while keyEnd < pairEnd && raw[keyEnd] != ASCII.equals { keyEnd += 1 }
                let key = pairStart..<keyEnd
                let value = keyEnd < pairEnd ? (keyEnd + 1)..<pairEnd : pairEnd..<pairEnd
                if QueryComponent(raw, key).decodes(to: "watch") {
                    guard parameters.watch == nil else { throw .duplicateWatchParameter }
                    parameters.watch = value
                } else if QueryComponent(raw, key).decodes(to: "fieldSelector") {
                    guard parameters.fieldSelector == nil else { throw .duplicateFieldSelector }
                    parameters.fieldSelector = value
                } else if QueryComponent(raw, key).decodes(to: "labelSelector") {
                    guard !parameters.hasLabelSelector else { throw .duplicateLabelSelector }
                    parameters.hasLabelSelector = true
                }
            }
            pairStart = pairEnd + 1
        }
        return parameters
    }

    /// Whether a `watch` value asks for a watch, as apimachinery's
    /// `Convert_Slice_string_To_bool` decides for `ListOptions.Watch`: only `0`
    /// and `false` (compared with `strings.EqualFold`) are false; anything else,
    /// the empty string included (`?watch`, `?watch=`), is true.
    static func isTrue(watch value: QueryComponent) -> Bool {
        var bytes = value.makeIterator()
        guard let first = bytes.next() else { return true }
        if first == 0x30 { return bytes.next() != nil }  // "0"
        // "false" under Unicode simple case folding. The only non-ASCII
        // character folding onto one of its letters is U+017F LATIN SMALL
        // LETTER LONG S (UTF-8 C5 BF), which folds to `s`.
        guard first | 0x20 == 0x66 else { return true }  // f
        guard let a = bytes.next(), a | 0x20 == 0x61 else { return true }
        guard let l = bytes.next(), l | 0x20 == 0x6C else { return true }
        guard let s = bytes.next() else { return true }
        if s == 0xC5 {
            guard bytes.next() == 0xBF else { return true }
        } else if s | 0x20 != 0x73 {
            return true
        }
        guard let e = bytes.next(), e | 0x20 == 0x65 else { return true }
        return bytes.next() != nil
    }
}

/// One key or value of a query, decoded on the fly as `url.QueryUnescape`
/// decodes it: `+` is a space, `%XX` is the byte XX.
struct QueryComponent: Sequence {
    let raw: UnsafeBufferPointer<UInt8>
    let range: Range<Int>

    init(_ raw: UnsafeBufferPointer<UInt8>, _ range: Range<Int>) {
        self.raw = raw
        self.range = range
    }

    struct Iterator: IteratorProtocol {
        let raw: UnsafeBufferPointer<UInt8>
        var index: Int
        let end: Int

        @inline(__always)
        mutating func next() -> UInt8? {
            guard index < end else { return nil }
            let byte = raw[index]
            switch byte {
            case ASCII.plus:
                index += 1
                return ASCII.space
            case ASCII.percent:
                // Validated by RequestTarget: two hex digits follow.
                let high = ASCII.hexValue(raw[index + 1]) ?? 0
                let low = ASCII.hexValue(raw[index + 2]) ?? 0
                index += 3
                return high << 4 | low
            default:
                index += 1
                return byte
            }
        }
    }

    func makeIterator() -> Iterator { Iterator(raw: raw, index: range.lowerBound, end: range.upperBound) }

    /// Whether the component decodes to exactly `literal`, without allocating.
    func decodes(to literal: StaticString) -> Bool {
        // A decoded component is never longer than its encoding.
        guard range.count >= literal.utf8CodeUnitCount else { return false }
        let expected = UnsafeBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount)
        var bytes = makeIterator()
        for want in expected {
            guard bytes.next() == want else { return false }
        }
        return bytes.next() == nil
    }

}
