/// The metrics the controller exposes (Prometheus names). The wiring
/// creates them once at startup from these names; label values are bounded
/// by the number of IstioMulticluster objects.
public enum ControllerMetrics {
    /// Counter `{peer, endpoint, document="public"|"private", reason}`:
    /// failed metadata fetches; `peer` is the IstioMulticluster name,
    /// `endpoint` its metadata endpoint, `reason` ``FetchFailure/reason``
    /// (e.g. `EndpointUnreachable`, `TokenRefused`, `InvalidMetadata`).
    public static let metadataFetchErrors = "isthmus_controller_metadata_fetch_errors_total"
    /// Gauge `{peer, document}`: Unix time of the last successful fetch.
    public static let metadataLastSuccess = "isthmus_controller_metadata_last_success_timestamp_seconds"
    /// Gauge `{peer}`: `exp` of the API token in the peer's remote secret;
    /// alert when it comes within a day of now (the controller re-mints at
    /// a third of the lifetime, so this means it is not running).
    public static let apiTokenExpiry = "isthmus_controller_remote_token_expiry_timestamp_seconds"
    /// Gauge `{peer}`: 1 when the peer's apiHost answered the last probe
    /// through its proxy (`/readyz` or `/version` with the remote secret's
    /// kubeconfig), else 0. Measured by the wiring, not by the planner.
    public static let peerAPIUp = "isthmus_controller_peer_api_up"
    /// Gauge `{peer, requirement}`: 1 while a requirement is violated
    /// (`requirement` is ``RequirementViolation/reason``), else 0.
    public static let requirementViolations = "isthmus_controller_requirement_violations"
    /// Gauge `{peer}`: 1 when the peer's `Ready` condition is True.
    public static let peerReady = "isthmus_controller_peer_ready"
    /// Gauge: peers in the trusted peers Secret.
    public static let trustedPeers = "isthmus_controller_trusted_peers"
    /// Counter `{action="create"|"update"|"delete"|"patchStatus", kind}`:
    /// writes made; flat on a settled system (plans are idempotent).
    public static let writes = "isthmus_controller_writes_total"
    /// Counter `{kind}`: writes that failed (conflicts included).
    public static let writeErrors = "isthmus_controller_write_errors_total"

    /// Every name, for documentation tests and the wiring.
    public static let all = [
        metadataFetchErrors, metadataLastSuccess, apiTokenExpiry, peerAPIUp, requirementViolations, peerReady, trustedPeers,
        writes, writeErrors,
    ]
}

/// One gauge value, ready for the metrics backend.
public struct MetricSample: Sendable, Hashable {
    public var name: String
    public var labels: [String: String]
    public var value: Double

    /// One sample of the gauge `name`.
    public init(name: String, labels: [String: String], value: Double) {
        self.name = name
        self.labels = labels
        self.value = value
    }
}

extension DesiredState {
    /// The gauges this round determines: readiness, token expiry and every
    /// requirement (0 or 1, so a fixed violation drops back to 0) per peer,
    /// and the trusted peer count. Counters and fetch times are the
    /// wiring's, which sees each fetch.
    public func gaugeSamples() -> [MetricSample] {
        var out: [MetricSample] = []
        for peer in peers {
            let ready = peer.conditions.first { $0.type == ConditionType.ready }?.status == .true
            out.append(MetricSample(name: ControllerMetrics.peerReady, labels: ["peer": peer.name], value: ready ? 1 : 0))
            if let expiry = peer.apiTokenExpiresAt {
                out.append(MetricSample(name: ControllerMetrics.apiTokenExpiry, labels: ["peer": peer.name], value: Double(expiry)))
            }
            let violated = Set(peer.requirements?.violations.map(\.reason) ?? [])
            for requirement in RequirementViolation.allReasons {
                out.append(MetricSample(
                    name: ControllerMetrics.requirementViolations, labels: ["peer": peer.name, "requirement": requirement],
                    value: violated.contains(requirement) ? 1 : 0))
            }
        }
        out.append(MetricSample(name: ControllerMetrics.trustedPeers, labels: [:], value: Double(trustedPeers.count)))
        return out
    }
}
