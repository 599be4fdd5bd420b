import IsthmusKubeTypes
import IsthmusPolicy
import NIOCore
import NIOHTTP1

/// Reads the answer to a Secret lookup (``ProtectedObjects/secretLookupTarget(namespace:name:)``)
/// whole, bounded, and hands it to its ``ProxyHandler`` on the same loop.
/// The body is never relayed: only the verdict leaves this handler.
final class SecretLookupHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart

    enum Outcome {
        /// `keepAlive`: the answer did not ask to close the connection.
        case answered(status: Int, body: ByteBuffer, keepAlive: Bool)
        /// The connection closed before any answer began.
        case closedBeforeAnswer
        case failed(String)
    }

    enum Verdict: Equatable {
        case serve
        case missing
        case refuse(ProtectedObjects.Reason)
        case failed(String)
    }

    /// A Secret is at most 1 MiB (etcd's request limit is 1.5 MiB); a list of
    /// one, with its JSON framing, fits well within this.
    static let maximumBodyBytes = 3 * 1024 * 1024

    /// Called once, with this handler; the owner then closes the stream or
    /// returns its keep-alive connection.
    private var completion: ((Outcome, SecretLookupHandler) -> Void)?
    private var status = 0
    private var keepAlive = false
    private var body = ByteBuffer()

    init(completion: @escaping (Outcome, SecretLookupHandler) -> Void) {
        self.completion = completion
    }

    private func finish(_ outcome: Outcome, context: ChannelHandlerContext) {
        guard let completion else { return }
        self.completion = nil
        completion(outcome, self)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            status = Int(head.status.code)
            keepAlive = head.isKeepAlive
        case .body(var part):
            guard body.readableBytes + part.readableBytes <= Self.maximumBodyBytes else {
                finish(.failed("the Secret lookup answer is over \(Self.maximumBodyBytes) bytes"), context: context)
                return
            }
            body.writeBuffer(&part)
        case .end:
            finish(.answered(status: status, body: body, keepAlive: keepAlive), context: context)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        finish(status == 0 ? .closedBeforeAnswer : .failed("the API server closed the Secret lookup before answering"),
               context: context)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        finish(.failed("the Secret lookup failed: \(error)"), context: context)
    }

    /// What the lookup's answer means for the get of `name`. Pure.
    static func verdict(_ outcome: Outcome, name: String, protected: ProtectedObjects) -> Verdict {
        let status: Int, body: ByteBuffer
        switch outcome {
        case .answered(let code, let answer, _): (status, body) = (code, answer)
        case .closedBeforeAnswer: return .failed("the API server closed the Secret lookup before answering")
        case .failed(let detail): return .failed(detail)
        }
        guard status == 200 else { return .failed("the API server answered the Secret lookup with \(status)") }
        guard let list = try? JSON(parsing: body.readableBytesView), let items = list["items"]?.arrayValue else {
            return .failed("the Secret lookup answer is not a list")
        }
        // Only the object of that exact name counts, whatever else came back.
        var found = false
        for item in items where item.value(at: ["metadata", "name"])?.stringValue == name {
            found = true
            let labels = item.value(at: ["metadata", "labels"])?.stringMap ?? [:]
            if let reason = protected.judgeSecret(type: item["type"]?.stringValue ?? "", labels: labels) {
                return .refuse(reason)
            }
        }
        return found ? .serve : .missing
    }
}

@available(*, unavailable)
extension SecretLookupHandler: Sendable {}
