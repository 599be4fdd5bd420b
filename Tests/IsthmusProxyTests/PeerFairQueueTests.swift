import IsthmusProxy
import Testing

@Suite("Fair queuing of short requests between peers")
struct PeerFairQueueTests {
    private typealias Queue = PeerFairQueue<Int>
    private static let second: UInt64 = 1_000_000_000

    private func limits(_ inFlight: Int, queue: Int = 8) -> ShortRequestLimits {
        ShortRequestLimits(maxInFlight: inFlight, maxQueuedPerPeer: queue, maxQueueWait: .seconds(5), activeWindow: .seconds(1))
    }

    private func isAdmitted(_ admission: Queue.Admission) -> Bool {
        if case .admitted = admission { return true }
        return false
    }

    private func ticket(_ admission: Queue.Admission) -> Queue.Ticket? {
        if case .queued(let ticket) = admission { return ticket }
        return nil
    }

    @Test("a peer alone uses the whole bound; one more waits and goes when a slot frees")
    func alone() {
        var queue = Queue(limits: limits(4))
        for i in 0..<4 { #expect(isAdmitted(queue.acquire(peer: "a", now: 0, waiter: i))) }
        #expect(ticket(queue.acquire(peer: "a", now: 0, waiter: 4)) != nil)
        #expect(queue.inFlight == 4 && queue.queued(of: "a") == 1)
        #expect(queue.release(peer: "a", now: 1) == [4])
        #expect(queue.inFlight == 4 && queue.queued(of: "a") == 0)
        // Its queue holds maxQueuedPerPeer (8 here); one more is refused.
        for i in 5..<13 { #expect(ticket(queue.acquire(peer: "a", now: 2, waiter: i)) != nil) }
        guard case .refused(.queueFull) = queue.acquire(peer: "a", now: 2, waiter: 13) else {
            Issue.record("a request beyond the queue was not refused")
            return
        }
    }

    @Test("a second peer asking gets its share at once: the flooding peer is held to its own")
    func shareWithASecondPeer() {
        var queue = Queue(limits: limits(4))
        for i in 0..<4 { #expect(isAdmitted(queue.acquire(peer: "a", now: 0, waiter: i))) }
        // Every slot is taken: b waits, but the next free slot is b's, not a's.
        #expect(ticket(queue.acquire(peer: "b", now: 0, waiter: 100)) != nil)
        #expect(ticket(queue.acquire(peer: "a", now: 0, waiter: 4)) != nil)
        #expect(queue.release(peer: "a", now: 1) == [100])
        // a is at 3 of a share of 2; b at 1: one slot free, and it is b's unused share.
        #expect(queue.release(peer: "a", now: 2) == [])
        #expect(queue.inFlight(of: "a") == 2 && queue.inFlight(of: "b") == 1)
        #expect(isAdmitted(queue.acquire(peer: "b", now: 3, waiter: 101)))
        #expect(queue.inFlight == 4)
        // b, at its share, may not take a's: it queues behind the bound like anyone.
        #expect(ticket(queue.acquire(peer: "b", now: 3, waiter: 102)) != nil)
        // A freed slot goes to the peer with fewer in flight (a at 1 after the release; b at 2).
        #expect(queue.release(peer: "a", now: 4) == [4])
        #expect(queue.inFlight(of: "a") == 2 && queue.inFlight(of: "b") == 2)
    }

    @Test("a peer that stopped asking gives its share back after the active window")
    func idlePeerForgotten() {
        var queue = Queue(limits: limits(4))
        #expect(isAdmitted(queue.acquire(peer: "b", now: 0, waiter: 0)))
        #expect(queue.release(peer: "b", now: 1) == [])
        for i in 1...2 { #expect(isAdmitted(queue.acquire(peer: "a", now: 2, waiter: i))) }
        // b ended less than a second ago: it still holds its share, so a stops at 2 of 4.
        #expect(ticket(queue.acquire(peer: "a", now: 3, waiter: 3)) != nil)
        // After the window, b is forgotten: a's queued request goes, and a may use every slot.
        #expect(queue.release(peer: "a", now: 2 * Self.second) == [3])
        for i in 4...5 { #expect(isAdmitted(queue.acquire(peer: "a", now: 2 * Self.second, waiter: i))) }
        #expect(queue.inFlight == 4 && queue.snapshot.map(\.peer) == ["a"])
    }

    @Test("beyond its queue a peer is refused; another peer's queue is its own")
    func queueFull() {
        var queue = Queue(limits: limits(1, queue: 2))
        #expect(isAdmitted(queue.acquire(peer: "a", now: 0, waiter: 0)))
        #expect(ticket(queue.acquire(peer: "a", now: 0, waiter: 1)) != nil)
        #expect(ticket(queue.acquire(peer: "a", now: 0, waiter: 2)) != nil)
        guard case .refused(.queueFull) = queue.acquire(peer: "a", now: 0, waiter: 3) else {
            Issue.record("a third queued request of a was not refused")
            return
        }
        #expect(ticket(queue.acquire(peer: "b", now: 0, waiter: 10)) != nil)
        // No queue at all: refused as soon as no slot is free.
        var none = Queue(limits: limits(1, queue: 0))
        #expect(isAdmitted(none.acquire(peer: "a", now: 0, waiter: 0)))
        guard case .refused(.queueFull) = none.acquire(peer: "a", now: 0, waiter: 1) else {
            Issue.record("with no queue, a request beyond the bound was not refused")
            return
        }
    }

    @Test("a cancelled request never goes; a request already granted cannot be cancelled")
    func cancel() {
        var queue = Queue(limits: limits(1))
        #expect(isAdmitted(queue.acquire(peer: "a", now: 0, waiter: 0)))
        let first = ticket(queue.acquire(peer: "a", now: 0, waiter: 1))!
        let second = ticket(queue.acquire(peer: "a", now: 0, waiter: 2))!
        let cancelled1 = queue.cancel(first, peer: "a", now: 1)
        #expect(cancelled1)
        let cancelled2 = queue.cancel(first, peer: "a", now: 1)
        #expect(!cancelled2)
        #expect(queue.release(peer: "a", now: 2) == [2])
        let cancelled3 = queue.cancel(second, peer: "a", now: 3)
        #expect(!cancelled3, "granted: it is in flight and must be released")
        #expect(queue.inFlight == 1)
        // A release of a peer with nothing in flight changes nothing.
        #expect(queue.release(peer: "nobody", now: 4) == [])
        #expect(queue.inFlight == 1)
    }

    @Test("a peer's own requests go in the order they came")
    func orderWithinAPeer() {
        var queue = Queue(limits: limits(1))
        #expect(isAdmitted(queue.acquire(peer: "a", now: 0, waiter: 0)))
        for i in 1...3 { _ = queue.acquire(peer: "a", now: 0, waiter: i) }
        var order: [Int] = []
        for t in 1...3 { order += queue.release(peer: "a", now: UInt64(t)) }
        #expect(order == [1, 2, 3])
    }

    @Test("random arrivals, ends and cancellations: never above the bound, counts always add up, every asking peer keeps its share")
    func invariants() {
        var generator = SplitMix(seed: 0x15_7A_0B)
        for _ in 0..<200 {
            let bound = Int(generator.next() % 8) + 1
            var queue = Queue(limits: limits(bound, queue: 4))
            var running: [(peer: String, id: Int)] = []
            var waiting: [(peer: String, ticket: Queue.Ticket, id: Int)] = []
            var now: UInt64 = 0
            for id in 0..<300 {
                now += generator.next() % (Self.second / 4)
                let peer = ["a", "b", "c"][Int(generator.next() % 3)]
                switch generator.next() % 3 {
                case 0:
                    switch queue.acquire(peer: peer, now: now, waiter: id) {
                    case .admitted: running.append((peer, id))
                    case .queued(let ticket): waiting.append((peer, ticket, id))
                    case .refused: break
                    }
                case 1 where !running.isEmpty:
                    let ended = running.remove(at: Int(generator.next() % UInt64(running.count)))
                    for started in queue.release(peer: ended.peer, now: now) {
                        let index = waiting.firstIndex { $0.id == started }!
                        running.append((waiting[index].peer, started))
                        waiting.remove(at: index)
                    }
                case 2 where !waiting.isEmpty:
                    let index = Int(generator.next() % UInt64(waiting.count))
                    let cancelled4 = queue.cancel(waiting[index].ticket, peer: waiting[index].peer, now: now)
                    #expect(cancelled4)
                    waiting.remove(at: index)
                default: break
                }
                #expect(queue.inFlight == running.count && queue.inFlight <= bound)
                for name in ["a", "b", "c"] {
                    #expect(queue.inFlight(of: name) == running.filter { $0.peer == name }.count)
                    #expect(queue.queued(of: name) == waiting.filter { $0.peer == name }.count)
                }
                // Work-conserving within the shares: nobody waits while the slot it is owed is free.
                if queue.inFlight < bound {
                    for w in waiting where queue.inFlight(of: w.peer) < queue.fairShare {
                        Issue.record("\(w.peer) waits with \(queue.inFlight(of: w.peer)) in flight below its share \(queue.fairShare), \(queue.inFlight) of \(bound) in flight")
                        return
                    }
                }
            }
        }
    }
}

@Suite("Per-peer rate limits: token buckets")
struct PeerRateLimiterTests {
    private static let second: UInt64 = 1_000_000_000

    @Test("a burst goes at once, the next request waits for its token, tokens come back at the rate")
    func bucket() {
        var limiter = PeerRateLimiter(limits: PeerRateLimits(everyPeer: RequestRate(perSecond: 2, burst: 3)))
        for _ in 0..<3 { #expect(limiter.take(peer: "a", now: 0) == nil) }
        #expect(limiter.take(peer: "a", now: 0) == 1)
        // Another peer has its own bucket.
        #expect(limiter.take(peer: "b", now: 0) == nil)
        // Half a second brings one token back (2/s).
        #expect(limiter.take(peer: "a", now: Self.second / 2) == nil)
        #expect(limiter.take(peer: "a", now: Self.second / 2) != nil)
        // Long idle refills only up to the burst.
        for _ in 0..<3 { #expect(limiter.take(peer: "a", now: 100 * Self.second) == nil) }
        #expect(limiter.take(peer: "a", now: 100 * Self.second) != nil)
    }

    @Test("Retry-After is the whole seconds until the next token, at least 1")
    func retryAfter() {
        var slow = PeerRateLimiter(limits: PeerRateLimits(everyPeer: RequestRate(perSecond: 0.25, burst: 1)))
        #expect(slow.take(peer: "a", now: 0) == nil)
        #expect(slow.take(peer: "a", now: 0) == 4)
        #expect(slow.take(peer: "a", now: 3 * Self.second + 1) == 1)
    }

    @Test("a named peer's rate overrides every peer's; no rate at all never refuses")
    func overrides() {
        var limiter = PeerRateLimiter(limits: PeerRateLimits(everyPeer: RequestRate(perSecond: 1, burst: 1),
                                                             byPeer: ["vip": RequestRate(perSecond: 1000, burst: 1000)]))
        for _ in 0..<100 { #expect(limiter.take(peer: "vip", now: 0) == nil) }
        #expect(limiter.take(peer: "other", now: 0) == nil)
        #expect(limiter.take(peer: "other", now: 0) != nil)
        var off = PeerRateLimiter()
        #expect(off.limits.isOff)
        for _ in 0..<10_000 { #expect(off.take(peer: "a", now: 0) == nil) }
        let onlyNamed = PeerRateLimits(byPeer: ["slow": RequestRate(perSecond: 1, burst: 1)])
        #expect(!onlyNamed.isOff && onlyNamed.rate(for: "fast") == nil)
    }

    @Test("rates parse as QPS/BURST or QPS", arguments: [
        ("50/100", RequestRate(perSecond: 50, burst: 100)), ("5", RequestRate(perSecond: 5, burst: 5)),
        ("0.5", RequestRate(perSecond: 0.5, burst: 1)), ("2.5/10", RequestRate(perSecond: 2.5, burst: 10)),
    ])
    func parses(_ text: String, _ rate: RequestRate) {
        #expect(RequestRate(parsing: text) == rate)
        #expect(RequestRate(parsing: rate.description) == rate)
    }

    @Test("nonsense rates are refused", arguments: ["", "0", "-1", "5/0", "5/-1", "a/b", "5/10/20", "nan", "inf", "1e9", "/5", "5/"])
    func refuses(_ text: String) {
        #expect(RequestRate(parsing: text) == nil)
    }

    @Test("per-peer rates: PEER=QPS/BURST entries; a bad entry is named")
    func byPeer() throws {
        #expect(try PeerRateLimits.parseByPeer("a=5/10, b=1").get() == ["a": RequestRate(perSecond: 5, burst: 10),
                                                                          "b": RequestRate(perSecond: 1, burst: 1)])
        #expect(throws: PeerRateLimits.ParseError(problem: "expected PEER=QPS/BURST entries separated by commas, got \"a\"")) {
            try PeerRateLimits.parseByPeer("a").get()
        }
        #expect(throws: PeerRateLimits.ParseError(problem: "peer b: expected QPS/BURST like 50/100, got \"x\"")) {
            try PeerRateLimits.parseByPeer("a=1,b=x").get()
        }
        #expect(throws: PeerRateLimits.ParseError(problem: "peer a is given more than once")) {
            try PeerRateLimits.parseByPeer("a=1,a=2").get()
        }
    }
}

/// A small deterministic generator, so a failing sequence repeats.
private struct SplitMix {
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
