/// The informer's retry decisions, free of I/O: what to do after a list or a
/// watch ends, and how long to wait first. The informer feeds it outcomes and
/// performs the actions it returns.
///
/// - A list that succeeds starts a watch from its resourceVersion.
/// - A watch that ends cleanly (server timeout) resumes from the last
///   resourceVersion seen (event or bookmark), at once.
/// - 410 Expired (an ERROR event or an HTTP answer) re-lists at once.
/// - Other failures wait an exponentially growing, jittered delay, at least
///   the server's `Retry-After` for 429, and retry the same step. Progress
///   (any event) resets the delay.
public struct InformerStateMachine: Sendable {
    /// Exponential backoff: `initial * factor^(n-1)`, capped at `maximum`,
    /// then stretched by up to `jitter` of itself at random.
    public struct Backoff: Sendable, Equatable {
        public var initial: Duration
        public var maximum: Duration
        public var factor: Double
        /// 0 for none; 1 can double a delay.
        public var jitter: Double

        public init(initial: Duration, maximum: Duration, factor: Double = 2, jitter: Double = 1) {
            self.initial = initial
            self.maximum = maximum
            self.factor = factor
            self.jitter = jitter
        }

        /// client-go's reflector: 800 ms doubling to 30 s, full jitter.
        public static let standard = Backoff(initial: .milliseconds(800), maximum: .seconds(30))
    }

    public enum Action: Sendable, Equatable {
        /// List from scratch (all pages) after waiting `after`.
        case list(after: Duration)
        /// Watch from `resourceVersion` after waiting `after`, asking the server to end it after `timeoutSeconds`.
        case watch(from: String, after: Duration, timeoutSeconds: Int)
    }

    /// How a request failed, as far as retrying is concerned.
    public enum Failure: Sendable, Equatable {
        /// 410: the resourceVersion is older than the server's history.
        case expired
        /// 429, with the server's `Retry-After` when it sent one.
        case throttled(retryAfter: Duration?)
        /// Anything else: 5xx, a broken connection, an unexpected answer.
        case other

        public init(_ error: KubeClientError) {
            if error.isGone {
                self = .expired
            } else if error.isTooManyRequests {
                self = .throttled(retryAfter: error.retryAfter)
            } else {
                self = .other
            }
        }
    }

    public enum WatchEnd: Sendable, Equatable {
        /// The server closed the stream normally.
        case clean
        case failed(Failure)
    }

    public let backoff: Backoff
    /// Watches ask the server to end them after a random time in this range (seconds),
    /// so that many clients do not re-watch in step.
    public let watchTimeoutSeconds: ClosedRange<Int>
    /// The newest resourceVersion seen: the list's, then each event's and bookmark's.
    public private(set) var resourceVersion: String?
    /// Failures since the last success or progress; drives the delay.
    public private(set) var consecutiveFailures = 0
    /// True once a list has succeeded.
    public private(set) var hasSynced = false
    private var random: SplitMix64

    public init(backoff: Backoff = .standard, watchTimeoutSeconds: ClosedRange<Int> = 300...600, seed: UInt64 = UInt64.random(in: 0...UInt64.max)) {
        self.backoff = backoff
        self.watchTimeoutSeconds = watchTimeoutSeconds
        self.random = SplitMix64(seed: seed)
    }

    public mutating func start() -> Action { .list(after: .zero) }

    public mutating func listSucceeded(resourceVersion: String) -> Action {
        self.resourceVersion = resourceVersion
        consecutiveFailures = 0
        hasSynced = true
        return watch(after: .zero)
    }

    public mutating func listFailed(_ failure: Failure) -> Action {
        // An expired continue token: start the list again, no need to wait.
        if failure == .expired { return .list(after: .zero) }
        return .list(after: delay(for: failure))
    }

    /// An event or bookmark arrived: remember where the stream is, and that it made progress.
    public mutating func observed(resourceVersion: String?) {
        if let resourceVersion, !resourceVersion.isEmpty { self.resourceVersion = resourceVersion }
        consecutiveFailures = 0
    }

    public mutating func watchEnded(_ end: WatchEnd) -> Action {
        switch end {
        case .clean:
            consecutiveFailures = 0
            return watch(after: .zero)
        case .failed(.expired):
            return .list(after: .zero)
        case .failed(let failure):
            return watch(after: delay(for: failure))
        }
    }

    private mutating func watch(after delay: Duration) -> Action {
        guard let resourceVersion else { return .list(after: delay) }
        let timeout = Int.random(in: watchTimeoutSeconds, using: &random)
        return .watch(from: resourceVersion, after: delay, timeoutSeconds: timeout)
    }

    private mutating func delay(for failure: Failure) -> Duration {
        consecutiveFailures += 1
        var base = backoff.initial
        for _ in 1..<consecutiveFailures {
            base = base * backoff.factor
            if base >= backoff.maximum { break }
        }
        base = min(base, backoff.maximum)
        let jittered = min(base + base * (backoff.jitter * Double.random(in: 0..<1, using: &random)), backoff.maximum)
        if case .throttled(let retryAfter?) = failure { return max(jittered, retryAfter) }
        return jittered
    }
}

/// A small seedable generator, so delays are reproducible in tests.
struct SplitMix64: RandomNumberGenerator, Sendable {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
