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

    /// The access log line (JSON, no newline). Written as bytes, member by
    /// member, without an intermediate `JSON` value: it runs once per request.
    func accessLogLine(duration: Double) -> [UInt8] {
        var line = JSONLine(capacity: 256 + target.utf8.count + userAgent.utf8.count)
        line.member("time") { RequestRecord.writeTimestamp(startTime, into: &$0) }
        line.string("remote", remoteAddress)
        line.string("peer", peer)
        line.string("method", method)
        line.string("path", target)
        line.int("status", status)
        line.int("bytes", bytes)
        line.member("duration") { RequestRecord.writeSeconds(duration, into: &$0) }
        line.string("protocol", protocolName)
        line.string("userAgent", userAgent)
        if let upstreamError { line.string("error", upstreamError) }
        return line.finish()
    }

    /// The audit line (JSON, no newline): who read what, and the decision.
    func auditLogLine(duration: Double) -> [UInt8] {
        let attributes = self.attributes
        var line = JSONLine(capacity: 320)
        line.member("time") { RequestRecord.writeTimestamp(startTime, into: &$0) }
        line.string("peer", peer)
        line.string("verb", attributes?.verb.rawValue ?? method.lowercased())
        line.string("group", attributes?.apiGroup ?? "")
        line.string("resource", attributes?.resource ?? "")
        line.string("subresource", attributes?.subresource ?? "")
        line.string("namespace", attributes?.namespace ?? "")
        line.string("name", attributes?.name ?? "")
        if let attributes, !attributes.isResourceRequest { line.string("path", attributes.path) }
        line.string("decision", admitted ? "allow" : "deny")
        line.string("reason", reason)
        line.int("status", status)
        line.int("bytes", bytes)
        line.member("duration") { RequestRecord.writeSeconds(duration, into: &$0) }
        if let upstreamError { line.string("error", upstreamError) }
        return line.finish()
    }

    /// The `requests_total` labels: peer only once authenticated, resource
    /// only once admitted (a refused request could name anything).
    var metricLabels: [String] {
        let resource = admitted ? (attributes.map { $0.isResourceRequest ? $0.resource : "" } ?? "") : ""
        return [peer, ProxyMetrics.verbLabel(attributes?.verb.rawValue, method: method), resource, String(status)]
    }

    /// RFC 3339 in UTC with milliseconds, as `2026-11-25T19:35:05.123Z`.
    static func timestamp(_ seconds: Double) -> String {
        var out: [UInt8] = []
        writeTimestamp(seconds, into: &out)
        return String(decoding: out.dropFirst().dropLast(), as: UTF8.self)
    }

    /// ``timestamp(_:)`` as a JSON string, appended digit by digit.
    static func writeTimestamp(_ seconds: Double, into out: inout [UInt8]) {
        out.append(0x22)
        RFC3339.appendMilliseconds(seconds, into: &out)
        out.append(0x22)
    }

    /// Seconds with microsecond resolution, as a JSON number.
    static func seconds(_ value: Double) -> String {
        var out: [UInt8] = []
        writeSeconds(value, into: &out)
        return String(decoding: out, as: UTF8.self)
    }

    static func writeSeconds(_ value: Double, into out: inout [UInt8]) {
        let micros = Int((max(0, value) * 1_000_000).rounded())
        ASCIIDigits.append(micros / 1_000_000, width: 1, into: &out)
        out.append(UInt8(ascii: "."))
        ASCIIDigits.append(micros % 1_000_000, width: 6, into: &out)
    }
}

/// A JSON object written member by member into bytes, in the order given.
struct JSONLine {
    private var bytes: [UInt8] = []

    init(capacity: Int) {
        bytes.reserveCapacity(capacity)
        bytes.append(UInt8(ascii: "{"))
    }

    /// A member whose value `write` appends (already valid JSON).
    mutating func member(_ name: StaticString, _ write: (inout [UInt8]) -> Void) {
        if bytes.count > 1 { bytes.append(UInt8(ascii: ",")) }
        bytes.append(0x22)
        name.withUTF8Buffer { bytes.append(contentsOf: $0) }
        bytes.append(0x22)
        bytes.append(UInt8(ascii: ":"))
        write(&bytes)
    }

    mutating func string(_ name: StaticString, _ value: String) {
        member(name) { JSON.writeString(value, into: &$0) }
    }

    mutating func int(_ name: StaticString, _ value: Int) {
        member(name) { $0.append(contentsOf: String(value).utf8) }
    }

    consuming func finish() -> [UInt8] {
        bytes.append(UInt8(ascii: "}"))
        return bytes
    }
}
