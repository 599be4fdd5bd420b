import IsthmusKubeTypes

/// Strategic merge patch for the built-in kinds this server serves: lists
/// merge by their `patchMergeKey` from k8s.io/api where upstream declares
/// `patchStrategy:"merge"`, and are replaced otherwise. Supports the
/// `$patch` (`replace`, `delete`, `merge`), `$retainKeys`,
/// `$setElementOrder/F` and `$deleteFromPrimitiveList/F` directives, and
/// `null` to delete a field.
enum StrategicMerge {
    /// How a list field merges.
    enum ListStrategy: Equatable {
        case replace
        case mergeByKey(String)
        /// A list of scalars merged as a set (`metadata.finalizers`).
        case mergePrimitives
    }

    /// The strategy of list `field` inside an object at `path` (field names,
    /// list elements named by their list's field) of an object of `kind`.
    static func strategy(kind: String, path: [String], field: String) -> ListStrategy {
        let podContainerLists: Set<String> = ["containers", "initContainers", "ephemeralContainers"]
        switch field {
        case "containers", "initContainers", "ephemeralContainers", "imagePullSecrets", "resourceClaims":
            return .mergeByKey("name")
        case "env", "volumes":
            return .mergeByKey("name")
        case "volumeMounts":
            return .mergeByKey("mountPath")
        case "volumeDevices":
            return .mergeByKey("devicePath")
        case "ports":
            if let parent = path.last, podContainerLists.contains(parent) { return .mergeByKey("containerPort") }
            if kind == "Service" && path == ["spec"] { return .mergeByKey("port") }
            return .replace
        case "ownerReferences":
            return path == ["metadata"] ? .mergeByKey("uid") : .replace
        case "finalizers":
            return path == ["metadata"] ? .mergePrimitives : .replace
        case "conditions":
            return path == ["status"] ? .mergeByKey("type") : .replace
        case "addresses":
            return kind == "Node" && path == ["status"] ? .mergeByKey("type") : .replace
        case "secrets":
            return kind == "ServiceAccount" && path.isEmpty ? .mergeByKey("name") : .replace
        case "hostAliases":
            return path == ["spec"] ? .mergeByKey("ip") : .replace
        case "topologySpreadConstraints":
            return path == ["spec"] ? .mergeByKey("topologyKey") : .replace
        default:
            return .replace
        }
    }

    enum Failure: Error { case invalid(String) }

    /// Applies `patch` to `original`; a top-level `$patch: delete` yields an empty object.
    static func apply(_ original: JSON, _ patch: JSON, kind: String) throws(Failure) -> JSON {
        guard case .object = patch else { throw .invalid("patch is not an object") }
        return try mergeObject(original, patch, kind: kind, path: []) ?? .object([])
    }

    /// nil: the object is deleted (`$patch: delete`).
    static func mergeObject(_ original: JSON, _ patch: JSON, kind: String, path: [String]) throws(Failure) -> JSON? {
        guard case .object(let members) = patch else { return patch }
        let directive = members.first { $0.0 == "$patch" }?.1.stringValue
        switch directive {
        case "delete":
            return nil
        case "replace":
            return try mergeObject(.object([]), .object(members.filter { $0.0 != "$patch" }), kind: kind, path: path)
        case nil, "merge":
            break
        default:
            throw .invalid("Unknown patch type: \(directive ?? "")")
        }
        var result: JSON = original.isObject ? original : .object([])
        var orders: [String: [JSON]] = [:]
        var retainKeys: [String]?
        for (key, value) in members {
            if key == "$patch" { continue }
            if key == "$retainKeys" {
                retainKeys = value.arrayValue?.compactMap(\.stringValue) ?? []
                continue
            }
            if key.hasPrefix("$setElementOrder/") {
                orders[String(key.dropFirst("$setElementOrder/".count))] = value.arrayValue ?? []
                continue
            }
            if key.hasPrefix("$deleteFromPrimitiveList/") {
                let field = String(key.dropFirst("$deleteFromPrimitiveList/".count))
                let remove = value.arrayValue ?? []
                if let items = result[field]?.arrayValue {
                    result[field] = .array(items.filter { !remove.contains($0) })
                }
                continue
            }
            if key.hasPrefix("$") { continue }
            switch value {
            case .null:
                result[key] = nil
            case .object:
                let existing = result[key] ?? .null
                result[key] = try mergeObject(existing.isObject ? existing : .object([]), value, kind: kind, path: path + [key])
            case .array(let items):
                result[key] = .array(try mergeList(result[key]?.arrayValue ?? [], items,
                                                   strategy: strategy(kind: kind, path: path, field: key),
                                                   kind: kind, path: path + [key]))
            default:
                result[key] = value
            }
        }
        for (field, order) in orders {
            guard let items = result[field]?.arrayValue else { continue }
            result[field] = .array(reorder(items, by: order, strategy: strategy(kind: kind, path: path, field: field)))
        }
        if let retainKeys, case .object(let merged) = result {
            result = .object(merged.filter { retainKeys.contains($0.0) })
        }
        return result
    }

