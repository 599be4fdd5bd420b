import IsthmusHTTP
import IsthmusKubeTypes
import NIOCore
import NIOHTTP1

/// One HTTP/1.1 connection or one HTTP/2 stream: collects a request, asks the
/// core, writes the answer. A watch hands the channel to a `WatchStream`.
final class APIRequestHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    static let maxBody = 3 * 1024 * 1024

    private let core: APIServerCore
    private let hub: WatchHub
    private let version: HTTPProtocolVersion
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []
    private var tooLarge = false
    private var watch: WatchStream?
    /// Requests this HTTP/1.1 connection has carried (see ``FaultInjection/closeReusedConnections``).
    private var requestsOnConnection = 0
    private var dropped = false
    /// A delayed short response (``FaultInjection/responseDelay``) not sent yet.
    private var delayedResponsePending = false
    /// That delayed response counts in ``APIServerCore/shortInFlight``.
    private var delayedResponseIsShort = false

    init(core: APIServerCore, hub: WatchHub, version: HTTPProtocolVersion) {
        self.core = core
        self.hub = hub
        self.version = version
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !dropped else { return }
        switch unwrapInboundIn(data) {
        case .head(let h):
            if version == .http1_1, requestsOnConnection > 0, core.faults.withLockedValue({ $0.closeReusedConnections }) {
                dropped = true
                core.record(RecordedRequest(method: h.method.rawValue, uri: h.uri, headers: [], http2: false, statusCode: nil))
                context.close(promise: nil)
                return
            }
            requestsOnConnection += 1
            head = h
            body = []
            tooLarge = false
        case .body(var buffer):
            if body.count + buffer.readableBytes > Self.maxBody {
                tooLarge = true
            } else if let bytes = buffer.readBytes(length: buffer.readableBytes) {
                body.append(contentsOf: bytes)
            }
        case .end:
            guard let head else { return }
            self.head = nil
            respond(context: context, head: head)
        }
    }

    private func respond(context: ChannelHandlerContext, head: HTTPRequestHead) {
        var headers: [(String, String)] = []
        for (name, value) in head.headers { headers.append((name, value)) }
        // HEAD is answered as GET without the body (Go's net/http drops it the same way).
        let isHead = head.method == .HEAD
        let request = APIRequest(method: isHead ? "GET" : head.method.rawValue, uri: head.uri, headers: headers, body: body)
        body = []
        var recorded = RecordedRequest(
            method: head.method.rawValue, uri: request.uri,
            headers: headers.map { $0.0.lowercased() == "authorization" ? ($0.0, "<redacted>") : $0 },
            http2: version == .http2, statusCode: nil)
        let response: APIResponse
        if tooLarge {
            response = core.status(Status(message: "Request entity too large: limit is 3145728", reason: "RequestEntityTooLarge",
                                          details: Status.Details(), code: 413))
        } else {
            response = core.handle(request)
        }
        switch response {
        case .full(let code, _, _, _, _): recorded.statusCode = code
        case .watch: recorded.statusCode = 200
        }
        core.record(recorded)
        // API requests only: the probes of /readyz and /livez are not what a bound on requests in flight is about.
        let counted = request.uri.hasPrefix("/api") && { if case .full = response { true } else { false } }()
        if counted {
            core.shortInFlight.withLockedValue { $0.now += 1; $0.peak = max($0.peak, $0.now) }
        }
        let keepAlive = head.isKeepAlive
        let delay = core.faults.withLockedValue { $0.responseDelay }
        if let delay, delay > .zero {
            let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            delayedResponsePending = true
            delayedResponseIsShort = counted
            context.eventLoop.scheduleTask(in: TimeAmount(delay)) {
                let (handler, context) = loopBound.value
                // The client left meanwhile: like the API server, the request was cancelled with it.
                guard handler.delayedResponsePending else { return }
                handler.delayedResponsePending = false
                handler.send(response, context: context, keepAlive: keepAlive, isHead: isHead, counted: counted)
            }
        } else {
            send(response, context: context, keepAlive: keepAlive, isHead: isHead, counted: counted)
        }
    }

    /// `counted`: the response is one of ``APIServerCore/shortInFlight``'s (an API request).
    private func send(_ response: APIResponse, context: ChannelHandlerContext, keepAlive: Bool, isHead: Bool, counted: Bool) {
        switch response {
        case .watch where isHead:
            // Headers only; an explicit zero length keeps the HTTP/1.1 encoder from framing a chunked body.
            send(.full(code: 200, contentType: "application/json", body: [], extraHeaders: [], priorityAndFairness: true),
                 context: context, keepAlive: keepAlive, isHead: false, counted: false)
        case .full(let code, let contentType, let body, let extra, let pf):
            if counted { core.shortInFlight.withLockedValue { $0.now -= 1 } }
            // HEAD: the GET's headers, Content-Length included, and no body.
            var headers = KubeResponse.headers(contentType: contentType, contentLength: body.count, priorityAndFairness: pf, extra: extra)
            if version == .http1_1 && !keepAlive { headers.add(name: "Connection", value: "close") }
            let head = HTTPResponseHead(version: .http1_1, status: HTTPResponseStatus(statusCode: code), headers: headers)
            context.write(wrapOutboundOut(.head(head)), promise: nil)
            if !isHead {
                context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
            }
            if version == .http1_1 && !keepAlive {
                context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in context.close(promise: nil) }
            } else {
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            }
        case .watch(let setup):
            var headers = KubeResponse.headers(contentType: "application/json", contentLength: nil)
            if version == .http1_1 {
                headers.add(name: "Transfer-Encoding", value: "chunked")
                if !keepAlive { headers.add(name: "Connection", value: "close") }
            }
            // HTTP/1.1: no length, so NIO frames the body as chunked, one chunk per write.
            context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))), promise: nil)
            let stream = WatchStream(context: context, core: core, hub: hub, setup: setup,
                                     cutAfter: core.faults.withLockedValue { $0.cutWatchesAfterEvents },
                                     cutMidEvent: core.faults.withLockedValue { $0.cutWatchesMidEvent },
                                     closeWhenDone: version == .http1_1 && !keepAlive)
            watch = stream
            stream.start()
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { watch?.pump() }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if delayedResponsePending {
            delayedResponsePending = false
            if delayedResponseIsShort { core.shortInFlight.withLockedValue { $0.now -= 1 } }
        }
        watch?.stop()
        watch = nil
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        watch?.stop()
        watch = nil
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        watch?.stop()
        context.close(promise: nil)
    }
}

