import Foundation
import IsthmusKubeTypes
import NIOCore
import NIOHTTP1

/// Response headers as kube-apiserver sends them: `Audit-Id`, then the
/// handler headers sorted by name, then `Date`, then the length.
public enum KubeResponse {
    public static let flowSchemaUID = "480169e5-e5f5-4bf1-8f0d-5cc601a75a23"
    public static let priorityLevelUID = "173a7136-5430-43e0-b011-04b7894d575b"

    /// Headers for an API response. `priorityAndFairness` is false for a 401
    /// (authentication fails before priority-and-fairness runs).
    public static func headers(contentType: String, contentLength: Int?, priorityAndFairness: Bool = true,
                               extra: [(String, String)] = [], date: Date = Date()) -> HTTPHeaders {
        var headers = HTTPHeaders()
        headers.add(name: "Audit-Id", value: UUID().uuidString.lowercased())
        let cacheControl = extra.first { $0.0.lowercased() == "cache-control" }?.1 ?? "no-cache, private"
        headers.add(name: "Cache-Control", value: cacheControl)
        headers.add(name: "Content-Type", value: contentType)
        for (name, value) in extra where name.lowercased() != "cache-control" { headers.add(name: name, value: value) }
        if priorityAndFairness {
            headers.add(name: "X-Kubernetes-Pf-Flowschema-Uid", value: flowSchemaUID)
            headers.add(name: "X-Kubernetes-Pf-Prioritylevel-Uid", value: priorityLevelUID)
        }
        headers.add(name: "Date", value: httpDate(date))
        if let contentLength { headers.add(name: "Content-Length", value: String(contentLength)) }
        return headers
    }

    /// RFC 7231 IMF-fixdate.
    public static func httpDate(_ date: Date) -> String {
        var t = time_t(date.timeIntervalSince1970)
        var tm = tm()
        gmtime_r(&t, &tm)
        let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        return "\(days[Int(tm.tm_wday)]), \(two(tm.tm_mday)) \(months[Int(tm.tm_mon)]) \(tm.tm_year + 1900) \(two(tm.tm_hour)):\(two(tm.tm_min)):\(two(tm.tm_sec)) GMT"
    }

    /// A Status as a complete response: status line from `code`, compact JSON + `\n`.
    /// A 429 says when to come back (`retryAfterSeconds`), as the API server's does: client-go waits that long.
    public static func status(_ status: Status, priorityAndFairness: Bool = true,
                              retryAfterSeconds: Int = 1) -> (HTTPResponseHead, ByteBuffer) {
        let body = status.body
        let extra: [(String, String)] = status.code == 429 ? [("Retry-After", String(retryAfterSeconds))] : []
        let head = HTTPResponseHead(
            version: .http1_1, status: HTTPResponseStatus(statusCode: status.code),
            headers: headers(contentType: "application/json", contentLength: body.count, priorityAndFairness: priorityAndFairness,
                             extra: extra))
        return (head, ByteBuffer(bytes: body))
    }
}