    static func mergeList(_ original: [JSON], _ patch: [JSON], strategy: ListStrategy, kind: String, path: [String]) throws(Failure) -> [JSON] {
        // A `{"$patch": "replace"}` element replaces the whole list with the other elements.
        func isReplaceMarker(_ item: JSON) -> Bool { item["$patch"]?.stringValue == "replace" && item.objectValue?.count == 1 }
        func freshList(_ items: [JSON]) throws(Failure) -> [JSON] {
            var out: [JSON] = []
            for item in items where !isReplaceMarker(item) {
                if let added = try fresh(item, kind: kind, path: path) { out.append(added) }
            }
            return out
        }
        if patch.contains(where: isReplaceMarker) { return try freshList(patch) }
        switch strategy {
        case .replace:
            return try freshList(patch)
        case .mergePrimitives:
            var result = original
            for item in patch where !result.contains(item) { result.append(item) }
            return result
        case .mergeByKey(let mergeKey):
            var result = original
            for item in patch {
                guard item.isObject else { throw .invalid("a list merged by \(mergeKey) holds a non-object") }
                guard let key = item[mergeKey] else {
                    throw .invalid("map: \(String(decoding: item.bytes(), as: UTF8.self)) does not contain declared merge key: \(mergeKey)")
                }
                let index = result.firstIndex { sameKey($0[mergeKey], key) }
                if item["$patch"]?.stringValue == "delete" {
                    if let index { result.remove(at: index) }
                    continue
                }
                if let index {
                    if let merged = try mergeObject(result[index], item, kind: kind, path: path) {
                        result[index] = merged
                    } else {
                        result.remove(at: index)
                    }
                } else if let added = try fresh(item, kind: kind, path: path) {
                    result.append(added)
                }
            }
            return result
        }
    }

    /// A patch value with no original: directives applied to nothing, nulls dropped.
    static func fresh(_ item: JSON, kind: String, path: [String]) throws(Failure) -> JSON? {
        guard item.isObject else { return item }
        return try mergeObject(.object([]), item, kind: kind, path: path)
    }

    /// Merge keys compare as JSON values; a number and its string spelling (`80` vs `"80"`) do not match.
    static func sameKey(_ a: JSON?, _ b: JSON) -> Bool {
        guard let a else { return false }
        return a == b
    }

    /// `$setElementOrder`: the listed elements first, in that order, then the rest as they were.
    static func reorder(_ items: [JSON], by order: [JSON], strategy: ListStrategy) -> [JSON] {
        func identity(_ item: JSON) -> JSON {
            if case .mergeByKey(let key) = strategy { return item[key] ?? .null }
            return item
        }
        var remaining = items
        var ordered: [JSON] = []
        for wanted in order {
            let id = identity(wanted)
            if let index = remaining.firstIndex(where: { identity($0) == id }) {
                ordered.append(remaining.remove(at: index))
            }
        }
        return ordered + remaining
    }
}
