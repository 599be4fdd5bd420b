#if canImport(Darwin)
import Darwin
#elseif canImport(Glibc)
import Glibc
#endif
import IsthmusKubeTypes
import IsthmusRequestInfo

/// Everything known about one request when it ends: the source of its access
/// log line, its audit line and its metrics. Filled by ``ProxyHandler``;
/// turned into lines here, without I/O, so the formats are unit-tested.
/// Never holds a header value other than the `User-Agent`.
struct RequestRecord: Sendable {
    /// Wall-clock start, seconds since 1970.
    var startTime: Double
    var remoteAddress: String
    var method: String
    /// The request target as received (`/path?query`); Kubernetes clients put no credentials in it.
    var target: String
    /// `HTTP/1.1` or `HTTP/2.0`.
    var protocolName: String
    var userAgent: String
    /// `/healthz` and `/readyz`: access-logged, not audited.
    var isProbe = false
    /// The authenticated peer's cluster UUID; empty before (or without) authentication.
    var peer = ""
    /// The parsed request (nil if the target could not be parsed).
    var attributes: RequestAttributes?
    /// Whether the policy admitted it (and it went upstream).
    var admitted = false
    /// Why it was allowed (the policy rule) or refused.
    var reason = ""
    /// The status sent to the client; 499 when the client left before any.
    var status = 0
    /// Response body bytes sent to the client.
    var bytes = 0
    /// Why the upstream could not answer, when it could not.
    var upstreamError: String?

    /// The access log line (JSON, no newline).
    func accessLogLine(duration: Double) -> [UInt8] {
        var members: [(String, JSON)] = [
            ("time", .string(RequestRecord.timestamp(startTime))),
            ("remote", .string(remoteAddress)),
            ("peer", .string(peer)),
            ("method", .string(method)),
            ("path", .string(target)),
            ("status", .int(status)),
            ("bytes", .int(bytes)),
            ("duration", .number(RequestRecord.seconds(duration))),
            ("protocol", .string(protocolName)),
            ("userAgent", .string(userAgent)),
        ]
        if let upstreamError { members.append(("error", .string(upstreamError))) }
        return JSON.object(members).bytes()
    }

    /// The audit line (JSON, no newline): who read what, and the decision.
    func auditLogLine(duration: Double) -> [UInt8] {
        let attributes = self.attributes
        var members: [(String, JSON)] = [
            ("time", .string(RequestRecord.timestamp(startTime))),
            ("peer", .string(peer)),
            ("verb", .string(attributes?.verb.rawValue ?? method.lowercased())),
            ("group", .string(attributes?.apiGroup ?? "")),
            ("resource", .string(attributes?.resource ?? "")),
            ("subresource", .string(attributes?.subresource ?? "")),
            ("namespace", .string(attributes?.namespace ?? "")),
            ("name", .string(attributes?.name ?? "")),
        ]
        if let attributes, !attributes.isResourceRequest { members.append(("path", .string(attributes.path))) }
        members += [
            ("decision", .string(admitted ? "allow" : "deny")),
            ("reason", .string(reason)),
            ("status", .int(status)),
            ("bytes", .int(bytes)),
            ("duration", .number(RequestRecord.seconds(duration))),
        ]
        if let upstreamError { members.append(("error", .string(upstreamError))) }
        return JSON.object(members).bytes()
    }

    /// The `requests_total` labels: peer only once authenticated, resource
    /// only once admitted (a refused request could name anything).
    var metricLabels: [String] {
        let resource = admitted ? (attributes.map { $0.isResourceRequest ? $0.resource : "" } ?? "") : ""
        return [peer, ProxyMetrics.verbLabel(attributes?.verb.rawValue, method: method), resource, String(status)]
    }

    /// RFC 3339 in UTC with milliseconds, as `2026-11-25T19:35:05.123Z`.
    static func timestamp(_ seconds: Double) -> String {
        var whole = time_t(seconds.rounded(.down))
        let millis = min(999, Int((seconds - Double(whole)) * 1000))
        var parts = tm()
        gmtime_r(&whole, &parts)
        func pad(_ value: Int32, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
            + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)).\(pad(Int32(millis), 3))Z"
    }

    /// Seconds with microsecond resolution, as a JSON number.
    static func seconds(_ value: Double) -> String {
        let micros = Int((max(0, value) * 1_000_000).rounded())
        let fraction = String(micros % 1_000_000)
        return "\(micros / 1_000_000).\(String(repeating: "0", count: 6 - fraction.count))\(fraction)"
    }
}
