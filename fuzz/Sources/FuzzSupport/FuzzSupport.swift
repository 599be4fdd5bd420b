/// What more than one fuzz target needs.

/// Whether `needle` occurs in `haystack` as a contiguous run of bytes (not
/// Foundation's string search, which stops at a NUL).
public func containsBytes(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
    guard !needle.isEmpty else { return true }
    guard haystack.count >= needle.count else { return false }
    for start in 0...(haystack.count - needle.count) where haystack[start] == needle[0] {
        if haystack[start..<(start + needle.count)].elementsEqual(needle) { return true }
    }
    return false
}

/// The repository's default policy directory, found from this source file.
public let repositoryPolicies: String = {
    var parts = #filePath.split(separator: "/", omittingEmptySubsequences: false)
    parts.removeLast(4)  // fuzz/Sources/FuzzSupport/FuzzSupport.swift
    return parts.joined(separator: "/") + "/policies"
}()
