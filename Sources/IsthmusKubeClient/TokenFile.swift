import Foundation
import Synchronization

/// A bearer token kept in a file that is rotated in place (a projected
/// service account token): read again when the file changes, and at least
/// once a minute, never cached for ever.
public final class TokenFile: Sendable {
    public let path: String
    /// Longest a read token is used without looking at the file again.
    public let maximumAge: Duration

    private struct Cached {
        var token: String
        var identity: FileIdentity
        var readAt: ContinuousClock.Instant
    }

    private struct FileIdentity: Equatable {
        var modified: Date?
        var size: Int?
        var inode: Int?
    }

    private let cache = Mutex<Cached?>(nil)

    public init(path: String, maximumAge: Duration = .seconds(60)) {
        self.path = path
        self.maximumAge = maximumAge
    }

    /// The current token, trimmed of surrounding whitespace.
    public func read() throws -> String {
        let identity = try Self.identity(path)
        let now = ContinuousClock.now
        if let cached = cache.withLock({ $0 }), cached.identity == identity, now - cached.readAt < maximumAge {
            return cached.token
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw KubeConfigError(file: path, field: "", message: "cannot read the token file")
        }
        let token = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard !token.isEmpty else { throw KubeConfigError(file: path, field: "", message: "the token file is empty") }
        cache.withLock { $0 = Cached(token: token, identity: identity, readAt: now) }
        return token
    }

    private static func identity(_ path: String) throws -> FileIdentity {
        // Kubelet rotates by swapping the `..data` symlink the token path goes
        // through; attributesOfItem does not follow links, so resolve first.
        let resolved = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
        let attributes: [FileAttributeKey: Any]
        do { attributes = try FileManager.default.attributesOfItem(atPath: resolved) } catch {
            throw KubeConfigError(file: path, field: "", message: "cannot read the token file")
        }
        return FileIdentity(modified: attributes[.modificationDate] as? Date,
                            size: (attributes[.size] as? NSNumber)?.intValue,
                            inode: (attributes[.systemFileNumber] as? NSNumber)?.intValue)
    }
}
