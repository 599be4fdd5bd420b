import Foundation
import IsthmusKubeTypes
import Synchronization

/// The `spec` of a coordination.k8s.io/v1 Lease, as leader election uses it.
public struct LeaseRecord: Sendable, Equatable {
    public var holderIdentity: String
    public var leaseDurationSeconds: Int
    public var acquireTime: String?
    public var renewTime: String?
    public var leaseTransitions: Int

    public init(holderIdentity: String, leaseDurationSeconds: Int, acquireTime: String? = nil, renewTime: String? = nil,
                leaseTransitions: Int = 0) {
        self.holderIdentity = holderIdentity
        self.leaseDurationSeconds = leaseDurationSeconds
        self.acquireTime = acquireTime
        self.renewTime = renewTime
        self.leaseTransitions = leaseTransitions
    }

    public init(spec: JSON?) {
        holderIdentity = spec?["holderIdentity"]?.stringValue ?? ""
        leaseDurationSeconds = spec?["leaseDurationSeconds"]?.intValue ?? 0
        acquireTime = spec?["acquireTime"]?.stringValue
        renewTime = spec?["renewTime"]?.stringValue
        leaseTransitions = spec?["leaseTransitions"]?.intValue ?? 0
    }

    public var spec: JSON {
        var members: [(String, JSON)] = [
            ("holderIdentity", .string(holderIdentity)), ("leaseDurationSeconds", .int(leaseDurationSeconds)),
        ]
        if let acquireTime { members.append(("acquireTime", .string(acquireTime))) }
        if let renewTime { members.append(("renewTime", .string(renewTime))) }
        members.append(("leaseTransitions", .int(leaseTransitions)))
        return .object(members)
    }
}

/// Leader election decisions as client-go makes them, free of I/O. Expiry is
/// judged by the local clock from when this candidate last saw the record
/// change, never from the timestamps in it, so clock skew between replicas
/// does not matter.
public struct LeaderElectionState: Sendable {
    public enum Decision: Sendable, Equatable {
        /// No Lease yet: create one holding it.
        case create(LeaseRecord)
        /// Write this record (take over, or renew our own), conditional on the read's resourceVersion.
        case write(LeaseRecord)
        /// Someone else holds a live lease: try again later.
        case wait(holder: String)
    }

    public let identity: String
    public let leaseDuration: Duration
    private var observed: LeaseRecord?
    private var observedAt: ContinuousClock.Instant?

    public init(identity: String, leaseDuration: Duration) {
        self.identity = identity
        self.leaseDuration = leaseDuration
    }

    /// What to do given the Lease as just read (nil: there is none), at `now`;
    /// `timestamp` is the wall-clock time written into the record.
    public mutating func decide(current: LeaseRecord?, now: ContinuousClock.Instant, timestamp: String) -> Decision {
        let seconds = Int(leaseDuration.components.seconds)
        guard let current else {
            return .create(LeaseRecord(holderIdentity: identity, leaseDurationSeconds: seconds,
                                       acquireTime: timestamp, renewTime: timestamp))
        }
        if observed != current {
            observed = current
            observedAt = now
        }
        let heldByOther = !current.holderIdentity.isEmpty && current.holderIdentity != identity
        if heldByOther, let observedAt {
            let duration = current.leaseDurationSeconds > 0 ? .seconds(current.leaseDurationSeconds) : leaseDuration
            if now < observedAt + duration { return .wait(holder: current.holderIdentity) }
        }
        var next = current
        next.leaseDurationSeconds = seconds
        next.renewTime = timestamp
        if current.holderIdentity != identity {
            next.holderIdentity = identity
            next.acquireTime = timestamp
            next.leaseTransitions = current.leaseTransitions + 1
        }
        return .write(next)
    }

    /// Our own write succeeded: remember it as observed, so a later read of it is not news.
    public mutating func wrote(_ record: LeaseRecord, now: ContinuousClock.Instant) {
        observed = record
        observedAt = now
    }
}

/// Runs work only while this replica holds a Lease (coordination.k8s.io/v1):
/// acquires it (taking over an expired one), renews it every `retryPeriod`,
/// and cancels the work when a renewal has not succeeded for `renewDeadline`.
/// On cancellation it releases the lease so another replica takes over at once.
public final class LeaderElector: Sendable {
    public struct Configuration: Sendable {
        public var namespace: String
        public var name: String
        /// Unique per replica (the pod name).
        public var identity: String
        public var leaseDuration: Duration = .seconds(15)
        public var renewDeadline: Duration = .seconds(10)
        public var retryPeriod: Duration = .seconds(2)
        public init(namespace: String, name: String, identity: String) {
            self.namespace = namespace
            self.name = name
            self.identity = identity
        }
    }

