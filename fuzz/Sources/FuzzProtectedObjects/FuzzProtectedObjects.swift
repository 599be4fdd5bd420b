import CFuzzerDriver
import IsthmusPolicy
import IsthmusRequestInfo

/// SwiftPM links executables with `main` renamed to `<Module>_main`.
@_cdecl("FuzzProtectedObjects_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv) { data, size in
        guard let data else { return 0 }
        fuzzOne(String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self))
        return 0
    }
}

private let protected = ProtectedObjects(isthmusNamespace: "isthmus-system")

/// Go's `url.ParseQuery` value of the first `key` pair, decoded; nil when absent.
/// Only called on queries RequestAttributes accepted (valid percent-escapes).
private func firstValue(_ query: String, _ key: String) -> String? {
    for pair in query.utf8.split(separator: UInt8(ascii: "&"), omittingEmptySubsequences: true) {
        let parts = pair.split(separator: UInt8(ascii: "="), maxSplits: 1, omittingEmptySubsequences: false)
        guard decode(parts[0]) == key else { continue }
        return parts.count > 1 ? decode(parts[1]) : ""
    }
    return nil
}

private func decode(_ raw: Substring.UTF8View.SubSequence) -> String {
    var out: [UInt8] = []
    var bytes = Array(raw)[...]
    while let byte = bytes.popFirst() {
        if byte == UInt8(ascii: "+") { out.append(UInt8(ascii: " ")); continue }
        if byte == UInt8(ascii: "%"), bytes.count >= 2,
           let value = UInt8(String(decoding: bytes.prefix(2), as: UTF8.self), radix: 16) {
            out.append(value)
            bytes = bytes.dropFirst(2)
            continue
        }
        out.append(byte)
    }
    return String(decoding: out, as: UTF8.self)
}

/// Whatever the target: nothing in the Isthmus namespace is let through
/// unrefused, and a narrowed list or watch, parsed again as the API server
/// would, is the same request whose selectors begin with exactly the
/// exclusions, followed by the client's own selector.
func fuzzOne(_ target: String) {
    guard let request = try? RequestAttributes(method: "GET", target: target) else { return }
    let decision = protected.decide(request)
    if request.isResourceRequest, request.namespace == "isthmus-system",
       !(request.apiGroup.isEmpty && request.resource == "namespaces") {
        precondition(decision == .refuse(.isthmusNamespace), "an object of the Isthmus namespace is not refused")
    }
    if request.isResourceRequest, request.apiGroup.isEmpty, request.resource == "secrets" {
        switch decision {
        case .refuse: break
        case .narrow: precondition(request.verb == .list || request.verb == .watch, "a Secret get narrowed instead of checked")
        case .checkSecretFirst: precondition(request.verb == .get && !request.name.isEmpty)
        case .unrestricted: preconditionFailure("a Secret read is unrestricted")
        }
        if request.name.hasPrefix(ProtectedObjects.remoteSecretNamePrefix) || request.namespace == "isthmus-system" {
            if case .refuse = decision {} else { preconditionFailure("a remote secret name or the Isthmus namespace is not refused") }
        }
    }
    guard case .narrow(let narrowing) = decision else { return }
    let forwarded = narrowing.target(for: request)
    // Over the limit the proxy refuses it (400) rather than forward what it could not parse
    // (AdmissionProtectionTests); this input once crashed the target here.
    if forwarded.utf8.count > RequestInfoLimits.maxTargetBytes { return }
    guard let again = try? RequestAttributes(method: "GET", target: forwarded) else {
        preconditionFailure("the narrowed target is refused when parsed again")
    }
    precondition(again.path == request.path && again.verb == request.verb && again.namespace == request.namespace
                 && again.resource == request.resource && again.apiGroup == request.apiGroup
                 && again.subresource == request.subresource,
                 "the narrowed target is another request")
    // The name can only stay: the exclusions hold metadata.name only as the request's own name.
    precondition(again.name == request.name, "the narrowed target names another object")
    for (key, exclusions) in [("fieldSelector", narrowing.fieldRequirements), ("labelSelector", narrowing.labelRequirements)]
    where !exclusions.isEmpty {
        let prefix = exclusions.joined(separator: ",")
        let client = firstValue(request.query, key) ?? ""
        let expected = client.isEmpty ? prefix : prefix + "," + client
        precondition(firstValue(again.query, key) == expected, "\(key) is not the exclusions in front of the client's")
    }
}