@available(*, unavailable)
extension APIRequestHandler: Sendable {}

/// A running watch on one channel. Loop-confined; the hub wakes it.
final class WatchStream {
    private let context: ChannelHandlerContext
    private let core: APIServerCore
    private let hub: WatchHub
    private let setup: WatchSetup
    private var cursor: UInt64
    private var stopped = false
    private var timeoutTask: Scheduled<Void>?
    private var bookmarkTask: Scheduled<Void>?
    private var eventsSent = 0
    private let cutAfter: Int?
    private let cutMidEvent: Bool
    private let closeWhenDone: Bool

    init(context: ChannelHandlerContext, core: APIServerCore, hub: WatchHub, setup: WatchSetup, cutAfter: Int?,
         cutMidEvent: Bool = false, closeWhenDone: Bool) {
        self.cutMidEvent = cutMidEvent
        self.closeWhenDone = closeWhenDone
        self.context = context
        self.core = core
        self.hub = hub
        self.setup = setup
        self.cursor = setup.plan.startResourceVersion
        self.cutAfter = cutAfter
    }

    func start() {
        let loop = context.eventLoop
        if let expired = setup.plan.expired {
            // 200, then one ERROR event with the 410 Status, then the end (fixture 31).
            write(WatchEventEncoding.encode(type: .error, object: expired.json))
            finish()
            return
        }
        hub.register(self, on: loop)
        for object in setup.plan.initialObjects {
            write(WatchEventEncoding.encode(type: .added, object: object))
            if stopped { return }
        }
        if setup.plan.sendInitialEventsEndBookmark {
            write(setup.filter.bookmark(resourceVersion: setup.plan.startResourceVersion, initialEventsEnd: true))
        }
        context.flush()
        let bound = NIOLoopBound(self, eventLoop: loop)
        timeoutTask = loop.scheduleTask(in: TimeAmount(setup.timeout)) {
            bound.value.pump()
            bound.value.finish()
        }
        if setup.allowBookmarks { scheduleBookmark() }
        pump()
    }

    /// Watchers of one resource must not all bookmark in the same instant: each
    /// wait is drawn around the configured mean, as the watch cache jitters its timer.
    static func bookmarkDelay(mean: Duration, random: Double) -> Duration {
        mean * (0.75 + 0.5 * min(max(random, 0), 1))
    }

