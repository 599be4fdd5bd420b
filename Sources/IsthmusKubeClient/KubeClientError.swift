import IsthmusKubeTypes

/// Why a Kubernetes request failed.
public enum KubeClientError: Error, Sendable, CustomStringConvertible {
    /// The API server answered with a failure `Status` (404 NotFound, 409
    /// Conflict/AlreadyExists, 410 Expired, 429 TooManyRequests, ...).
    /// `retryAfter` is the server's `Retry-After`, when it sent one.
    case status(Status, retryAfter: Duration?)
    /// No answer: connection refused or reset, TLS failure, timeout.
    case transport(String)
    /// An answer that is not what the API promises (not JSON, no items, ...).
    case invalidResponse(String)
    /// The calling task was cancelled.
    case cancelled

    /// The failure `Status`, when the server sent one.
    public var status: Status? {
        if case .status(let status, _) = self { return status }
        return nil
    }

    /// The HTTP code of a `Status` failure.
    public var code: Int? { status?.code }
    /// The machine-readable reason of a `Status` failure (`NotFound`, `Conflict`, ...).
    public var reason: String? { status?.reason }

    public var retryAfter: Duration? {
        if case .status(_, let retryAfter) = self { return retryAfter }
        return nil
    }

    public var isNotFound: Bool { code == 404 }
    public var isAlreadyExists: Bool { code == 409 && reason == "AlreadyExists" }
    /// A write lost an optimistic-concurrency race: re-read and retry.
    public var isConflict: Bool { code == 409 && reason != "AlreadyExists" }
    /// 410: a resourceVersion or continue token older than the server's history.
    public var isGone: Bool { code == 410 }
    public var isTooManyRequests: Bool { code == 429 }
    public var isUnauthorized: Bool { code == 401 }
    public var isForbidden: Bool { code == 403 }
    public var isInvalid: Bool { code == 422 }
    /// 5xx or a transport failure: worth retrying with backoff.
    public var isServerError: Bool {
        if case .transport = self { return true }
        return (code ?? 0) >= 500
    }

    public var description: String {
        switch self {
        case .status(let status, _):
            let reason = status.reason.map { " \($0)" } ?? ""
            return "kubernetes API: \(status.code)\(reason): \(status.message ?? "")"
        case .transport(let message):
            return "kubernetes API unreachable: \(message)"
        case .invalidResponse(let message):
            return "kubernetes API: invalid response: \(message)"
        case .cancelled:
            return "kubernetes API request cancelled"
        }
    }
}

extension Status {
    /// Reads a `Status` object as the API server writes it; nil when `json` is not one.
    public init?(kubeJSON json: JSON) {
        guard json["kind"]?.stringValue == "Status" else { return nil }
        var details: Details?
        if let d = json["details"], d.isObject {
            details = Details(
                name: d["name"]?.stringValue, group: d["group"]?.stringValue, kind: d["kind"]?.stringValue,
                uid: d["uid"]?.stringValue,
                causes: (d["causes"]?.arrayValue ?? []).map {
                    Cause(reason: $0["reason"]?.stringValue ?? "", message: $0["message"]?.stringValue ?? "",
                          field: $0["field"]?.stringValue ?? "")
                })
        }
        self.init(status: json["status"]?.stringValue ?? "Failure", message: json["message"]?.stringValue,
                  reason: json["reason"]?.stringValue, details: details, code: json["code"]?.intValue ?? 0)
    }
}
