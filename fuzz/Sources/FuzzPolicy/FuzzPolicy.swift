import CFuzzerDriver
import FuzzSupport
import IsthmusPolicy
import IsthmusRequestInfo
import Yams

/// SwiftPM links executables with `main` renamed to `<Module>_main`.
@_cdecl("FuzzPolicy_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv) { data, size in
        guard let data else { return 0 }
        fuzzOne(Array(UnsafeBufferPointer(start: data, count: size)))
        return 0
    }
}

/// The repository's default policies: the directory a fuzzed file is added to.
private let baseSources = try! PolicySet.sources(inDirectory: repositoryPolicies)
private let base = try! PolicySet(sources: baseSources)
private let fuzzedName = "zz-fuzzed.yaml"
private let peers: [String?] = ["8d5f5d2e-1c1a-4a8e-9a53-2f6f4a3d2c11", "cluster-b", nil]

/// The input is one policy file's bytes, added to the default policy directory.
/// - All or nothing: the directory is refused exactly when the file alone is,
///   with exactly the file's problems, so a bad file changes nothing.
/// - Only additive: with the file, a request is allowed exactly when the
///   defaults or the file allow it; a file can never take access away or
///   grant a verb other than get, list and watch.
/// - The meaning is the text's, not its spelling: the accepted file written
///   again in another YAML style (flow, every string quoted) loads to the same
///   rules and the same decisions.
func fuzzOne(_ input: [UInt8]) {
    guard let text = String(validating: input, as: UTF8.self) else { return }
    let file = PolicySource(name: fuzzedName, contents: text)
    let alone = Result { () throws(PolicyLoadError) in try PolicySet(sources: [file]) }
    let combined = Result { () throws(PolicyLoadError) in try PolicySet(sources: baseSources + [file]) }
    switch (alone, combined) {
    case (.failure(let aloneError), .failure(let combinedError)):
        precondition(aloneError.problems == combinedError.problems && !aloneError.problems.isEmpty,
                     "the directory's problems are not exactly the file's")
        precondition(aloneError.problems.allSatisfy { $0.file == fuzzedName }, "a problem names another file")
        return
    case (.success(let fileSet), .success(let directory)):
        let probes = probeRequests(text)
        for request in probes {
            for peer in peers {
                let fromFile = fileSet.decide(request, peer: peer)
                let fromDirectory = directory.decide(request, peer: peer)
                precondition(fromDirectory.allowed == (base.decide(request, peer: peer).allowed || fromFile.allowed),
                             "the file took access away or granted more than it says")
                if fromDirectory.allowed {
                    precondition(ReadVerbs(requestVerb: request.verb) != [], "a write verb was allowed")
                }
            }
        }
        checkRespelled(text, fileSet, probes)
    default:
        preconditionFailure("the file and the directory with it disagree on whether it loads")
    }
}

/// The accepted file in flow style, every string double-quoted, loads to the
/// same rules, which decide every probe the same.
private func checkRespelled(_ text: String, _ original: PolicySet, _ probes: [RequestAttributes]) {
    guard let parser = try? Parser(yaml: text) else { preconditionFailure("an accepted file does not parse") }
    var documents: [String] = []
    var budget = 64 * 1024
    while let document = try? parser.nextRoot() {
        var out = ""
        // Past the budget (aliases can expand without bound) the check is skipped.
        guard render(document, into: &out, budget: &budget) else { return }
        documents.append(out)
    }
    let respelled = documents.map { "---\n" + $0 + "\n" }.joined()
    let again: PolicySet
    do { again = try PolicySet(sources: [PolicySource(name: fuzzedName, contents: respelled)]) } catch {
        preconditionFailure("the accepted file, respelled, is refused: \(error)\n\(respelled)")
    }
    precondition(again.rules.count == original.rules.count
                 && zip(again.rules, original.rules).allSatisfy { $0.verbs == $1.verbs && $0.reference.index == $1.reference.index },
                 "the respelled file has other rules")
    for request in probes {
        for peer in peers {
            let a = original.decide(request, peer: peer)
            let b = again.decide(request, peer: peer)
            precondition(a.allowed == b.allowed && a.rule?.index == b.rule?.index, "the respelled file decides otherwise")
        }
    }
}

