import Foundation
import IsthmusKubeTypes

/// `meta.k8s.io/v1` Tables for `kubectl get`: the default NAME and AGE columns
/// that kube-apiserver serves for resources without their own printer.
enum Tables {
    static func table(_ result: ListResult, now: Date = Date()) -> JSON {
        var metadata: [(String, JSON)] = [("resourceVersion", .string(String(result.resourceVersion)))]
        if let c = result.continueToken { metadata.append(("continue", .string(c))) }
        if let remaining = result.remainingItemCount { metadata.append(("remainingItemCount", .int(remaining))) }
        let columns: [JSON] = [
            .object([("name", .string("Name")), ("type", .string("string")), ("format", .string("name")),
                     ("description", .string("Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names")),
                     ("priority", .int(0))]),
            .object([("name", .string("Age")), ("type", .string("string")), ("format", .string("")),
                     ("description", .string("CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata")),
                     ("priority", .int(0))]),
        ]
        let rows: [JSON] = result.items.map { item in
            let name = item.value(at: ["metadata", "name"])?.stringValue ?? ""
            let created = item.value(at: ["metadata", "creationTimestamp"])?.stringValue
            return .object([
                ("cells", .array([.string(name), .string(age(created, now: now))])),
                ("object", .object([("kind", .string("PartialObjectMetadata")), ("apiVersion", .string("meta.k8s.io/v1")),
                                    ("metadata", item["metadata"] ?? .object([]))])),
            ])
        }
        return .object([("kind", .string("Table")), ("apiVersion", .string("meta.k8s.io/v1")), ("metadata", .object(metadata)),
                        ("columnDefinitions", .array(columns)), ("rows", .array(rows))])
    }

    static func age(_ timestamp: String?, now: Date) -> String {
        guard let timestamp, let date = ISO8601DateFormatter().date(from: timestamp) else { return "<unknown>" }
        let seconds = max(0, Int(now.timeIntervalSince(date)))
        if seconds < 120 { return "\(seconds)s" }
        let minutes = seconds / 60
        if minutes < 10 { return seconds % 60 == 0 ? "\(minutes)m" : "\(minutes)m\(seconds % 60)s" }
        if minutes < 180 { return "\(minutes)m" }
        let hours = minutes / 60
        if hours < 48 { return "\(hours)h" }
        return "\(hours / 24)d"
    }
}
