import Foundation
import NIOConcurrencyHelpers

/// The proxy's own ServiceAccount token, which it sends upstream instead of
/// the client's. Kubelet rotates projected tokens (by default hourly, the file
/// is replaced by a symlink swap), so the file is re-read when it changes.
///
/// The data path only reads a snapshot behind a lock; a background task
/// checks the file's modification time and size every `interval` (off the
/// event loops), so no request ever waits on the disk.
public final class ServiceAccountToken: Sendable {
    public let path: String
    private struct Snapshot {
        var token: String?
        var modified: Date?
        var size: Int?
    }

    private let snapshot: NIOLockedValueBox<Snapshot>
    private let task = NIOLockedValueBox<Task<Void, Never>?>(nil)

    /// Reads the file once now. A missing or empty file leaves no token; the
    /// upstream then answers 401, which the client sees as an upstream failure.
    public init(path: String) {
        self.path = path
        self.snapshot = NIOLockedValueBox(Snapshot())
        refresh()
    }

    /// The current token, without `Bearer `; nil if the file could not be read.
    public var current: String? { snapshot.withLockedValue { $0.token } }

    /// Re-reads the file if its modification time or size changed.
    public func refresh() {
        let attributes = try? FileManager.default.attributesOfItem(atPath: path)
        let modified = attributes?[.modificationDate] as? Date
        let size = (attributes?[.size] as? NSNumber)?.intValue
        let unchanged = snapshot.withLockedValue { $0.modified == modified && $0.size == size && $0.token != nil }
        if unchanged { return }
        let token = (try? String(contentsOfFile: path, encoding: .utf8))
            .map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
            .flatMap { $0.isEmpty ? nil : $0 }
        snapshot.withLockedValue { $0 = Snapshot(token: token, modified: modified, size: size) }
    }

    /// Checks the file every `interval` (a stat; a read only on change).
    public func startRefreshing(every interval: Duration) {
        let repeated = Task.detached { [self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: interval)
                if Task.isCancelled { return }
                self.refresh()
            }
        }
        task.withLockedValue {
            $0?.cancel()
            $0 = repeated
        }
    }

    public func stopRefreshing() {
        task.withLockedValue {
            $0?.cancel()
            $0 = nil
        }
    }
}
