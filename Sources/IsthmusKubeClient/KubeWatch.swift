import AsyncHTTPClient
import IsthmusKubeTypes
import NIOCore

/// One event of a watch stream.
public enum KubeWatchEvent: Sendable, Equatable {
    case added(JSON)
    case modified(JSON)
    case deleted(JSON)
    /// A progress marker: the stream is current up to the object's
    /// `metadata.resourceVersion`; the object carries nothing else of use.
    case bookmark(JSON)
    /// The server ended the watch with a `Status` (410 Expired: re-list).
    case error(Status)

    public var type: WatchEventType {
        switch self {
        case .added: .added
        case .modified: .modified
        case .deleted: .deleted
        case .bookmark: .bookmark
        case .error: .error
        }
    }

    /// The object of ADDED/MODIFIED/DELETED/BOOKMARK.
    public var object: JSON? {
        switch self {
        case .added(let o), .modified(let o), .deleted(let o), .bookmark(let o): o
        case .error: nil
        }
    }

    /// `metadata.resourceVersion` of the object.
    public var resourceVersion: String? { object?.value(at: ["metadata", "resourceVersion"])?.stringValue }

    /// Decodes one line of a watch stream.
    public init(line: some Collection<UInt8>) throws(KubeClientError) {
        let json: JSON
        do { json = try JSON(parsing: line) } catch {
            throw .invalidResponse("watch event: \(error)")
        }
        guard let type = json["type"]?.stringValue, let object = json["object"] else {
            throw .invalidResponse("watch event without type or object")
        }
        switch type {
        case "ADDED": self = .added(object)
        case "MODIFIED": self = .modified(object)
        case "DELETED": self = .deleted(object)
        case "BOOKMARK": self = .bookmark(object)
        case "ERROR":
            self = .error(Status(kubeJSON: object) ?? Status(message: object.serialized(), reason: nil, details: nil, code: 500))
        default: throw .invalidResponse("unknown watch event type \(type)")
        }
    }
}

/// The events of one watch request, decoded as they arrive (one JSON object
/// per line). Pull-driven: the server is read only as fast as it is
/// consumed. Ends when the server closes the stream; throws
/// `KubeClientError.transport` when the connection breaks mid-stream.
/// Cancelling the consuming task, or dropping the sequence, closes the stream.
public struct KubeWatch: AsyncSequence, Sendable {
    public typealias Element = KubeWatchEvent
    public typealias Failure = KubeClientError

    let body: HTTPClientResponse.Body

    public func makeAsyncIterator() -> Iterator {
        Iterator(body: body.makeAsyncIterator())
    }

    public struct Iterator: AsyncIteratorProtocol {
        public typealias Element = KubeWatchEvent
        public typealias Failure = KubeClientError

        var body: HTTPClientResponse.Body.AsyncIterator
        /// Received bytes; those before `start` are consumed lines.
        var buffer: [UInt8] = []
        var start = 0
        var finished = false

        init(body: HTTPClientResponse.Body.AsyncIterator) {
            self.body = body
        }

        static func isBlank(_ bytes: ArraySlice<UInt8>) -> Bool {
            bytes.allSatisfy { $0 == 0x20 || $0 == 0x0D || $0 == 0x09 }
        }

        public mutating func next() async throws(KubeClientError) -> KubeWatchEvent? {
            while true {
                if let newline = buffer[start...].firstIndex(of: 0x0A) {
                    let line = buffer[start..<newline]
                    start = newline + 1
                    if Self.isBlank(line) { continue }
                    return try KubeWatchEvent(line: line)
                }
                if finished {
                    let rest = buffer[start...]
                    buffer = []
                    start = 0
                    return Self.isBlank(rest) ? nil : try KubeWatchEvent(line: rest)
                }
                let chunk: ByteBuffer?
                do {
                    chunk = try await body.next()
                } catch {
                    finished = true
                    buffer = []
                    start = 0
                    throw KubeClientError(transportError: error)
                }
                guard let chunk else {
                    finished = true
                    continue
                }
                // Drop consumed lines before growing, so the buffer holds at most one partial line plus a chunk.
                if start > 0 {
                    buffer.removeSubrange(..<start)
                    start = 0
                }
                buffer.append(contentsOf: chunk.readableBytesView)
            }
        }
    }
}
