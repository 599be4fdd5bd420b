import CFuzzerDriver
import IsthmusController
import IsthmusKubeTypes

/// SwiftPM links executables with `main` renamed to `<Module>_main`.
@_cdecl("FuzzIstioMulticluster_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv) { data, size in
        guard let data else { return 0 }
        fuzzOne(Array(UnsafeBufferPointer(start: data, count: size)))
        return 0
    }
}

/// A spec error becomes a status condition's message: short whatever the spec.
private let maxMessageBytes = 4096

/// The input is an `IstioMulticluster` object as JSON, as the API server
/// returns it (any user with write access to the CRD can write its spec).
/// Whatever it holds: a bad spec is an error naming its field, never a crash;
/// an accepted one names an endpoint that is only what it may be (https, http
/// on loopback, or an absolute file path; no query, fragment or credentials),
/// parses again to itself, and means the same in either spec form.
func fuzzOne(_ input: [UInt8]) {
    guard let json = try? JSON(parsing: input) else { return }
    guard let object = try? IstioMulticluster(json: json) else { return }
    let spec: IstioMulticlusterSpec
    switch object.spec {
    case .failure(let error):
        precondition(!error.field.isEmpty && error.field.hasPrefix("spec"), "a spec error without its field")
        precondition(error.description.utf8.count <= maxMessageBytes, "a spec error message is unbounded")
        return
    case .success(let accepted):
        spec = accepted
    }
    let endpoint = spec.endpoint
    let base = endpoint.base
    precondition(base.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F } && !base.contains("?") && !base.contains("#")
                 && !base.hasSuffix("/"), "an accepted endpoint is not a bare URL")
    switch endpoint.scheme {
    case .https, .http:
        let authority = base.dropFirst(endpoint.scheme.rawValue.count + 3).prefix { $0 != "/" }
        precondition(!authority.isEmpty && !authority.contains("@"), "an accepted endpoint has no host or carries credentials")
        if endpoint.scheme == .http {
            let host = authority.first == "[" ? String(authority.prefix { $0 != "]" }) + "]" : String(authority.prefix { $0 != ":" })
            precondition(["127.0.0.1", "localhost", "[::1]"].contains(host.lowercased()), "plain http:// accepted for \(host)")
        }
    case .file:
        precondition(endpoint.filePath?.hasPrefix("/") == true, "a file:// endpoint without an absolute path")
    }
    precondition(base.lowercased().hasPrefix(endpoint.scheme.rawValue + "://"), "the scheme is not the URL's")
    guard let again = try? MetadataEndpoint(parsing: base, field: "spec.metadata.endpoint") else {
        preconditionFailure("an accepted endpoint is refused when parsed again")
    }
    precondition(again == endpoint, "an accepted endpoint parses again to another")
    precondition(endpoint.publicURL == base + "/public/public.json" && endpoint.privateURL == base + "/private/multicluster.json")

    // The same spec written in the newer form, and in the seed's form when it can say it all.
    var nested: [(String, JSON)] = [("endpoint", .string(base))]
    if let ca = spec.ca { nested.append(("ca", .string(ca))) }
    nested.append(("insecureSkipVerify", .bool(spec.insecureSkipVerify)))
    let newer = JSON.object([("metadata", .object(nested)), ("enableIngressGateway", .bool(spec.enableIngressGateway))])
    precondition((try? IstioMulticlusterSpec(json: newer)) == spec, "the spec means otherwise in the spec.metadata form")
    if spec.ca == nil && !spec.insecureSkipVerify {
        let seed = JSON.object([("metadataEndpoint", .string(base)), ("enableIngressGateway", .bool(spec.enableIngressGateway))])
        precondition((try? IstioMulticlusterSpec(json: seed)) == spec, "the spec means otherwise in the spec.metadataEndpoint form")
    }
    // Both forms given: accepted only when they agree.
    if case .string(let legacy)? = json["spec"]?["metadataEndpoint"],
       case .string(let newerEndpoint)? = json["spec"]?["metadata"]?["endpoint"] {
        precondition((try? MetadataEndpoint(parsing: legacy, field: "a")) == (try? MetadataEndpoint(parsing: newerEndpoint, field: "b")),
                     "two different endpoints were accepted")
    }
}
