import ArgumentParser
import Foundation
import IsthmusController
import IsthmusControllerService
import IsthmusHTTP
import IsthmusKubeClient
import IsthmusTrust
import Logging

/// `isthmus controller`: turns IstioMulticluster objects into trust, remote
/// secrets and mesh networks (docs/controller.md).
struct ControllerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "controller",
        abstract: "Reconcile IstioMulticluster objects: trusted peers, istiod remote secrets, mesh networks, status.",
        discussion: """
            Creates the cluster key Secret when missing; for each IstioMulticluster fetches the peer's public \
            and private metadata, writes the trusted peers Secret, istio-remote-secret-<name>, the mesh networks \
            ConfigMap and the object's status. The API server is found as kubectl finds it (--kubeconfig, \
            $KUBECONFIG, the pod's service account, ~/.kube/config). Example: isthmus controller \
            --cluster-uuid $(cat cluster-uuid) --namespace isthmus-system --network-name network-b \
            --pod-cidr 10.112.0.0/16 --service-cidr 10.223.0.0/16 --admin-listen 0.0.0.0:9090
            """)

    @Option(help: "kubeconfig file (default: $KUBECONFIG, then the pod's service account, then ~/.kube/config).")
    var kubeconfig: String?

    @Option(help: "kubeconfig context (default: its current-context).")
    var context: String?

    @Option(help: "This cluster's UUID: `sub` of the tokens it mints, and its identity to peers.")
    var clusterUUID: String?

    @Option(help: "Namespace of the key Secret, the trusted peers Secret and the Lease.")
    var namespace = "isthmus-system"

    @Option(help: "Secret holding this cluster's Ed25519 key pair (created when missing).")
    var keySecret = ClusterKeySecret.defaultName

    @Option(help: "Trusted peers Secret the proxy and the metadata service mount.")
    var peersSecret = "isthmus-trusted-peers"

    @Option(help: "Key of the trusted peers file in --peers-secret.")
    var peersSecretKey = "peers.json"

    @Option(help: "Namespace where istiod reads remote secrets and the mesh networks ConfigMap.")
    var istioNamespace = "istio-system"

    @Option(help: "ConfigMap for Istio's meshNetworks (may be Istio's own `istio` ConfigMap; other keys are kept).")
    var meshNetworksConfigMap = "isthmus-mesh-networks"

    @Option(help: "Key of meshNetworks in --mesh-networks-configmap.")
    var meshNetworksKey = "meshNetworks"

    @Option(help: "This cluster's Istio network name (puts the local registry into meshNetworks).")
    var networkName: String?

    @Option(help: "istiod's cluster ID (values.global.multiCluster.clusterName).")
    var istioClusterID: String?

    @Option(help: "This cluster's DNS domain, compared with each peer's.")
    var clusterDomain: String?

    @Option(help: "Pod CIDRs, comma-separated, IPv4 and/or IPv6; must not overlap a peer's.")
    var podCIDR: String?

    @Option(help: "Service CIDRs, comma-separated, IPv4 and/or IPv6; must not overlap a peer's.")
    var serviceCIDR: String?

    @Option(help: "Lifetime of the API tokens in remote secrets, e.g. 7d; re-minted when a third is left.")
    var tokenTTL = "7d"

    @Option(help: "How often each peer's metadata is fetched again, e.g. 60s.")
    var refetchInterval = "60s"

    @Option(help: "How often a round runs without any event (repairs edited or deleted Secrets), e.g. 30s.")
    var resyncInterval = "30s"

    @Flag(inversion: .prefixedEnableDisable,
          help: "Withhold the remote secret of a peer whose clusterDomain differs or whose CIDRs overlap ours.")
    var requirements = true

    @Flag(help: "Reconcile only while holding a Lease (for several replicas); implied by --leader-election-lease.")
    var leaderElect = false

    @Option(help: "Name of the Lease in --namespace (default: isthmus-controller).")
    var leaderElectionLease: String?

    @Option(help: "This replica's identity in the Lease (default: $POD_NAME, else the host name).")
    var leaderElectionIdentity: String?

    @Option(help: "Admin address for /healthz, /readyz and /metrics, HOST:PORT (default: none).")
    var adminListen: String?

    @OptionGroup(title: "Logging") var logging: LoggingOptions

    /// A configuration problem: one line naming the flag, exit status 2.
    struct ConfigurationProblem: Error, CustomStringConvertible {
        var flag: String
        var problem: String
        var description: String { "\(flag): \(problem)" }
    }

    /// The service configuration the flags describe, or the first problem.
    func serviceConfiguration(environment: [String: String] = ProcessInfo.processInfo.environment) throws(ConfigurationProblem)
        -> (ControllerServiceConfiguration, admin: (host: String, port: Int)?)
    {
        guard let clusterUUID, !clusterUUID.isEmpty else { throw ConfigurationProblem(flag: "--cluster-uuid", problem: "must be set") }
        guard TrustedPeer.isValidClusterID(clusterUUID) else {
            throw ConfigurationProblem(flag: "--cluster-uuid", problem: "'\(clusterUUID)' is not a valid cluster ID")
        }
        func seconds(_ flag: String, _ text: String) throws(ConfigurationProblem) -> Int64 {
            guard let value = parseDurationSeconds(text), value > 0 else {
                throw ConfigurationProblem(flag: flag, problem: "must be a duration like 90s, 15m or 7d, got '\(text)'")
            }
            return value
        }
        let ttl = try seconds("--token-ttl", tokenTTL)
        let refetch = try seconds("--refetch-interval", refetchInterval)
        let resync = try seconds("--resync-interval", resyncInterval)
        var admin: (host: String, port: Int)?
        if let adminListen {
            guard let split = APIServerCommand.split(adminListen) else {
                throw ConfigurationProblem(flag: "--admin-listen", problem: "must be HOST:PORT, got '\(adminListen)'")
            }
            admin = split
        }
        for (flag, value) in [("--namespace", namespace), ("--key-secret", keySecret), ("--peers-secret", peersSecret),
                              ("--istio-namespace", istioNamespace), ("--mesh-networks-configmap", meshNetworksConfigMap)]
        where value.isEmpty {
            throw ConfigurationProblem(flag: flag, problem: "must not be empty")
        }
        let networking: ClusterNetworking
        do {
            networking = try ClusterNetworking(clusterDomain: clusterDomain, podSubnetCIDR: podCIDR, serviceSubnetCIDR: serviceCIDR)
        } catch {
            throw ConfigurationProblem(flag: error.field == "podSubnetCIDR" ? "--pod-cidr" : "--service-cidr", problem: error.problem)
        }
        let kube: KubeClientConfiguration
        do {
            kube = try KubeClientConfiguration.resolve(kubeconfig: kubeconfig, context: context, environment: environment)
        } catch {
            throw ConfigurationProblem(flag: "--kubeconfig", problem: error.description)
        }
        var configuration = ControllerServiceConfiguration(kube: kube, clusterUUID: clusterUUID, namespace: namespace)
        configuration.keySecretName = keySecret
        configuration.peersSecretName = peersSecret
        configuration.peersSecretKey = peersSecretKey
        configuration.istioNamespace = istioNamespace
        configuration.meshNetworksConfigMapName = meshNetworksConfigMap
        configuration.meshNetworksConfigMapKey = meshNetworksKey
        configuration.networking = networking
        configuration.networkName = networkName.flatMap { $0.isEmpty ? nil : $0 }
        configuration.istioClusterID = istioClusterID.flatMap { $0.isEmpty ? nil : $0 }
        configuration.tokenPolicy = APITokenPolicy(lifetime: ttl)
        configuration.schedule = RefetchSchedule(period: .seconds(refetch), initialBackoff: .seconds(min(5, refetch)))
        configuration.resyncInterval = .seconds(resync)
        configuration.enforceRequirements = requirements
        if leaderElect || leaderElectionLease != nil {
            let identity = leaderElectionIdentity ?? environment["POD_NAME"] ?? ProcessInfo.processInfo.hostName
            configuration.leaderElection = LeaderElector.Configuration(
                namespace: namespace, name: leaderElectionLease ?? "isthmus-controller", identity: identity)
        }
        return (configuration, admin)
    }

    func run() async throws {
        logging.bootstrap()
        let logger = Logger(label: "isthmus.controller")
        let (configuration, adminAddress): (ControllerServiceConfiguration, (host: String, port: Int)?)
        do {
            (configuration, adminAddress) = try serviceConfiguration()
        } catch {
            printError("isthmus controller: \(error)")
            throw ExitCode(2)
        }
        let service: ControllerService
        do {
            service = try ControllerService(configuration: configuration, logger: logger, metrics: ProcessMetrics.exporter)
        } catch {
            printError("isthmus controller: --kubeconfig: \(error)")
            throw ExitCode(2)
        }
        var admin: AdminServer? = nil
        if let adminAddress {
            admin = try await AdminServer.start(host: adminAddress.host, port: adminAddress.port,
                                                ready: { service.isReady }, metrics: service.exporter)
        }
        let adminText = admin.map { ", admin http://\(adminAddress?.host ?? ""):\($0.port)" } ?? ""
        // Shut down in reverse: the rounds stop first, then the admin port closes.
        let server = ServerService(announce: {
            logger.info("cluster \(configuration.clusterUUID), API server \(configuration.kube.server)\(adminText)")
        }, stop: { [admin] in
            logger.info("shutting down")
            try? await admin?.close()
        })
        do {
            try await runServices([server, LoopService { try await service.run() }], logger: logger)
        } catch {
            printError("isthmus controller: \(error)")
            throw ExitCode(1)
        }
    }
}
