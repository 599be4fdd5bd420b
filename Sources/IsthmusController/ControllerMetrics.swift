/// The metrics the controller exposes (Prometheus names). The wiring
/// creates them once at startup from these names; label values are bounded
/// by the number of IstioMulticluster objects.
public enum ControllerMetrics {
    /// Counter `{peer, document="public"|"private", reason}`: failed
    /// metadata fetches; `reason` is ``FetchFailure/reason`` (e.g.
    /// `EndpointUnreachable`, `TokenRefused`, `InvalidMetadata`). `peer` is
    /// the IstioMulticluster name (the endpoint is in its spec).
    public static let metadataFetchErrors = "isthmus_controller_metadata_fetch_errors_total"
    /// Gauge `{peer, document}`: Unix time of the last successful fetch.
    public static let metadataLastSuccess = "isthmus_controller_metadata_last_success_timestamp_seconds"
    /// Gauge `{peer}`: `exp` of the API token in the peer's remote secret;
    /// alert when it comes within a day of now (the controller re-mints at
    /// a third of the lifetime, so this means it is not running).
    public static let apiTokenExpiry = "isthmus_controller_api_token_expiry_timestamp_seconds"
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
        metadataFetchErrors, metadataLastSuccess, apiTokenExpiry, requirementViolations, peerReady, trustedPeers,
        writes, writeErrors,
    ]
}
