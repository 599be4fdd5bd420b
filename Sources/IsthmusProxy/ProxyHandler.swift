import Foundation
import IsthmusAdmission
import IsthmusHTTP
import IsthmusKubeTypes
import IsthmusPolicy
import IsthmusRequestInfo
import NIOCore
import NIOHTTP1

/// Response header fields that describe one hop (RFC 9110 §7.6.1), not the
/// response: never relayed, plus any field the upstream's `Connection` names.
enum HopByHop {
    static let names: Set<String> = [
        "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "trailer",
        "proxy-authenticate", "proxy-authorization",
    ]

    static func relayed(_ headers: HTTPHeaders) -> HTTPHeaders {
        var named: Set<String> = []
        for value in headers[canonicalForm: "connection"] { named.insert(value.lowercased()) }
        var out = HTTPHeaders()
        for (name, value) in headers {
            let lower = name.lowercasedIfNeeded()
            if names.contains(lower) || named.contains(lower) { continue }
            out.add(name: name, value: value)
        }
        return out
    }
}

extension RequestRejection {
    /// The answer to the client, in kube-apiserver's `Status` shape.
    var status: Status {
        let details = self.details.map {
            Status.Details(name: $0.name.isEmpty ? nil : $0.name, group: $0.group.isEmpty ? nil : $0.group, kind: $0.kind)
        }
        return Status(message: message, reason: reason, details: details, code: code)
    }
}