    public let client: KubeClient
    public let configuration: Configuration
    private let leading = Mutex(false)

    public init(client: KubeClient, configuration: Configuration) {
        self.client = client
        self.configuration = configuration
    }

    /// True while this replica holds the lease.
    public var isLeader: Bool { leading.withLock { $0 } }

    /// Campaigns until cancelled; runs `work` each time leadership is won,
    /// cancelling it when leadership is lost. `work` should run until
    /// cancelled; if it returns, the replica stops renewing and campaigns
    /// again (winning at once while the lease is still its own).
    public func run(_ work: @escaping @Sendable () async -> Void) async {
        let state = StateBox(LeaderElectionState(identity: configuration.identity, leaseDuration: configuration.leaseDuration))
        while !Task.isCancelled {
            if await tryAcquireOrRenew(state) {
                leading.withLock { $0 = true }
                await withTaskGroup(of: Void.self) { group in
                    group.addTask { await work() }
                    group.addTask { await self.renewLoop(state) }
                    // Whichever ends first (leadership lost, work done, cancelled) ends both.
                    await group.next()
                    group.cancelAll()
                }
                leading.withLock { $0 = false }
                if Task.isCancelled { break }
            }
            do { try await Task.sleep(for: configuration.retryPeriod) } catch { break }
        }
        // The calling task is cancelled, and a cancelled task's requests fail
        // at once: release from a task of its own.
        await Task { await self.release() }.value
    }

    /// Renews every retry period; returns when a renewal has failed for longer than the deadline, or on cancellation.
    private func renewLoop(_ state: StateBox) async {
        var lastRenewal = ContinuousClock.now
        while true {
            do { try await Task.sleep(for: configuration.retryPeriod) } catch { return }
            if await tryAcquireOrRenew(state) {
                lastRenewal = .now
            } else if ContinuousClock.now - lastRenewal >= configuration.renewDeadline {
                return
            }
        }
    }

    private final class StateBox: Sendable {
        let state: Mutex<LeaderElectionState>
        init(_ state: LeaderElectionState) { self.state = Mutex(state) }
    }

    private func tryAcquireOrRenew(_ box: StateBox) async -> Bool {
        let lease: JSON?
        do {
            lease = try await client.getIfPresent(.leases, namespace: configuration.namespace, name: configuration.name)
        } catch {
            return false
        }
        let current = lease.map { LeaseRecord(spec: $0["spec"]) }
        let decision = box.state.withLock { $0.decide(current: current, now: .now, timestamp: Self.microTime()) }
        switch decision {
        case .wait:
            return false
        case .create(let record):
            let object: JSON = .object([
                ("apiVersion", .string("coordination.k8s.io/v1")), ("kind", .string("Lease")),
                ("metadata", .object([("name", .string(configuration.name)), ("namespace", .string(configuration.namespace))])),
                ("spec", record.spec),
            ])
            guard (try? await client.create(.leases, namespace: configuration.namespace, object: object)) != nil else { return false }
            box.state.withLock { $0.wrote(record, now: .now) }
            return true
        case .write(let record):
            guard var object = lease else { return false }
            // The read's resourceVersion stays in the object: a concurrent writer makes this a conflict.
            object["spec"] = record.spec
            guard (try? await client.update(.leases, namespace: configuration.namespace, object: object)) != nil else { return false }
            box.state.withLock { $0.wrote(record, now: .now) }
            return true
        }
    }

    /// Gives the lease up (holder cleared, duration 1 s) if we still hold it.
    private func release() async {
        guard var lease = try? await client.getIfPresent(.leases, namespace: configuration.namespace, name: configuration.name),
              LeaseRecord(spec: lease["spec"]).holderIdentity == configuration.identity else { return }
        var record = LeaseRecord(spec: lease["spec"])
        record.holderIdentity = ""
        record.leaseDurationSeconds = 1
        lease["spec"] = record.spec
        _ = try? await client.update(.leases, namespace: configuration.namespace, object: lease)
    }

    /// RFC 3339 with microseconds, as a MicroTime.
    static func microTime(_ date: Date = Date()) -> String {
        let seconds = date.timeIntervalSince1970
        var t = time_t(seconds.rounded(.down))
        var parts = tm()
        gmtime_r(&t, &parts)
        let micros = Int((seconds - seconds.rounded(.down)) * 1_000_000)
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", parts.tm_year + 1900, parts.tm_mon + 1, parts.tm_mday,
                      parts.tm_hour, parts.tm_min, parts.tm_sec, micros)
    }
}
