import IsthmusController
import IsthmusKubeTypes
import PropertyBased
import Testing

@Suite("Refetch schedule")
struct RefetchScheduleTests {
    let schedule = RefetchSchedule()

    @Test("never fetched, or a new generation, is due at once")
    func dueAtOnce() {
        #expect(schedule.isDue(nil, generation: 1, now: .zero))
        let state = schedule.record(success: true, generation: 1, previous: nil, now: .seconds(100), random: 0)
        #expect(!schedule.isDue(state, generation: 1, now: .seconds(101)))
        #expect(schedule.isDue(state, generation: 2, now: .seconds(101)))
    }

    @Test("after a success the next fetch is one period later, shortened by at most the jitter")
    func periodic() {
        let early = schedule.record(success: true, generation: 1, previous: nil, now: .seconds(100), random: 0)
        #expect(early.nextFetch == .seconds(160))
        let jittered = schedule.record(success: true, generation: 1, previous: nil, now: .seconds(100), random: 0.5)
        #expect(jittered.nextFetch == .seconds(154))
        #expect(!schedule.isDue(early, generation: 1, now: .seconds(159)))
        #expect(schedule.isDue(early, generation: 1, now: .seconds(160)))
    }

    @Test("failures back off exponentially up to the cap, and a success resets")
    func backoff() {
        var state: RefetchSchedule.PeerState? = nil
        var delays: [Duration] = []
        var now = Duration.zero
        for _ in 0..<9 {
            let next = schedule.record(success: false, generation: 1, previous: state, now: now, random: 0)
            delays.append(next.nextFetch - now)
            now = next.nextFetch
            state = next
        }
        #expect(delays == [5, 10, 20, 40, 80, 160, 300, 300, 300].map { Duration.seconds($0) })
        #expect(state?.consecutiveFailures == 9)
        let healed = schedule.record(success: true, generation: 1, previous: state, now: now, random: 0)
        #expect(healed.consecutiveFailures == 0 && healed.nextFetch == now + .seconds(60))
        // A spec change starts the backoff over.
        let edited = schedule.record(success: false, generation: 2, previous: state, now: now, random: 0)
        #expect(edited.consecutiveFailures == 1 && edited.nextFetch == now + .seconds(5))
    }

    @Test("jitter keeps every delay within [delay * (1 - jitter), delay]")
    func jitterBounds() async {
        let schedule = self.schedule
        await propertyCheck(count: 300, input: zip(Gen.int(in: 0...20), Gen.double(in: 0..<1))) { failures, random in
            let previous = failures == 0 ? nil : RefetchSchedule.PeerState(generation: 1, consecutiveFailures: failures - 1, nextFetch: .zero)
            let state = schedule.record(success: failures == 0, generation: 1, previous: previous, now: .zero, random: random)
            let full = failures == 0 ? schedule.period : schedule.backoff(afterFailures: failures)
            #expect(state.nextFetch <= full)
            #expect(state.nextFetch >= full * (1 - schedule.jitter))
        }
    }

    @Test("the loop wakes at the earliest next fetch")
    func nextWake() {
        let states = [
            RefetchSchedule.PeerState(generation: 1, consecutiveFailures: 0, nextFetch: .seconds(90)),
            RefetchSchedule.PeerState(generation: 1, consecutiveFailures: 2, nextFetch: .seconds(30)),
        ]
        #expect(schedule.nextWake(states) == .seconds(30))
        #expect(schedule.nextWake([]) == nil)
    }
}

@Suite("Small pieces")
struct SmallPiecesTests {
    @Test("RFC 3339 timestamps as metav1.Time writes them")
    func timestamps() {
        #expect(RFC3339.string(unixSeconds: 0) == "1970-01-01T00:00:00Z")
        #expect(RFC3339.string(unixSeconds: 1_800_000_000) == "2027-01-15T08:00:00Z")
        #expect(RFC3339.string(unixSeconds: 951_782_400) == "2000-02-29T00:00:00Z")
        #expect(RFC3339.string(unixSeconds: 4_102_444_799) == "2099-12-31T23:59:59Z")
    }

    @Test("metric names follow Prometheus conventions and are unique")
    func metricNames() {
        #expect(Set(ControllerMetrics.all).count == ControllerMetrics.all.count)
        for name in ControllerMetrics.all {
            #expect(name.hasPrefix("isthmus_controller_"))
            #expect(name.allSatisfy { $0.isLowercase || $0 == "_" })
        }
        #expect(ControllerMetrics.metadataFetchErrors.hasSuffix("_total"))
    }

    @Test("a condition keeps its transition time while its status holds")
    func conditionTransitions() {
        let first = mergeConditions(existing: [], drafts: [ConditionDraft(type: "Ready", status: .false, reason: "A", message: "a")],
                                    generation: 1, now: 0)
        let same = mergeConditions(existing: first, drafts: [ConditionDraft(type: "Ready", status: .false, reason: "B", message: "b")],
                                   generation: 2, now: 100)
        #expect(same[0].lastTransitionTime == "1970-01-01T00:00:00Z" && same[0].reason == "B" && same[0].observedGeneration == 2)
        let flipped = mergeConditions(existing: same, drafts: [ConditionDraft(type: "Ready", status: .true, reason: "C", message: "c")],
                                      generation: 2, now: 200)
        #expect(flipped[0].lastTransitionTime == "1970-01-01T00:03:20Z")
        // Another writer's condition survives.
        let foreign = Condition(type: "Other", status: .true, reason: "X", message: "", lastTransitionTime: "t", observedGeneration: 1)
        let merged = mergeConditions(existing: [foreign], drafts: [ConditionDraft(type: "Ready", status: .true, reason: "C", message: "c")],
                                     generation: 1, now: 0)
        #expect(merged.map(\.type) == ["Ready", "Other"])
        #expect(Condition(json: merged[0].json) == merged[0])
    }
}
