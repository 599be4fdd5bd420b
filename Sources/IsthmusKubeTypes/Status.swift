/// A `meta.k8s.io/v1` Status, worded and ordered exactly as kube-apiserver
/// writes it: `kind, apiVersion, metadata, status, message, reason, details, code`.
public struct Status: Sendable, Equatable, Error {
    public struct Cause: Sendable, Equatable {
        public var reason: String
        public var message: String
        public var field: String
        public init(reason: String, message: String, field: String) {
            self.reason = reason
            self.message = message
            self.field = field
        }
    }

    public struct Details: Sendable, Equatable {
        public var name: String?
        public var group: String?
        public var kind: String?
        public var uid: String?
        public var causes: [Cause] = []
        public init(name: String? = nil, group: String? = nil, kind: String? = nil, uid: String? = nil, causes: [Cause] = []) {
            self.name = name
            self.group = group
            self.kind = kind
            self.uid = uid
            self.causes = causes
        }
    }

    public var status: String
    public var message: String?
    public var reason: String?
    /// `nil` omits the key; an empty `Details()` writes `"details":{}`.
    public var details: Details?
    public var code: Int

    public init(status: String = "Failure", message: String?, reason: String?, details: Details?, code: Int) {
        self.status = status
        self.message = message
        self.reason = reason
        self.details = details
        self.code = code
    }

    public var json: JSON {
        var members: [(String, JSON)] = [
            ("kind", .string("Status")), ("apiVersion", .string("v1")), ("metadata", .object([])),
            ("status", .string(status)),
        ]
        if let message { members.append(("message", .string(message))) }
        if let reason { members.append(("reason", .string(reason))) }
        if let details {
            var d: [(String, JSON)] = []
            if let name = details.name { d.append(("name", .string(name))) }
            if let group = details.group { d.append(("group", .string(group))) }
            if let kind = details.kind { d.append(("kind", .string(kind))) }
            if let uid = details.uid { d.append(("uid", .string(uid))) }
            if !details.causes.isEmpty {
                d.append(("causes", .array(details.causes.map {
                    .object([("reason", .string($0.reason)), ("message", .string($0.message)), ("field", .string($0.field))])
                })))
            }
            members.append(("details", .object(d)))
        }
        if status != "Success" || code != 0 { members.append(("code", .int(code))) }
        return .object(members)
    }

    /// The compact body with the trailing newline Go's encoder writes.
    public var body: [UInt8] { json.bytes() + [0x0A] }
}

extension Status {
    /// `services "missing" not found`; details.kind is the resource (plural), as upstream.
    public static func notFound(resource: String, group: String = "", name: String) -> Status {
        let qualified = group.isEmpty ? resource : "\(resource).\(group)"
        return Status(message: "\(qualified) \"\(name)\" not found", reason: "NotFound",
                      details: Details(name: name, group: group.isEmpty ? nil : group, kind: resource), code: 404)
    }

    public static func alreadyExists(resource: String, group: String = "", name: String) -> Status {
        let qualified = group.isEmpty ? resource : "\(resource).\(group)"
        return Status(message: "\(qualified) \"\(name)\" already exists", reason: "AlreadyExists",
                      details: Details(name: name, group: group.isEmpty ? nil : group, kind: resource), code: 409)
    }

    /// 403 from the NamespaceLifecycle admission plugin: a create in a `Terminating` namespace (fixture 53b).
    public static func namespaceTerminating(resource: String, name: String, group: String = "", namespace: String) -> Status {
        Status(message: "\(resource) \"\(name)\" is forbidden: unable to create new content in namespace \(namespace) because it is being terminated",
               reason: "Forbidden",
               details: Details(name: name, group: group.isEmpty ? nil : group, kind: resource.split(separator: ".").first.map(String.init),
                                causes: [Cause(reason: "NamespaceTerminating", message: "namespace \(namespace) is being terminated", field: "metadata.namespace")]),
               code: 403)
    }

    public static func conflict(resource: String, group: String = "", name: String) -> Status {
        let qualified = group.isEmpty ? resource : "\(resource).\(group)"
        return Status(
            message: "Operation cannot be fulfilled on \(qualified) \"\(name)\": the object has been modified; please apply your changes to the latest version and try again",
            reason: "Conflict", details: Details(name: name, group: group.isEmpty ? nil : group, kind: resource), code: 409)
    }

