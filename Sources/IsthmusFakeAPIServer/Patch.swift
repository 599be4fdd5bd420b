import IsthmusKubeTypes

/// The PATCH content types kube-apiserver accepts.
public enum PatchType: String, Sendable {
    case merge = "application/merge-patch+json"
    case json = "application/json-patch+json"
    /// Built-in kinds only (`StrategicMerge`); custom resources answer 415.
    case strategic = "application/strategic-merge-patch+json"
    /// Server-side apply, served as a merge of the applied object (YAML or JSON).
    case apply = "application/apply-patch+yaml"
    case applyCBOR = "application/apply-patch+cbor"

    public init?(contentType: String) {
        let bare = contentType.split(separator: ";").first.map { $0.trimmingCharacters(in: " ") } ?? ""
        self.init(rawValue: bare)
    }
}

extension StringProtocol {
    func trimmingCharacters(in c: Character) -> String {
        var s = Substring(self)
        while s.first == c { s = s.dropFirst() }
        while s.last == c { s = s.dropLast() }
        return String(s)
    }
}

enum Patcher {
    /// RFC 7386 JSON merge patch.
    static func mergePatch(_ target: JSON, _ patch: JSON) -> JSON {
        guard case .object(let patchMembers) = patch else { return patch }
        var result: JSON = target.isObject ? target : .object([])
        for (key, value) in patchMembers {
            if case .null = value {
                result[key] = nil
            } else {
                result[key] = mergePatch(result[key] ?? .null, value)
            }
        }
        return result
    }

    /// Removes strategic-merge directives (`$patch`, `$setElementOrder/...`,
    /// `$retainKeys`, `$deleteFromPrimitiveList/...`) so the rest can be merged.
    static func stripDirectives(_ patch: JSON) -> JSON {
        switch patch {
        case .object(let members):
            if members.contains(where: { $0.0 == "$patch" && $0.1.stringValue == "delete" }) { return .null }
            return .object(members.filter { !$0.0.hasPrefix("$") }.map { ($0.0, stripDirectives($0.1)) })
        case .array(let items):
            return .array(items.map(stripDirectives))
        default:
            return patch
        }
    }

    enum JSONPatchError: Error { case invalid, testFailed }

    /// RFC 6902 JSON patch.
    static func jsonPatch(_ target: JSON, _ patch: JSON) throws(JSONPatchError) -> JSON {
        guard let ops = patch.arrayValue else { throw .invalid }
        var doc = target
        for op in ops {
            guard let name = op["op"]?.stringValue, let path = op["path"]?.stringValue else { throw .invalid }
            let pointer = try parsePointer(path)
            switch name {
            case "add":
                guard let value = op["value"] else { throw .invalid }
                doc = try add(doc, pointer[...], value)
            case "remove":
                doc = try remove(doc, pointer[...])
            case "replace":
                guard let value = op["value"] else { throw .invalid }
                _ = try get(doc, pointer[...])
                doc = try remove(doc, pointer[...])
                doc = try add(doc, pointer[...], value)
            case "move", "copy":
                guard let from = op["from"]?.stringValue else { throw .invalid }
                let fromPointer = try parsePointer(from)
                let value = try get(doc, fromPointer[...])
                if name == "move" { doc = try remove(doc, fromPointer[...]) }
                doc = try add(doc, pointer[...], value)
            case "test":
                guard let value = op["value"] else { throw .invalid }
                guard try get(doc, pointer[...]) == value else { throw .testFailed }
            default:
                throw .invalid
            }
        }
        return doc
    }

    static func parsePointer(_ path: String) throws(JSONPatchError) -> [String] {
        if path.isEmpty { return [] }
        guard path.hasPrefix("/") else { throw .invalid }
        return path.dropFirst().split(separator: "/", omittingEmptySubsequences: false).map {
            $0.replacingOccurrences("~1", "/").replacingOccurrences("~0", "~")
        }
    }

    static func get(_ doc: JSON, _ pointer: ArraySlice<String>) throws(JSONPatchError) -> JSON {
        guard let first = pointer.first else { return doc }
        switch doc {
        case .object:
            guard let child = doc[first] else { throw .invalid }
            return try get(child, pointer.dropFirst())
        case .array(let items):
            guard let i = Int(first), i >= 0, i < items.count else { throw .invalid }
            return try get(items[i], pointer.dropFirst())
        default:
            throw .invalid
        }
    }

    static func add(_ doc: JSON, _ pointer: ArraySlice<String>, _ value: JSON) throws(JSONPatchError) -> JSON {
        guard let first = pointer.first else { return value }
        let rest = pointer.dropFirst()
        switch doc {
        case .object:
            var copy = doc
            if rest.isEmpty {
                copy[first] = value
            } else {
                guard let child = doc[first] else { throw .invalid }
                copy[first] = try add(child, rest, value)
            }
            return copy
        case .array(var items):
            if rest.isEmpty {
                if first == "-" { items.append(value); return .array(items) }
                guard let i = Int(first), i >= 0, i <= items.count else { throw .invalid }
                items.insert(value, at: i)
                return .array(items)
            }
            guard let i = Int(first), i >= 0, i < items.count else { throw .invalid }
            items[i] = try add(items[i], rest, value)
            return .array(items)
        default:
            throw .invalid
        }
    }

    static func remove(_ doc: JSON, _ pointer: ArraySlice<String>) throws(JSONPatchError) -> JSON {
        guard let first = pointer.first else { throw .invalid }
        let rest = pointer.dropFirst()
        switch doc {
        case .object:
            guard let child = doc[first] else { throw .invalid }
            var copy = doc
            copy[first] = rest.isEmpty ? nil : try remove(child, rest)
            return copy
        case .array(var items):
            guard let i = Int(first), i >= 0, i < items.count else { throw .invalid }
            if rest.isEmpty { items.remove(at: i) } else { items[i] = try remove(items[i], rest) }
            return .array(items)
        default:
            throw .invalid
        }
    }
}

extension Substring {
    func replacingOccurrences(_ target: String, _ replacement: String) -> String {
        String(self).replacingOccurrences(target, replacement)
    }
}

extension String {
    func replacingOccurrences(_ target: String, _ replacement: String) -> String {
        guard !target.isEmpty, self.contains(target) else { return self }
        var out = ""
        var rest = Substring(self)
        while let r = rest.firstRange(of: target) {
            out += rest[..<r.lowerBound]
            out += replacement
            rest = rest[r.upperBound...]
        }
        out += rest
        return out
    }
}

extension Status {
    /// Custom resources have no Go types to take merge keys from: kube-apiserver
    /// lists the patch types it accepts for them (no details key, as negotiation errors).
    static let strategicMergeUnsupported = Status(
        message: "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
        reason: "UnsupportedMediaType", details: nil, code: 415)
}