/// One HTTP/1.1 connection or one HTTP/2 stream of a client: admits each
/// request (``AdmissionPipeline``), relays admitted ones to the upstream and
/// streams the answer back. A thin I/O shell: the decisions are in
/// ``RelayStateMachine``.
final class ProxyHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let services: ProxyServices
    private let version: HTTPProtocolVersion
    private var machine = RelayStateMachine()
    private var context: ChannelHandlerContext?
    private var upstream: UpstreamResponseHandler?
    /// The request's upstream stream and the handler the request put on it
    /// (removed before a keep-alive connection goes back to the pool).
    private var upstreamStream: UpstreamStream?
    private var upstreamStreamHandler: (any RemovableChannelHandler)?
    /// The upstream response did not ask to close its connection: once the
    /// response has ended, a keep-alive connection can serve the next request.
    private var upstreamReusable = false
    /// What went upstream, kept until the response head so a request whose
    /// reused keep-alive connection turned out closed is sent again.
    private var pendingUpstreamHead: HTTPRequestHead?
    /// Times this request was sent again. Each resend used up a dead idle
    /// connection; the bound only guarantees an end (a resend normally lands
    /// on a fresh connection, which is never resent from).
    private var resends = 0
    private var keepAlive = true
    /// A response to HEAD carries the headers of a body but never the body.
    private var isHead = false
    private var isWatch = false
    /// A JSON watch response: one event per line, so the relay knows when it
    /// stands between two events (Protobuf frames are not tracked).
    private var watchEventsAreLines = false
    /// The last body byte relayed ended an event (or none was relayed).
    private var betweenWatchEvents = true
    /// The client-certificate check's verdict for this connection, once asked.
    private var clientCertificateAdmitted: Bool?
    /// Body bytes relayed and not yet added to ``ProxyStatistics/bytesRelayed``.
    private var unreportedBytes = 0
    private var headerTimeout: Scheduled<Void>?
    private var watchDeadline: Scheduled<Void>?
    /// The request in flight: logged and counted once, when it ends.
    private var record: RequestRecord?
    private var recordStart = NIODeadline.now()
    /// When the upstream stream was asked for, for the upstream latency histogram.
    private var upstreamAskedAt: NIODeadline?
    private var countedAsOpenWatch = false
    private var cachedRemoteAddress: String?
    /// The watch in flight, kept so a reload can decide it again (nil for other requests).
    private var admittedWatch: AdmittedRequest?
    /// Whether ``watchDeadline`` is the token's expiry rather than the watch limit.
    private var watchDeadlineIsTokenExpiry = false
    /// The peer whose open watch this request counts in ``ProxyServices/watchBudget``, until it ends.
    private var watchBudgetPeer: String?
    /// The peer whose slot in ``ProxyServices/fairness`` this short request
    /// holds (or waits for, with ``queuedTicket``), until it ends.
    private var slotPeer: String?
    private var queuedTicket: PeerFairQueue<QueuedShortRequest>.Ticket?
    /// What starts the request once its slot is granted. Boxed: it is set only
    /// while a short request waits, and inline it would add 321 bytes to every
    /// handler, each open watch's included (heaptrack: about 1,350 → 1,050 bytes).
    private var queuedStart: QueuedStart?
    private var queueTimer: Scheduled<Void>?
    /// A 429 waiting for ``ProxyServices/refusalDelay``; cancelled if the client leaves first.
    private var refusalTimer: Scheduled<Void>?
    /// Numbers this handler's requests, so a late grant is recognised.
    private var requestSerial: UInt64 = 0

    init(services: ProxyServices, version: HTTPProtocolVersion) {
        self.services = services
        self.version = version
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if let active = services.relays[ObjectIdentifier(context.eventLoop)]?.value {
            active.handlers[ObjectIdentifier(self)] = self
            if active.draining { drain() }
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        completeRequest()
        services.relays[ObjectIdentifier(context.eventLoop)]?.value.handlers[ObjectIdentifier(self)] = nil
        self.context = nil
    }

    /// The proxy is shutting down: a watch ends cleanly now (client-go
    /// re-watches, elsewhere); a short request finishes; an idle HTTP/1.1
    /// connection closes, and a busy one closes after its response.
    func drain() {
        guard let context else { return }
        keepAlive = false
        switch machine.state {
        case .idle:
            if version == .http1_1 { context.close(promise: nil) }
        case .streaming where isWatch:
            if machine.watchDeadline() == .endResponse { finishResponse() }
        case .connecting, .awaitingHead, .streaming, .closed:
            break
        }
    }

    // MARK: Client side

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head(let head) = unwrapInboundIn(data) else {
            // Bodies are refused at admission; `.end` needs nothing.
            return
        }
        guard machine.isIdle else {
            // Cannot happen on HTTP/1.1 (NIO's pipelining handler holds the next
            // request until this response ends) nor on an HTTP/2 stream (one
            // request each); if it does, the connection is no longer trustworthy.
            context.close(promise: nil)
            return
        }
        keepAlive = version == .http2 || head.isKeepAlive
        isHead = head.method == .HEAD
        resends = 0
        let now = Date().timeIntervalSince1970
        recordStart = .now()
        var record = RequestRecord(startTime: now, remoteAddress: remoteAddress(context), method: head.method.rawValue,
                                   target: head.uri, protocolName: version == .http2 ? "HTTP/2.0" : "HTTP/1.1",
                                   userAgent: head.headers.first(name: "user-agent") ?? "")
        if let endpoint = LocalEndpoint.match(head.uri, metrics: false) {
            record.isProbe = true
            self.record = record
            let answer = endpoint.answer(services)
            respond(code: HTTPResponseStatus(statusCode: answer.code), contentType: answer.contentType, body: answer.body)
            return
        }
        if let check = services.clientCertificateCheck, !ClientCertificateCheck.isProbe(head.uri) {
            if clientCertificateAdmitted == nil {
                clientCertificateAdmitted = check.admits(certificateDER: HTTPServer.clientCertificateDER(of: context.channel, version: version))
            }
            guard clientCertificateAdmitted == true else {
                respond(status: ClientCertificateCheck.refusal)
                return
            }
        }
        var headers: [(name: String, value: String)] = []
        headers.reserveCapacity(head.headers.count)
        for (name, value) in head.headers { headers.append((name, value)) }
        let request = ProxyRequestHead(method: head.method.rawValue, target: head.uri, headers: headers)
        let admission = services.admission.withLockedValue { $0 }
        let admitted: AdmittedRequest
        do {
            admitted = try admission.admit(request, now: Int64(now))
        } catch {
            record.attributes = error.attributes ?? (try? RequestAttributes(method: head.method.rawValue, target: head.uri))
            record.peer = error.authenticatedPeer ?? ""
            record.reason = error.logReason
            self.record = record
            services.operations.metrics.denials.increment([error.metricLabel])
            respond(status: error.status)
            return
        }
        record.peer = admitted.peer
        record.attributes = admitted.attributes
        record.admitted = true
        record.reason = admitted.reason
        self.record = record
        guard let token = services.upstream.token.current else {
            respond(upstreamFailure: UpstreamFailure(.noCredentials, "no ServiceAccount token"))
            return
        }
        isWatch = admitted.attributes.verb == .watch
        watchEventsAreLines = false
        if isWatch {
            if !services.rateLimitsOff, let retryAfter = services.fairness.withLockedValue({
                $0.rates.take(peer: admitted.peer, now: NIODeadline.now().uptimeNanoseconds)
            }) {
                throttle(.rateLimit, peer: admitted.peer, retryAfter: retryAfter)
                return
            }
            if let refusal = services.watchBudget.withLockedValue({ $0.acquire(peer: admitted.peer) }) {
                services.operations.metrics.watchesRefused.increment([admitted.peer, refusal.rawValue])
                self.record?.reason = "watch refused: the \(refusal == .peer ? "per-peer" : "total") watch limit is reached"
                respond(status: Status.tooManyRequests(
                    "too many open watches \(refusal == .peer ? "for this peer" : "through this proxy"), please try again later"))
                return
            }
            watchBudgetPeer = admitted.peer
            // Kept for the watch's lifetime: only what deciding it again needs (not the forwarded headers).
            var kept = admitted
            kept.forwardHeaders = []
            admittedWatch = kept
        }
        machine.admitted()
        let upstreamHead = HTTPRequestHead(version: .http1_1, method: head.method, uri: admitted.forwardTarget,
                                           headers: upstreamHeaders(admitted.forwardHeaders, token: token))
        if !isWatch {
            requestSerial &+= 1
            let waiter = QueuedShortRequest(handler: NIOLoopBound(self, eventLoop: context.eventLoop), serial: requestSerial)
            let now = NIODeadline.now().uptimeNanoseconds
            switch services.fairness.withLockedValue({ $0.start(peer: admitted.peer, now: now, waiter: waiter) }) {
            case .go:
                slotPeer = admitted.peer
            case .wait(let ticket):
                slotPeer = admitted.peer
                queuedTicket = ticket
                queuedStart = QueuedStart(admitted: admitted, token: token, head: upstreamHead)
                let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
                let serial = requestSerial
                queueTimer = context.eventLoop.scheduleTask(in: services.maxQueueWait) {
                    bound.value.queueWaitEnded(serial)
                }
                return
            case .refuse(let reason, let retryAfter):
                _ = machine.upstreamFailed()
                throttle(reason, peer: admitted.peer, retryAfter: retryAfter)
                return
            }
        }
        start(admitted, token: token, upstreamHead: upstreamHead)
    }

    private func start(_ admitted: AdmittedRequest, token: String, upstreamHead: HTTPRequestHead) {
        if admitted.checkSecretFirst {
            lookUpSecret(admitted, token: token, then: upstreamHead)
        } else {
            forward(upstreamHead)
        }
    }

    // MARK: Fair queuing (PeerFairQueue)

    /// From ``QueuedShortRequest/resume()``: the queued request is in flight now.
    func slotGranted(_ serial: UInt64) {
        // A request that ended meanwhile released the slot itself.
        guard serial == requestSerial, queuedTicket != nil, let pending = queuedStart else { return }
        queuedTicket = nil
        queuedStart = nil
        queueTimer?.cancel()
        queueTimer = nil
        start(pending.admitted, token: pending.token, upstreamHead: pending.head)
    }

    private func queueWaitEnded(_ serial: UInt64) {
        guard serial == requestSerial, let ticket = queuedTicket, let peer = slotPeer else { return }
        queueTimer = nil
        let now = NIODeadline.now().uptimeNanoseconds
        // Not in the queue any more: granted, and the grant is on its way here.
        guard services.fairness.withLockedValue({ $0.queue.cancel(ticket, peer: peer, now: now) }) else { return }
        queuedTicket = nil
        queuedStart = nil
        slotPeer = nil
        guard machine.upstreamFailed() == .respond else { return }
        throttle(.queueTimeout, peer: peer, retryAfter: 1)
    }

    /// Gives back this request's slot, or its place in the queue, and starts
    /// whatever queued requests may go now.
    private func releaseSlot() {
        guard let peer = slotPeer else { return }
        slotPeer = nil
        let ticket = queuedTicket
        queuedTicket = nil
        queuedStart = nil
        queueTimer?.cancel()
        queueTimer = nil
        let now = NIODeadline.now().uptimeNanoseconds
        let next = services.fairness.withLockedValue { fairness -> [QueuedShortRequest] in
            if let ticket, fairness.queue.cancel(ticket, peer: peer, now: now) { return [] }
            return fairness.queue.release(peer: peer, now: now)
        }
        for waiter in next { waiter.resume() }
    }

    /// A 429 for an admitted request the limits hold back; client-go waits `Retry-After` and retries.
    /// A refusal that did not wait in the queue is sent after ``ShortRequestLimits/refusalDelay``:
    /// a client that ignores `Retry-After` and asks again at once would otherwise turn the
    /// proxy's CPU into a stream of 429s, taken from every other peer.
    private func throttle(_ reason: ThrottleReason, peer: String, retryAfter: Int) {
        services.operations.metrics.throttled.increment([peer, reason.rawValue])
        record?.reason = "throttled: \(reason.rawValue.replacingOccurrences(of: "_", with: " "))"
        let (head, body) = KubeResponse.status(Status.tooManyRequests(reason.message), retryAfterSeconds: retryAfter)
        guard reason != .queueTimeout, services.refusalDelay > .zero, let context else {
            write(head: head, body: body)
            return
        }
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        refusalTimer = context.eventLoop.scheduleTask(in: services.refusalDelay) {
            let handler = bound.value
            handler.refusalTimer = nil
            handler.write(head: head, body: body)
        }
    }

    private func upstreamHeaders(_ forwarded: [(name: String, value: String)], token: String) -> HTTPHeaders {
        var headers = HTTPHeaders()
        headers.add(name: "host", value: services.upstream.authority)
        for header in forwarded { headers.add(name: header.name, value: header.value) }
        headers.add(name: "authorization", value: "Bearer " + token)
        return headers
    }

    private func forward(_ upstreamHead: HTTPRequestHead) {
        guard let context else { return }
        pendingUpstreamHead = upstreamHead
        upstreamAskedAt = .now()
        services.upstream.openStream(on: context.eventLoop, lane: isWatch ? .watch : .short)
            .assumeIsolated().whenComplete { result in
                self.upstreamOpened(result, head: upstreamHead)
            }
    }

    // MARK: Secrets checked before a get (ProtectedObjects.checkSecretFirst)

    /// Looks the Secret up through a list narrowed to its name, and forwards
    /// the get only when the Secret exists and ``ProtectedObjects`` lets it
    /// out. A missing one is answered 404 here: forwarding would serve one
    /// created in between without a check.
    private func lookUpSecret(_ admitted: AdmittedRequest, token: String, then upstreamHead: HTTPRequestHead) {
        guard let context else { return }
        let attributes = admitted.attributes
        let target = ProtectedObjects.secretLookupTarget(namespace: attributes.namespace, name: attributes.name)
        let lookupHead = HTTPRequestHead(version: .http1_1, method: .GET, uri: target,
                                         headers: upstreamHeaders([("accept", "application/json")], token: token))
        services.upstream.openStream(on: context.eventLoop, lane: .short).assumeIsolated().whenComplete { result in
            switch result {
            case .failure(let error):
                if self.machine.upstreamFailed() == .respond {
                    self.respond(upstreamFailure: error as? UpstreamFailure ?? UpstreamFailure(.connectFailed, "\(error)"))
                }
            case .success(let stream):
                guard self.machine.state == .connecting else {
                    stream.finish(reusable: false)
                    return
                }
                // The lookup's stream is the request's upstream stream until it answers,
                // so a client that leaves, a revocation or the header timeout closes it.
                let handler = SecretLookupHandler { outcome, handler in
                    self.headerTimeout?.cancel()
                    self.headerTimeout = nil
                    let reusable = if case .answered(_, _, keepAlive: true) = outcome { true } else { false }
                    self.upstreamStream = nil
                    self.upstreamStreamHandler = nil
                    stream.finish(reusable: reusable, removing: handler)
                    if case .closedBeforeAnswer = outcome, self.mayResend(from: stream) {
                        // A keep-alive connection the API server had closed: again, on another one.
                        self.lookUpSecret(admitted, token: token, then: upstreamHead)
                        return
                    }
                    self.secretLookedUp(outcome, admitted: admitted, then: upstreamHead)
                }
                _ = self.send(lookupHead, on: stream, with: handler)
            }
        }
    }

    private func secretLookedUp(_ outcome: SecretLookupHandler.Outcome, admitted: AdmittedRequest,
                                then upstreamHead: HTTPRequestHead) {
        guard machine.state == .connecting else { return }
        let attributes = admitted.attributes
        let protected = services.admission.withLockedValue { $0.protected }
        switch SecretLookupHandler.verdict(outcome, name: attributes.name, protected: protected) {
        case .serve:
            forward(upstreamHead)
        case .missing:
            _ = machine.upstreamFailed()
            record?.reason = "the Secret does not exist"
            respond(status: Status(message: "secrets \"\(attributes.name)\" not found", reason: "NotFound",
                                   details: Status.Details(name: attributes.name, kind: "secrets"), code: 404))
        case .refuse(let reason):
            _ = machine.upstreamFailed()
            let rejection = RequestRejection.protected(attributes, peer: admitted.peer, reason,
                                                       isthmusNamespace: protected.isthmusNamespace)
            record?.admitted = false
            record?.reason = rejection.logReason
            services.operations.metrics.denials.increment([rejection.metricLabel])
            respond(status: rejection.status)
        case .failed(let detail):
            if machine.upstreamFailed() == .respond {
                respond(upstreamFailure: UpstreamFailure(.secretLookupFailed, detail))
            }
        }
    }

    // MARK: Watches decided again

    /// From ``ProxyServices/install(_:)`` on this loop: the peers or the
    /// policy changed, so an open watch is decided again and ends if its
    /// access did.
    func redecideWatch(_ admission: AdmissionPipeline, now: Int64) {
        guard let watch = admittedWatch, let revocation = admission.redecide(watch, now: now) else { return }
        revoke(watch, revocation)
    }

    private func revoke(_ watch: AdmittedRequest, _ revocation: WatchRevocation) {
        admittedWatch = nil
        services.operations.metrics.watchesRevoked.increment([revocation.rawValue])
        record?.reason = "watch ended: access revoked (\(revocation.rawValue))"
        switch machine.state {
        case .streaming:
            // A clean end: client-go re-lists, and hears the 401 or 403 itself.
            if machine.watchDeadline() == .endResponse { finishResponse() }
        case .connecting, .awaitingHead:
            guard machine.upstreamFailed() == .respond else { return }
            cancelTimers()
            closeUpstream()
            switch revocation {
            case .tokenExpired, .peerRemoved, .keyRevoked:
                respond(status: RequestRejection.unauthorized(.missingCredentials).status)
            case .policy, .protected:
                respond(status: RequestRejection.forbidden(watch.attributes, peer: watch.peer).status)
            }
        case .idle, .closed:
            break
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if machine.clientWritabilityChanged(writable: context.channel.isWritable) == .resumeReading {
            upstream?.resumeReading()
        }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        // The client closed its connection or reset its stream: cancel upstream now.
        if machine.clientClosed() == .closeUpstream {
            closeUpstream()
            services.statistics.withLockedValue { $0.upstreamCancelledByClient += 1 }
        }
        // Also a Secret lookup still in flight (state `.connecting`); otherwise a no-op.
        closeUpstream()
        admittedWatch = nil
        cancelTimers()
        refusalTimer?.cancel()
        refusalTimer = nil
        completeRequest()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    // MARK: Upstream side

    private func upstreamOpened(_ result: Result<UpstreamStream, any Error>, head: HTTPRequestHead) {
        switch result {
        case .failure(let error):
            if machine.upstreamFailed() == .respond {
                respond(upstreamFailure: error as? UpstreamFailure ?? UpstreamFailure(.connectFailed, "\(error)"))
            }
        case .success(let stream):
            guard machine.upstreamOpened() == .sendRequest else {
                stream.finish(reusable: false)
                return
            }
            let handler = UpstreamResponseHandler(relay: self)
            if send(head, on: stream, with: handler) { upstream = handler }
        }
    }

    /// Puts `handler` on a fresh upstream stream, writes the request there and
    /// bounds the wait for its answer (``responseHeaderTimedOut()``). False, and
    /// the client answered, when the handler could not be added.
    private func send(_ head: HTTPRequestHead, on stream: UpstreamStream,
                      with handler: any ChannelHandler & RemovableChannelHandler) -> Bool {
        do {
            try stream.channel.pipeline.syncOperations.addHandler(handler)
        } catch {
            stream.finish(reusable: false)
            if machine.upstreamFailed() == .respond {
                respond(upstreamFailure: UpstreamFailure(.closedBeforeResponse, "\(error)"))
            }
            return false
        }
        upstreamStream = stream
        upstreamStreamHandler = handler
        upstreamReusable = false
        var head = head
        if stream.closesAfterRequest { head.headers.add(name: "connection", value: "close") }
        stream.channel.write(HTTPClientRequestPart.head(head), promise: nil)
        stream.channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
        if let loop = context?.eventLoop {
            let bound = NIOLoopBound(self, eventLoop: loop)
            headerTimeout = loop.scheduleTask(in: services.responseHeaderTimeout) {
                bound.value.responseHeaderTimedOut()
            }
        }
        return true
    }

    private func responseHeaderTimedOut() {
        headerTimeout = nil
        if machine.upstreamFailed() == .respond {
            closeUpstream()
            respond(upstreamFailure: UpstreamFailure(.responseHeaderTimeout))
        }
    }

    /// From ``UpstreamResponseHandler``, on this loop.
    func upstreamRead(_ part: HTTPClientResponsePart, from source: UpstreamResponseHandler) {
        guard source === upstream, let context else { return }
        switch part {
        case .head(let head):
            headerTimeout?.cancel()
            headerTimeout = nil
            pendingUpstreamHead = nil
            upstreamReusable = head.isKeepAlive
            if let asked = upstreamAskedAt {
                upstreamAskedAt = nil
                services.operations.metrics.upstreamResponseSeconds(
                    [ProxyMetrics.verbLabel(record?.attributes?.verb.rawValue, method: record?.method ?? "GET")]
                ).recordNanoseconds((NIODeadline.now() - asked).nanoseconds)
            }
            if head.status == .unauthorized {
                // The API server refused the proxy's own token: relaying the 401
                // would tell the peer its token is bad, and client-go would re-auth in vain.
                if machine.upstreamFailed() == .respond {
                    closeUpstream()
                    respond(upstreamFailure: UpstreamFailure(.credentialsRejected, "the API server answered 401 to the proxy's ServiceAccount token"))
                }
                return
            }
            guard machine.upstreamHead(clientWritable: context.channel.isWritable) == .forward else { return }
            record?.status = Int(head.status.code)
            var headers = HopByHop.relayed(head.headers)
            if version == .http1_1 && !keepAlive { headers.add(name: "connection", value: "close") }
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: head.status, headers: headers))),
                          promise: nil)
            if isWatch && head.status == .ok {
                watchEventsAreLines = head.headers.first(name: "content-type")?.hasPrefix("application/json") ?? false
                betweenWatchEvents = true
                services.operations.metrics.openWatches.add([], 1)
                countedAsOpenWatch = true
                let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
                var limit = services.watchLimit.duration(unit: Double.random(in: 0..<1))
                // A watch ends when its token stops being accepted, as a new request would be refused.
                if let watch = admittedWatch {
                    let remaining = Duration.seconds(max(0, Double(watch.tokenValidUntil) - Date().timeIntervalSince1970))
                    if remaining < limit {
                        limit = remaining
                        watchDeadlineIsTokenExpiry = true
                    }
                }
                watchDeadline = context.eventLoop.scheduleTask(in: TimeAmount(limit)) {
                    bound.value.watchLimitReached()
                }
            }
        case .body(let buffer):
            guard machine.upstreamBody() == .forward else { return }
            unreportedBytes += buffer.readableBytes
            record?.bytes += buffer.readableBytes
            if watchEventsAreLines, let last = buffer.readableBytesView.last { betweenWatchEvents = last == UInt8(ascii: "\n") }
            context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        case .end:
            guard machine.upstreamEnd() == .forwardEnd else { return }
            finishResponse(upstreamEnded: true)
        }
    }

    /// Everything the upstream delivered in one read goes out in one flush.
    func upstreamReadComplete(from source: UpstreamResponseHandler) {
        guard source === upstream else { return }
        context?.flush()
    }

    func upstreamWantsRead(from source: UpstreamResponseHandler) -> Bool {
        guard source === upstream else { return true }
        if machine.upstreamWantsRead() == .read { return true }
        let bytes = unreportedBytes
        unreportedBytes = 0
        services.statistics.withLockedValue {
            $0.upstreamReadsHeld += 1
            $0.bytesRelayed += bytes
        }
        return false
    }

    func upstreamClosed(from source: UpstreamResponseHandler) {
        guard source === upstream else { return }
        let closedStream = upstreamStream
        detachUpstream()
        switch machine.upstreamClosed(betweenWatchEvents: watchEventsAreLines && betweenWatchEvents) {
        case .none: break
        case .endResponse:
            // The API server's connection was lost (or it reset the stream) under an
            // open watch: ended like a watch that timed out, the client re-watches.
            services.statistics.withLockedValue { $0.watchesEndedByUpstreamLoss += 1 }
            finishResponse()
        case .respondBadGateway:
            cancelTimers()
            if let stream = closedStream, let head = pendingUpstreamHead, mayResend(from: stream) {
                // The API server closed an idle keep-alive connection as the request
                // went out (no answer began): a read is safe to send again.
                machine.admitted()
                forward(head)
                return
            }
            respond(upstreamFailure: UpstreamFailure(.closedBeforeResponse))
        case .closeClient:
            cancelTimers()
            guard let context else { return }
            // What the upstream sent before it went away still reaches the client
            // (closing now would drop unflushed writes): an empty body part is
            // framed as nothing, and its promise completes after everything before it.
            // A client that reads nothing more gets closed anyway, later.
            completeRequest()
            let loop = context.eventLoop
            let fallback = loop.assumeIsolated().scheduleTask(in: .seconds(10)) { context.close(promise: nil) }
            context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(ByteBuffer())))).assumeIsolated().whenComplete { _ in
                fallback.cancel()
                context.close(promise: nil)
            }
        }
    }

    private func watchLimitReached() {
        watchDeadline = nil
        if watchDeadlineIsTokenExpiry, let watch = admittedWatch {
            revoke(watch, .tokenExpired)
            return
        }
        guard machine.watchDeadline() == .endResponse else { return }
        services.statistics.withLockedValue { $0.watchesEndedAtLimit += 1 }
        finishResponse()
    }

    /// Ends the client's response and lets go of the upstream stream: an
    /// HTTP/2 stream that ended closes itself; one cut short is reset; a
    /// keep-alive connection whose response ended goes back to the pool.
    private func finishResponse(upstreamEnded: Bool = false) {
        cancelTimers()
        releaseUpstream(keepConnection: upstreamEnded)
        completeRequest()
        guard let context else { return }
        if version == .http1_1 && !keepAlive {
            context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        } else {
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }
    }

    /// Whether a request whose `stream` closed before any answer goes out
    /// again: only from a reused keep-alive connection (the API server may have
    /// closed it while idle), as Go's and nginx's clients do for reads.
    private func mayResend(from stream: UpstreamStream) -> Bool {
        guard stream.isReused, resends <= services.upstream.configuration.limits.maxIdleConnections else { return false }
        resends += 1
        services.statistics.withLockedValue { $0.upstreamRequestsResent += 1 }
        return true
    }

    private func closeUpstream() {
        releaseUpstream(keepConnection: false)
    }

    /// Lets go of the upstream stream. `keepConnection`: the response ended,
    /// so a keep-alive connection is kept for the next request unless the
    /// response asked to close it; otherwise it is closed (or reset).
    private func releaseUpstream(keepConnection: Bool) {
        let stream = upstreamStream
        let handler = upstreamStreamHandler
        let reusable = keepConnection && upstreamReusable
        detachUpstream()
        stream?.finish(reusable: reusable, removing: handler)
    }

    private func detachUpstream() {
        if unreportedBytes > 0 {
            let bytes = unreportedBytes
            unreportedBytes = 0
            services.statistics.withLockedValue { $0.bytesRelayed += bytes }
        }
        upstream?.detach()
        upstream = nil
        upstreamStream = nil
        upstreamStreamHandler = nil
    }

    private func cancelTimers() {
        headerTimeout?.cancel()
        headerTimeout = nil
        watchDeadline?.cancel()
        watchDeadline = nil
    }

    // MARK: Logs and metrics

    /// Logs and counts the request in flight, once; a request whose client left
    /// before any response head counts as 499 (nginx's "client closed request").
    private func completeRequest() {
        releaseSlot()
        admittedWatch = nil
        pendingUpstreamHead = nil
        watchDeadlineIsTokenExpiry = false
        if let peer = watchBudgetPeer {
            watchBudgetPeer = nil
            services.watchBudget.withLockedValue { $0.release(peer: peer) }
        }
        guard var record else { return }
        self.record = nil
        if record.status == 0 { record.status = 499 }
        if countedAsOpenWatch {
            countedAsOpenWatch = false
            services.operations.metrics.openWatches.add([], -1)
        }
        services.operations.finished(record, duration: Double((NIODeadline.now() - recordStart).nanoseconds) / 1e9)
    }

    private func remoteAddress(_ context: ChannelHandlerContext) -> String {
        // Formatted once per connection (HTTP/1.1) or stream, not per request.
        if let cachedRemoteAddress { return cachedRemoteAddress }
        let formatted = formatRemoteAddress(context)
        cachedRemoteAddress = formatted
        return formatted
    }

    private func formatRemoteAddress(_ context: ChannelHandlerContext) -> String {
        // An HTTP/2 stream's address is its connection's.
        let address = version == .http2 ? context.channel.parent?.remoteAddress : context.channel.remoteAddress
        guard let address, let ip = address.ipAddress, let port = address.port else { return "" }
        return ip.contains(":") ? "[\(ip)]:\(port)" : "\(ip):\(port)"
    }

    // MARK: Local answers

    private func respond(upstreamFailure failure: UpstreamFailure) {
        if failure.kind == .poolExhausted, isWatch, let peer = record?.peer {
            services.operations.metrics.watchesRefused.increment([peer, "upstream_pool"])
        }
        record?.upstreamError = failure.description
        services.operations.metrics.upstreamFailures.increment(["\(failure.kind)"])
        respond(status: failure.status)
    }

    private func respond(status: Status) {
        let (head, body) = KubeResponse.status(status, priorityAndFairness: status.code != 401)
        write(head: head, body: body)
    }

    private func respond(code: HTTPResponseStatus, contentType: String, body: [UInt8]) {
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: contentType)
        headers.add(name: "content-length", value: String(body.count))
        write(head: HTTPResponseHead(version: .http1_1, status: code, headers: headers), body: ByteBuffer(bytes: body))
    }

    private func write(head: HTTPResponseHead, body: ByteBuffer) {
        guard let context, machine.state != .closed else { return }
        var head = head
        if version == .http1_1 && !keepAlive { head.headers.replaceOrAdd(name: "connection", value: "close") }
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        if !isHead { context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil) }
        record?.status = Int(head.status.code)
        record?.bytes += isHead ? 0 : body.readableBytes
        completeRequest()
        if version == .http1_1 && !keepAlive {
            context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        } else {
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }
    }
}

