import IsthmusKubeTypes

/// One committed change, kept for watches and for consistent paged lists.
public struct LogEntry: Sendable {
    public var resourceVersion: UInt64
    public var resource: GroupResource
    public var namespace: String
    public var name: String
    public var type: WatchEventType
    /// `object.apiVersion`, kept apart so watchers compare it cheaply.
    public var apiVersion: String
    /// The object as stored after the change (for DELETED: the last state, stamped with the deletion's rv).
    public var object: JSON
    /// The object before the change; nil for ADDED.
    public var previous: JSON?
    /// `{"type":...,"object":...}\n`, encoded once and shared by every watcher.
    public var encoded: [UInt8]
}

/// A bounded history of changes, oldest first. Resource versions are
/// consecutive, so finding where a watch resumes is arithmetic.
public struct EventLog: Sendable {
    public let capacity: Int
    private var ring: [LogEntry] = []
    private var head = 0  // index of the oldest entry once the ring is full
    /// The newest resourceVersion that is no longer in the log (0 if nothing was evicted).
    /// A watch or exact list from `rv >= evictedThrough` can be served.
    public private(set) var evictedThrough: UInt64 = 0

    public init(capacity: Int) {
        precondition(capacity > 0)
        self.capacity = capacity
        ring.reserveCapacity(min(capacity, 1 << 16))
    }

    public var count: Int { ring.count }

    public var oldestResourceVersion: UInt64? { ring.isEmpty ? nil : ring[head].resourceVersion }

    mutating func append(_ entry: LogEntry) {
        if ring.count < capacity {
            ring.append(entry)
        } else {
            evictedThrough = ring[head].resourceVersion
            ring[head] = entry
            head = (head + 1) % capacity
        }
    }

    /// Marks everything up to `rv` as unservable, e.g. when the log starts after a seed.
    mutating func forget(through rv: UInt64) {
        evictedThrough = max(evictedThrough, rv)
    }

    public func entry(at logicalIndex: Int) -> LogEntry {
        ring[(head + logicalIndex) % ring.count]
    }

    /// Entries with `resourceVersion > rv`, at most `limit` of them; nil if `rv` is too old.
    public func entries(after rv: UInt64, limit: Int) -> [LogEntry]? {
        guard rv >= evictedThrough else { return nil }
        guard let oldest = oldestResourceVersion else { return [] }
        let start = rv < oldest ? 0 : Int(rv - oldest + 1)
        guard start < ring.count else { return [] }
        let end = min(ring.count, start + limit)
        var out: [LogEntry] = []
        out.reserveCapacity(end - start)
        for i in start..<end { out.append(entry(at: i)) }
        return out
    }

    /// Entries newer than `rv`, newest first (for rolling state back).
    func entriesNewestFirst(after rv: UInt64) -> [LogEntry] {
        guard let oldest = oldestResourceVersion else { return [] }
        let start = rv < oldest ? 0 : Int(rv - oldest + 1)
        guard start < ring.count else { return [] }
        return (start..<ring.count).reversed().map { entry(at: $0) }
    }
}