/// Writes a node in flow style: mappings with explicit keys (no length limit
/// on a key), strings double-quoted with escapes, other scalars (null, bools,
/// numbers) as they resolved. False when the budget runs out.
private func render(_ node: Node, into out: inout String, budget: inout Int) -> Bool {
    guard budget > 0 else { return false }
    switch node {
    case .scalar(let scalar):
        let piece: String
        if scalar.style != .plain && scalar.style != .any || Resolver.default.resolveTag(of: node) == .str {
            piece = quoted(scalar.string)
        } else if Resolver.default.resolveTag(of: node) == .null {
            piece = "null"
        } else {
            piece = scalar.string
        }
        out += piece
        budget -= piece.utf8.count
    case .mapping(let mapping):
        out += "{"
        var first = true
        for (key, value) in mapping {
            if !first { out += ", " }
            first = false
            out += "? "
            guard render(key, into: &out, budget: &budget) else { return false }
            out += " : "
            guard render(value, into: &out, budget: &budget) else { return false }
        }
        out += "}"
        budget -= 2
    case .sequence(let sequence):
        out += "["
        for (index, item) in sequence.enumerated() {
            if index > 0 { out += ", " }
            guard render(item, into: &out, budget: &budget) else { return false }
        }
        out += "]"
        budget -= 2
    case .alias:
        return false
    }
    return budget > 0
}

/// A YAML double-quoted scalar: `"` and `\` escaped, and every character YAML
/// does not allow raw (controls, DEL, C1, BOM, non-characters) as `\u`/`\U`.
private func quoted(_ s: String) -> String {
    var out = "\""
    for scalar in s.unicodeScalars {
        switch scalar.value {
        case 0x22: out += "\\\""
        case 0x5C: out += "\\\\"
        case 0x20...0x7E, 0xA0...0xD7FF, 0xE000...0xFEFE, 0xFF00...0xFFFD, 0x10000...:
            out.unicodeScalars.append(scalar)
        default:
            let hex = String(scalar.value, radix: 16)
            out += scalar.value <= 0xFFFF ? "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                : "\\U" + String(repeating: "0", count: 8 - hex.count) + hex
        }
    }
    return out + "\""
}

/// Requests built from the strings the file names, so rules that match
/// something are probed where they match: up to 96 combinations of group,
/// resource, name, namespace and verb, and the non-resource paths.
private func probeRequests(_ text: String) -> [RequestAttributes] {
    var strings: [String] = []
    var seen: Set<String> = []
    if let parser = try? Parser(yaml: text) {
        while let document = try? parser.nextRoot() {
            collectStrings(document, into: &strings, seen: &seen)
        }
    }
    let groups = [""] + strings.filter { $0.contains(".") }.prefix(3) + ["x.example"]
    var resources: [(String, String)] = [("pods", ""), ("secrets", "")]
    for value in strings.prefix(6) {
        let parts = value.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        let resource = parts[0] == "*" ? "pods" : parts[0]
        resources.append((resource, parts.count > 1 ? (parts[1] == "*" ? "status" : parts[1]) : ""))
    }
    let names = [""] + strings.prefix(2)
    let namespaces = ["", "default"] + strings.prefix(2)
    var probes: [RequestAttributes] = []
    for i in 0..<96 {
        let group = groups[i % groups.count]
        let (resource, subresource) = resources[(i / groups.count) % resources.count]
        let name = names[(i / 3) % names.count]
        let namespace = namespaces[(i / 5) % namespaces.count]
        let verb: Verb = name.isEmpty ? (i % 2 == 0 ? .list : .watch) : .get
        probes.append(RequestAttributes(
            isResourceRequest: true, path: "/", verb: i % 17 == 0 ? Verb(rawValue: "delete") : verb,
            apiPrefix: group.isEmpty ? "api" : "apis", apiGroup: group, apiVersion: "v1",
            namespace: namespace, resource: resource, subresource: name.isEmpty ? "" : subresource, name: name))
    }
    for value in strings where value.hasPrefix("/") {
        let path = value.hasSuffix("*") ? String(value.dropLast()) + "x" : value
        for candidate in [path, value, String(value.dropLast())] {
            probes.append(RequestAttributes(isResourceRequest: false, path: candidate, verb: .get))
        }
    }
    probes.append(RequestAttributes(isResourceRequest: false, path: "/api", verb: .get))
    probes.append(RequestAttributes(isResourceRequest: false, path: "/version", verb: Verb(rawValue: "post")))
    return probes
}

private func collectStrings(_ node: Node, into strings: inout [String], seen: inout Set<String>) {
    guard strings.count < 24 else { return }
    switch node {
    case .scalar(let scalar):
        if scalar.string.utf8.count <= 253, seen.insert(scalar.string).inserted { strings.append(scalar.string) }
    case .mapping(let mapping):
        for (key, value) in mapping {
            collectStrings(key, into: &strings, seen: &seen)
            collectStrings(value, into: &strings, seen: &seen)
        }
    case .sequence(let sequence):
        for item in sequence { collectStrings(item, into: &strings, seen: &seen) }
    case .alias:
        break
    }
}