@available(*, unavailable)
extension ProxyHandler: Sendable {}

/// The last handler of an upstream stream: hands the response to its
/// ``ProxyHandler`` (same event loop) and holds the stream's reads while the
/// client cannot take more.
final class UpstreamResponseHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = HTTPClientRequestPart
    typealias OutboundOut = HTTPClientRequestPart

    private var relay: ProxyHandler?
    private var context: ChannelHandlerContext?
    private var readHeld = false

    init(relay: ProxyHandler) {
        self.relay = relay
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        relay = nil
    }

    /// The relay is done with this stream; whatever still arrives is dropped.
    func detach() {
        relay = nil
        resumeReading()
    }

    func resumeReading() {
        guard readHeld, let context else { return }
        readHeld = false
        context.read()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        relay?.upstreamRead(unwrapInboundIn(data), from: self)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        relay?.upstreamReadComplete(from: self)
    }

    func read(context: ChannelHandlerContext) {
        if let relay, !relay.upstreamWantsRead(from: self) {
            readHeld = true
            return
        }
        context.read()
    }

    func channelInactive(context: ChannelHandlerContext) {
        relay?.upstreamClosed(from: self)
        relay = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

@available(*, unavailable)
extension UpstreamResponseHandler: Sendable {}

/// A short request admitted and waiting for its slot (``ProxyHandler``'s queue).
private final class QueuedStart {
    let admitted: AdmittedRequest
    let token: String
    let head: HTTPRequestHead

    init(admitted: AdmittedRequest, token: String, head: HTTPRequestHead) {
        self.admitted = admitted
        self.token = token
        self.head = head
    }
}