    private func scheduleBookmark() {
        guard !stopped else { return }
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        let delay = Self.bookmarkDelay(mean: core.bookmarkInterval, random: Double.random(in: 0...1))
        bookmarkTask = context.eventLoop.scheduleTask(in: TimeAmount(delay)) {
            bound.value.bookmark()
            bound.value.scheduleBookmark()
        }
    }

    private func write(_ event: [UInt8]) {
        guard !stopped else { return }
        var bytes = setup.asTable ? tableEvent(event) : event
        if cutMidEvent, let cutAfter, eventsSent + 1 >= cutAfter { bytes = Array(bytes.prefix(bytes.count / 2)) }
        context.write(NIOAny(HTTPServerResponsePart.body(.byteBuffer(context.channel.allocator.buffer(bytes: bytes)))), promise: nil)
        eventsSent += 1
        if let cutAfter, eventsSent >= cutAfter {
            // Fault injection: the stream dies without a clean end.
            context.flush()
            stopped = true
            cleanup()
            context.close(promise: nil)
        }
    }

    private var sentColumns = false

    /// A watch event as a Table watch carries it: the object becomes a one-row
    /// Table, with the column definitions in the first event only (fixture 28f).
    private func tableEvent(_ bytes: [UInt8]) -> [UInt8] {
        guard let event = try? JSON(parsing: bytes.last == 0x0A ? Array(bytes.dropLast()) : bytes),
              let type = event["type"]?.stringValue, type != "ERROR", let object = event["object"]
        else { return bytes }
        let resourceVersion = UInt64(object.value(at: ["metadata", "resourceVersion"])?.stringValue ?? "") ?? 0
        var table = Tables.table(ListResult(type: setup.filter.type, items: [object], resourceVersion: resourceVersion))
        if sentColumns { table["columnDefinitions"] = .null }
        sentColumns = true
        return JSON.object([("type", .string(type)), ("object", table)]).bytes() + [0x0A]
    }

    /// Sends what the log holds past the cursor while the channel can take it.
    func pump() {
        guard !stopped else { return }
        if !context.channel.isWritable {
            // A watcher that stopped reading and fell out of the history is
            // dropped, as the watch cache drops unresponsive watchers: its
            // queue would otherwise grow without bound.
            if cursor < core.store.withLockedValue({ $0.log.evictedThrough }) {
                stopped = true
                cleanup()
                context.close(promise: nil)
            }
            return
        }
        while !stopped && context.channel.isWritable {
            let cursor = self.cursor
            guard let batch = core.store.withLockedValue({ $0.log.entries(after: cursor, limit: 512) }) else {
                // Fell out of the history: closed like a slow watcher in the real cache.
                finish()
                return
            }
            if batch.isEmpty { break }
            var wrote = false
            for entry in batch {
                self.cursor = entry.resourceVersion
                switch setup.filter.decide(entry) {
                case .skip: continue
                case .shared: write(entry.encoded)
                case .custom(let bytes): write(bytes)
                }
                wrote = true
                if stopped { return }
                // Backpressure: stop at the high-water mark; channelWritabilityChanged resumes.
                if !context.channel.isWritable { break }
            }
            if wrote { context.flush() }
        }
    }

    /// A periodic BOOKMARK, only when caught up so its resourceVersion never skips an event.
    private func bookmark() {
        pump()
        guard !stopped, context.channel.isWritable else { return }
        let latest = core.store.withLockedValue { $0.resourceVersion }
        guard cursor >= latest else { return }
        write(setup.filter.bookmark(resourceVersion: cursor, initialEventsEnd: false))
        context.flush()
    }

    /// Ends the response cleanly (`0\r\n\r\n` on HTTP/1.1, END_STREAM on h2).
    func finish() {
        guard !stopped else { return }
        stopped = true
        cleanup()
        if closeWhenDone {
            // `Connection: close` from the client: close once the last chunk is out.
            let context = self.context
            context.writeAndFlush(NIOAny(HTTPServerResponsePart.end(nil))).whenComplete { _ in context.close(promise: nil) }
        } else {
            context.writeAndFlush(NIOAny(HTTPServerResponsePart.end(nil)), promise: nil)
        }
    }

    func stop() {
        guard !stopped else { return }
        stopped = true
        cleanup()
    }

    private func cleanup() {
        timeoutTask?.cancel()
        timeoutTask = nil
        bookmarkTask?.cancel()
        bookmarkTask = nil
        hub.unregister(self, on: context.eventLoop)
    }
}

@available(*, unavailable)
extension WatchStream: Sendable {}
