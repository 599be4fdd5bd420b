import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1

/// One named readiness check, as kube-apiserver lists them under `/readyz?verbose`.
public struct ReadinessCheck: Sendable, Hashable {
    public var name: String
    /// nil when the check passes.
    public var failure: String?
    /// Shown beside a passing check without failing it: a reload that was
    /// refused leaves the previous, good state serving, and taking every
    /// replica out of rotation over one bad ConfigMap edit would be an outage.
    public var warning: String?

    public init(name: String, failure: String? = nil, warning: String? = nil) {
        self.name = name
        self.failure = failure
        self.warning = warning
    }
}

/// The answer to `/readyz`: ready when every check passes. Pure, so its
/// wording is unit-tested.
public struct ReadinessReport: Sendable, Hashable {
    public var checks: [ReadinessCheck]

    public init(checks: [ReadinessCheck]) {
        self.checks = checks
    }

    public var isReady: Bool { checks.allSatisfy { $0.failure == nil } }

    /// 200 or 503.
    public var statusCode: Int { isReady ? 200 : 503 }

    /// `ok` when ready and not verbose; otherwise every check in
    /// kube-apiserver's words (`[+]upstream ok`, `[-]upstream failed: reason`)
    /// and a verdict line — a failing report always lists them.
    public func body(verbose: Bool) -> String {
        if isReady && !verbose { return "ok" }
        var lines = checks.map { check in
            check.failure.map { "[-]\(check.name) failed: \($0)" }
                ?? "[+]\(check.name) ok" + (check.warning.map { " (warning: \($0))" } ?? "")
        }
        lines.append(isReady ? "readyz check passed" : "readyz check failed")
        return lines.joined(separator: "\n") + "\n"
    }

    /// Whether `/readyz?verbose` (any value, or none) was asked for.
    static func isVerbose(target: String) -> Bool {
        guard let query = target.split(separator: "?", maxSplits: 1).dropFirst().first else { return false }
        return query.split(separator: "&").contains { $0 == "verbose" || $0.hasPrefix("verbose=") }
    }
}

/// What the background probe last learned about the upstream.
struct UpstreamProbeState: Sendable {
    /// When the upstream last answered `/readyz` (or `/version`) with 200.
    var lastSuccess: ContinuousClock.Instant?
    /// Why the most recent probe failed; nil if it succeeded (or none ran yet).
    var lastFailure: String?
    var probes = 0

    /// The `upstream` check: the last probe succeeded, recently enough that a
    /// probe stuck for longer than `staleAfter` counts as a failure.
    func check(now: ContinuousClock.Instant, staleAfter: Duration) -> ReadinessCheck {
        if let lastFailure { return ReadinessCheck(name: "upstream", failure: lastFailure) }
        guard let lastSuccess else { return ReadinessCheck(name: "upstream", failure: "not probed yet") }
        guard now - lastSuccess <= staleAfter else {
            return ReadinessCheck(name: "upstream", failure: "no answer from the API server for \(now - lastSuccess)")
        }
        return ReadinessCheck(name: "upstream")
    }
}

/// Asks the upstream `/readyz` (falling back to `/version` where that is not
/// served) every `interval`, with the proxy's own token, in the background:
/// the request path never waits on it, it only reads the last result.
final class UpstreamProbe: Sendable {
    let upstream: UpstreamClient
    let interval: Duration
    let timeout: Duration
    private let group: any EventLoopGroup
    private let state = NIOLockedValueBox(UpstreamProbeState())
    private let task = NIOLockedValueBox<Task<Void, Never>?>(nil)

    init(upstream: UpstreamClient, group: any EventLoopGroup, interval: Duration, timeout: Duration) {
        self.upstream = upstream
        self.group = group
        self.interval = interval
        self.timeout = timeout
    }

    func start() {
        let repeated = Task.detached { [self] in
            while !Task.isCancelled {
                await probeOnce()
                try? await Task.sleep(for: interval)
            }
        }
        task.withLockedValue { $0 = repeated }
    }

    func stop() {
        task.withLockedValue {
            $0?.cancel()
            $0 = nil
        }
    }

    /// The `upstream` readiness check now. A result older than two periods
    /// plus the probe's timeout is stale.
    var check: ReadinessCheck {
        state.withLockedValue { $0 }.check(now: .now, staleAfter: interval * 2 + timeout)
    }

    var probes: Int { state.withLockedValue { $0.probes } }

    func probeOnce() async {
        var failure: String?
        do {
            var code = try await get("/readyz")
            if code == 404 { code = try await get("/version") }
            switch code {
            case 200: break
            case 401: failure = "the API server rejected the proxy's credentials (401)"
            default: failure = "the API server answered /readyz with \(code)"
            }
        } catch {
            failure = "\(error)"
        }
        state.withLockedValue { state in
            state.probes += 1
            state.lastFailure = failure
            if failure == nil { state.lastSuccess = .now }
        }
    }

    /// One GET through the proxy's upstream pool; the status code.
    private func get(_ path: String) async throws -> Int {
        guard let token = upstream.token.current else { throw UpstreamFailure(.noCredentials, "no ServiceAccount token") }
        let loop = group.next()
        let upstream = self.upstream
        let timeout = TimeAmount(self.timeout)
        return try await loop.flatSubmit {
            upstream.openStream(on: loop, lane: .short).flatMap { stream in
                let promise = loop.makePromise(of: Int.self)
                let handler = ProbeResponseHandler(promise: promise)
                do {
                    try stream.channel.pipeline.syncOperations.addHandler(handler)
                } catch {
                    stream.channel.close(promise: nil)
                    return loop.makeFailedFuture(error)
                }
                var headers = HTTPHeaders()
                headers.add(name: "host", value: upstream.authority)
                headers.add(name: "accept", value: "text/plain, application/json")
                headers.add(name: "user-agent", value: "isthmus-proxy-readiness")
                headers.add(name: "authorization", value: "Bearer " + token)
                if stream.protocol == .http1 { headers.add(name: "connection", value: "close") }
                stream.channel.write(HTTPClientRequestPart.head(HTTPRequestHead(version: .http1_1, method: .GET, uri: path,
                                                                                 headers: headers)), promise: nil)
                stream.channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
                let timer = loop.scheduleTask(in: timeout) {
                    promise.fail(UpstreamFailure(.responseHeaderTimeout, "GET \(path) got no answer in time"))
                }
                promise.futureResult.whenComplete { _ in
                    timer.cancel()
                    stream.channel.close(promise: nil)
                }
                return promise.futureResult
            }
        }.get()
    }
}

/// Completes with the response's status code at its head; the body is not needed.
private final class ProbeResponseHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart
    private let promise: EventLoopPromise<Int>

    init(promise: EventLoopPromise<Int>) {
        self.promise = promise
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head(let head) = unwrapInboundIn(data) { promise.succeed(Int(head.status.code)) }
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise.fail(UpstreamFailure(.closedBeforeResponse, "the API server closed the stream before answering"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        promise.fail(error)
        context.close(promise: nil)
    }
}
