import CFuzzerDriver
import IsthmusRequestInfo

/// SwiftPM links executables with `main` renamed to `<Module>_main`.
@_cdecl("FuzzRequestTarget_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv) { data, size in
        guard let data else { return 0 }
        return fuzzRequestTarget(data, size)
    }
}

/// libFuzzer entry point: the first byte picks a method, the rest is the
/// request target. Crashes, hangs and leaks are the findings; in addition an
/// accepted target must satisfy the invariants the proxy relies on.
func fuzzRequestTarget(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "get"]
    let method = methods[Int(data[0]) % methods.count]
    let bytes = UnsafeBufferPointer(start: data + 1, count: size - 1)
    let target = String(decoding: bytes, as: UTF8.self)
    guard let attributes = try? RequestAttributes(method: method, target: target) else { return 0 }

    // The forwarded path is canonical: absolute, no '%', no ';', no dot or empty segments.
    let path = attributes.path
    precondition(path.hasPrefix("/"), "accepted path does not start with /")
    precondition(!path.utf8.contains(UInt8(ascii: "%")), "accepted path still holds %")
    precondition(!path.utf8.contains(UInt8(ascii: ";")), "accepted path holds ;")
    precondition(!path.utf8.contains(where: { $0 < 0x21 || $0 > 0x7E }), "accepted path holds a control or non-ASCII byte")
    if path != "/" {
        for segment in path.utf8.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false).dropFirst() {
            precondition(!segment.isEmpty, "accepted path has an empty segment")
            precondition(!segment.elementsEqual(".".utf8) && !segment.elementsEqual("..".utf8), "accepted path has a dot segment")
        }
    }
    // Parsing what we forward gives the same decision: what was decided on is what the API server sees.
    guard let again = try? RequestAttributes(method: method, target: attributes.forwardTarget) else {
        preconditionFailure("the forwarded target is refused when parsed again")
    }
    precondition(again == attributes, "the forwarded target parses differently")
    return 0
}
