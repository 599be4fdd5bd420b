/// When to fetch a peer's metadata next: periodically when all is well,
/// at once when the spec changes, and with exponential backoff and jitter
/// while it fails, so a peer that is down is not hammered and many
/// controllers that lost the same peer do not retry in step.
///
/// Pure: times are `Duration`s since any fixed origin (a monotonic clock's
/// start), and jitter comes from the `random` argument in `0..<1`.
public struct RefetchSchedule: Sendable, Hashable {
    /// Between successful fetches (default 60 s).
    public var period: Duration
    /// The first retry delay after a failure (default 5 s); doubles per failure.
    public var initialBackoff: Duration
    /// The longest retry delay (default 5 minutes).
    public var maximumBackoff: Duration
    /// Each delay is shortened by up to this fraction at random (default 0.2).
    public var jitter: Double

    public init(period: Duration = .seconds(60), initialBackoff: Duration = .seconds(5),
                maximumBackoff: Duration = .seconds(300), jitter: Double = 0.2) {
        precondition(period > .zero && initialBackoff > .zero && maximumBackoff >= initialBackoff,
                     "refetch period and backoff must be positive, and the maximum at least the initial backoff")
        precondition((0..<1).contains(jitter), "jitter is a fraction in 0..<1")
        self.period = period
        self.initialBackoff = initialBackoff
        self.maximumBackoff = maximumBackoff
        self.jitter = jitter
    }

    /// What the schedule remembers about one IstioMulticluster.
    public struct PeerState: Sendable, Hashable {
        /// The generation last fetched for; a newer one is fetched at once.
        public var generation: Int
        public var consecutiveFailures: Int
        public var nextFetch: Duration

        public init(generation: Int, consecutiveFailures: Int, nextFetch: Duration) {
            self.generation = generation
            self.consecutiveFailures = consecutiveFailures
            self.nextFetch = nextFetch
        }
    }

    /// Whether to fetch now: never fetched, spec changed, or the time came.
    public func isDue(_ state: PeerState?, generation: Int, now: Duration) -> Bool {
        guard let state else { return true }
        return generation != state.generation || now >= state.nextFetch
    }

    /// The state after a fetch round at `now`.
    public func record(success: Bool, generation: Int, previous: PeerState?, now: Duration, random: Double) -> PeerState {
        let failures = success ? 0 : ((previous?.generation == generation ? previous?.consecutiveFailures : nil) ?? 0) + 1
        let delay = success ? period : backoff(afterFailures: failures)
        let r = min(max(random, 0), 0.999_999)
        return PeerState(generation: generation, consecutiveFailures: failures, nextFetch: now + delay * (1 - jitter * r))
    }

    /// `initialBackoff * 2^(failures-1)`, capped at `maximumBackoff`, and
    /// never longer than the period would be: a failing peer is retried at
    /// least as often as a healthy one is refreshed.
    public func backoff(afterFailures failures: Int) -> Duration {
        guard failures > 0 else { return period }
        var delay = initialBackoff
        var n = 1
        while n < failures && delay < maximumBackoff {
            delay = delay * 2
            n += 1
        }
        return min(delay, maximumBackoff)
    }

    /// The earliest `nextFetch` of `states`: when the loop should wake.
    public func nextWake(_ states: some Sequence<PeerState>) -> Duration? {
        states.map(\.nextFetch).min()
    }
}
