/// The one thing RequestInfo takes from a field selector: the object name of
/// `metadata.name=X` (or `==X`), so that a list or watch narrowed to one object
/// is authorized like a get of that object (`resourceNames` in a policy).
///
/// Mirrors k8s.io/apimachinery `fields.ParseSelector` followed by
/// `RequiresExactMatch("metadata.name")`:
/// - terms are split on `,` not preceded by `\`;
/// - each non-empty term splits at its first operator, trying `!=`, `==`, `=`
///   at every position; a term without one makes the whole selector invalid;
/// - the value unescapes `\\`, `\,` and `\=`; any other `\x`, a trailing `\`
///   or an unescaped `,`/`=` makes the whole selector invalid;
/// - the terms are sorted (byte order) before the first exact match is taken,
///   so with two `metadata.name` terms the smaller term wins (the API server
///   ANDs them, so the list is empty or that one object either way).
///
/// An invalid selector yields no name: the API server's RequestInfo then falls
/// back to no name too, and its list handler refuses the selector with 400.
enum FieldSelector {
    /// The `metadata.name` the selector requires, if any.
    ///
    /// Returns nil also when the name is not valid UTF-8: it could not be a
    /// Kubernetes object name, and leaving the name empty only ever asks the
    /// policy for more (a list of everything), never less.
    static func requiredName(_ encoded: QueryComponent) -> String? {
        guard !encoded.range.isEmpty else { return nil }
        // Decoded on the stack: a selector never decodes to more bytes than
        // its encoding, and this runs on every narrowed list and watch.
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: encoded.range.count) { buffer in
            var count = 0
            for byte in encoded {
                buffer[count] = byte
                count += 1
            }
            return requiredName(in: UnsafeBufferPointer(rebasing: buffer[0..<count]))
        }
    }

    private static func requiredName(in selector: UnsafeBufferPointer<UInt8>) -> String? {
        var best: (term: Range<Int>, value: Range<Int>)? = nil
        var termStart = 0
        var index = 0
        var escaped = false
        // One pass: a term ends at an unescaped `,` or at the end.
        while index <= selector.count {
            if index < selector.count {
                let byte = selector[index]
                if escaped {
                    escaped = false
                    index += 1
                    continue
                }
                if byte == ASCII.backslash {
                    escaped = true
                    index += 1
                    continue
                }
                if byte != ASCII.comma {
                    index += 1
                    continue
                }
            }
            let term = termStart..<index
            if !term.isEmpty {
                guard let (lhs, op, rhs) = split(term: term, in: selector),
                    isValidValue(rhs, in: selector)
                else { return nil }
                if op != .notEqual && selector.bytes(in: lhs, equal: "metadata.name") {
                    if let current = best {
                        if selector[term].lexicographicallyPrecedes(selector[current.term]) {
                            best = (term, rhs)
                        }
                    } else {
                        best = (term, rhs)
                    }
                }
            }
            index += 1
            termStart = index
        }
        guard let best else { return nil }
        return unescapedString(best.value, in: selector)
    }

    private enum Operator { case notEqual, doubleEqual, equal }

    /// `splitTerm`: the first position where `!=`, `==` or `=` starts.
    private static func split(
        term: Range<Int>, in selector: UnsafeBufferPointer<UInt8>
    ) -> (lhs: Range<Int>, op: Operator, rhs: Range<Int>)? {
        var index = term.lowerBound
        while index < term.upperBound {
            let byte = selector[index]
            let nextIsEquals = index + 1 < term.upperBound && selector[index + 1] == ASCII.equals
            if byte == ASCII.exclamation && nextIsEquals {
                return (term.lowerBound..<index, .notEqual, (index + 2)..<term.upperBound)
            }
            if byte == ASCII.equals {
                if nextIsEquals {
                    return (term.lowerBound..<index, .doubleEqual, (index + 2)..<term.upperBound)
                }
                return (term.lowerBound..<index, .equal, (index + 1)..<term.upperBound)
            }
            index += 1
        }
        return nil
    }

    /// Whether `UnescapeValue` accepts the value.
    private static func isValidValue(_ value: Range<Int>, in selector: UnsafeBufferPointer<UInt8>) -> Bool {
        var escaped = false
        for index in value {
            let byte = selector[index]
            if escaped {
                guard byte == ASCII.backslash || byte == ASCII.comma || byte == ASCII.equals else {
                    return false
                }
                escaped = false
            } else if byte == ASCII.backslash {
                escaped = true
            } else if byte == ASCII.comma || byte == ASCII.equals {
                return false
            }
        }
        return !escaped
    }

    /// The value with its escapes removed (`value` must be valid), or nil when
    /// it is not UTF-8.
    private static func unescapedString(_ value: Range<Int>, in selector: UnsafeBufferPointer<UInt8>) -> String? {
        if value.isEmpty { return "" }
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: value.count) { buffer in
            var count = 0
            var escaped = false
            for index in value {
                let byte = selector[index]
                if !escaped && byte == ASCII.backslash {
                    escaped = true
                    continue
                }
                escaped = false
                buffer[count] = byte
                count += 1
            }
            return String(validating: UnsafeBufferPointer(rebasing: buffer[0..<count]), as: UTF8.self)
        }
    }

    /// apimachinery `path.IsValidPathSegmentName`: the name becomes a path
    /// segment in the API server, so `.`, `..`, and names containing `/` or `%`
    /// are not taken from a selector.
    static func isValidPathSegmentName(_ name: String) -> Bool {
        if name == "." || name == ".." { return false }
        for byte in name.utf8 where byte == ASCII.slash || byte == ASCII.percent {
            return false
        }
        return true
    }
}