    /// 422 Invalid; details.kind is the Kind, as upstream.
    public static func invalid(kind: String, group: String = "", name: String, causes: [Cause]) -> Status {
        let qualified = group.isEmpty ? kind : "\(kind).\(group)"
        let text: String
        if causes.count == 1, let only = causes.first {
            text = "\(only.field): \(only.message)"
        } else {
            text = "[" + causes.map { "\($0.field): \($0.message)" }.joined(separator: ", ") + "]"
        }
        return Status(message: "\(qualified) \"\(name)\" is invalid: \(text)", reason: "Invalid",
                      details: Details(name: name, group: group.isEmpty ? nil : group, kind: kind, causes: causes), code: 422)
    }

    public static let unauthorized = Status(message: "Unauthorized", reason: "Unauthorized", details: nil, code: 401)

    public static func badRequest(_ message: String) -> Status {
        Status(message: message, reason: "BadRequest", details: nil, code: 400)
    }

    public static let resourceNotFound = Status(
        message: "the server could not find the requested resource", reason: "NotFound", details: Details(), code: 404)

    public static let methodNotAllowed = Status(
        message: "the server does not allow this method on the requested resource", reason: "MethodNotAllowed",
        details: Details(), code: 405)

    public static let unsupportedMediaType = Status(
        message: "415: Unsupported Media Type", reason: "UnsupportedMediaType", details: Details(), code: 415)

    /// 415 for a protobuf body the embedded API server cannot read, with the way around it:
    /// the same object as JSON.
    public static func unsupportedProtobuf(_ what: String) -> Status {
        Status(message: "415: Unsupported Media Type: \(what); send it as JSON instead, e.g. "
               + "kubectl create ... --dry-run=client -o json | kubectl apply -f -",
               reason: "UnsupportedMediaType", details: Details(), code: 415)
    }

    public static let notAcceptable = Status(
        message: "only the following media types are accepted: application/json, application/yaml, application/vnd.kubernetes.protobuf",
        reason: "NotAcceptable", details: nil, code: 406)

    /// A failed JSON-patch `test` and other unprocessable patches.
    public static let patchRejected = Status(
        message: "the server rejected our request due to an error in our request", reason: "Invalid",
        details: Details(), code: 422)

    /// A watch from a resourceVersion older than the history: sent as an ERROR event.
    public static func tooOldResourceVersion(requested: UInt64, oldest: UInt64) -> Status {
        Status(message: "too old resource version: \(requested) (\(oldest))", reason: "Expired", details: nil, code: 410)
    }

    /// A LIST with `resourceVersionMatch=Exact` older than the history: HTTP 410.
    public static let listTooOld = Status(
        message: "The resourceVersion for the provided list is too old.", reason: "Expired", details: nil, code: 410)

    public static let continueTooOld = Status(
        message: "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue parameter from a newer list response.",
        reason: "Expired", details: nil, code: 410)

    public static func internalError(_ message: String) -> Status {
        Status(message: message, reason: "InternalError", details: Details(), code: 500)
    }

    public static func tooManyRequests(_ message: String = "Too many requests, please try again later.") -> Status {
        Status(message: message, reason: "TooManyRequests", details: Details(causes: []), code: 429)
    }

    public static func serviceUnavailable() -> Status {
        Status(message: "the server is currently unable to handle the request", reason: "ServiceUnavailable",
               details: Details(), code: 503)
    }
}

/// A watch event line: `{"type":"ADDED","object":{...}}` plus `\n`, one per chunk/DATA frame.
public enum WatchEventType: String, Sendable {
    case added = "ADDED", modified = "MODIFIED", deleted = "DELETED", bookmark = "BOOKMARK", error = "ERROR"
}

public enum WatchEventEncoding {
    /// Encodes an event as the bytes of one chunk (with the trailing newline).
    public static func encode(type: WatchEventType, object: JSON) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(512)
        out.append(contentsOf: #"{"type":""#.utf8)
        out.append(contentsOf: type.rawValue.utf8)
        out.append(contentsOf: #"","object":"#.utf8)
        object.write(into: &out)
        out.append(contentsOf: "}\n".utf8)
        return out
    }
}
