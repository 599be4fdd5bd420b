import IsthmusKubeTypes

/// Why the ingress gateways could not be derived from the cluster's objects.
/// The metadata service keeps its last good list and reports this.
public struct GatewayDiscoveryError: Error, Sendable, Hashable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// The objects ingress gateway discovery reads: the ingressgateway Service,
/// and for a NodePort Service the nodes and the pods in its namespace. As the
/// API server returns them (items of a list, as JSON).
public struct GatewayObjects: Sendable, Equatable {
    public var service: JSON
    public var nodes: [JSON]
    public var pods: [JSON]

    public init(service: JSON, nodes: [JSON] = [], pods: [JSON] = []) {
        self.service = service
        self.nodes = nodes
        self.pods = pods
    }
}

/// Where peers reach the ingress gateway, derived the way Deckhouse's
/// metadata exporter derives it (DESIGN §4), from the Service's port named
/// `tls` (Istio's multi-network gateway port, 15443 by default):
///
/// - `LoadBalancer`: every `status.loadBalancer.ingress[]` entry, its `ip`
///   (else its `hostname`), with the Service port;
/// - `NodePort`: the `nodePort`, on every node that is Ready, schedulable and
///   runs at least one ready pod the Service selects; each node's
///   `ExternalIP`, else its `InternalIP` (a peer on another network can reach
///   only the former, a peer on the same one either).
///
/// The result is sorted and without duplicates, so the private document (and
/// its ETag) changes only when an address does. Pure: the caller lists the objects.
public enum IngressGatewayDiscovery {
    /// The Service port peers connect to.
    public static let portName = "tls"

    public static func gateways(from objects: GatewayObjects) throws(GatewayDiscoveryError) -> [IngressGateway] {
        let service = objects.service
        let name = service.value(at: ["metadata", "name"])?.stringValue ?? "(unnamed)"
        let namespace = service.value(at: ["metadata", "namespace"])?.stringValue ?? ""
        let type = service.value(at: ["spec", "type"])?.stringValue ?? "ClusterIP"
        let ports = service.value(at: ["spec", "ports"])?.arrayValue ?? []
        guard let port = ports.first(where: { $0["name"]?.stringValue == portName }) else {
            throw GatewayDiscoveryError("service \(namespace)/\(name) has no port named \"\(portName)\"")
        }
        let gateways: [IngressGateway]
        switch type {
        case "LoadBalancer":
            guard let servicePort = port["port"]?.intValue else {
                throw GatewayDiscoveryError("service \(namespace)/\(name): port \"\(portName)\" has no port number")
            }
            let ingress = service.value(at: ["status", "loadBalancer", "ingress"])?.arrayValue ?? []
            gateways = ingress.compactMap { entry in
                let address = entry["ip"]?.stringValue.flatMap { $0.isEmpty ? nil : $0 }
                    ?? entry["hostname"]?.stringValue.flatMap { $0.isEmpty ? nil : $0 }
                return address.map { IngressGateway(address: $0, port: servicePort) }
            }
            guard !gateways.isEmpty else {
                throw GatewayDiscoveryError("LoadBalancer service \(namespace)/\(name) has no ingress address yet")
            }
        case "NodePort":
            guard let nodePort = port["nodePort"]?.intValue else {
                throw GatewayDiscoveryError("service \(namespace)/\(name): port \"\(portName)\" has no nodePort")
            }
            let selector = service.value(at: ["spec", "selector"])?.stringMap ?? [:]
            guard !selector.isEmpty else {
                // An empty selector selects no pods (its endpoints are managed by hand).
                throw GatewayDiscoveryError("NodePort service \(namespace)/\(name) has no selector, so no gateway pods")
            }
            let gatewayNodes = Set(objects.pods.compactMap { pod -> String? in
                guard pod.value(at: ["metadata", "namespace"])?.stringValue ?? namespace == namespace,
                      isSelected(pod, by: selector), isReady(pod) else { return nil }
                return pod.value(at: ["spec", "nodeName"])?.stringValue
            })
            gateways = objects.nodes.compactMap { node in
                guard let nodeName = node.value(at: ["metadata", "name"])?.stringValue, gatewayNodes.contains(nodeName),
                      isReady(node), node.value(at: ["spec", "unschedulable"])?.boolValue != true,
                      let address = preferredAddress(of: node)
                else { return nil }
                return IngressGateway(address: address, port: nodePort)
            }
            guard !gateways.isEmpty else {
                throw GatewayDiscoveryError(
                    "NodePort service \(namespace)/\(name): no ready, schedulable node runs a ready gateway pod")
            }
        default:
            throw GatewayDiscoveryError(
                "service \(namespace)/\(name) is of type \(type); only LoadBalancer and NodePort are reachable from other clusters")
        }
        return Array(Set(gateways)).sorted {
            ($0.address, $0.port) < ($1.address, $1.port)
        }
    }

    /// Every selector pair is among the pod's labels (a Service selector is equality-only).
    static func isSelected(_ pod: JSON, by selector: [String: String]) -> Bool {
        let labels = pod.value(at: ["metadata", "labels"])?.stringMap ?? [:]
        return selector.allSatisfy { labels[$0.key] == $0.value }
    }

    /// `status.conditions[type=Ready].status == "True"`, for pods and nodes alike;
    /// a terminating pod (deletionTimestamp set) is no longer a gateway.
    static func isReady(_ object: JSON) -> Bool {
        if object.value(at: ["metadata", "deletionTimestamp"]) != nil { return false }
        let conditions = object.value(at: ["status", "conditions"])?.arrayValue ?? []
        return conditions.contains { $0["type"]?.stringValue == "Ready" && $0["status"]?.stringValue == "True" }
    }

    static func preferredAddress(of node: JSON) -> String? {
        let addresses = node.value(at: ["status", "addresses"])?.arrayValue ?? []
        func first(_ type: String) -> String? {
            addresses.first { $0["type"]?.stringValue == type && !($0["address"]?.stringValue ?? "").isEmpty }?["address"]?.stringValue
        }
        return first("ExternalIP") ?? first("InternalIP")
    }
}

/// Where the metadata service gets the ingress gateway list. Configuration
/// gives a fixed one; discovery asks the API server (see ``DiscoveredGateways``).
public protocol GatewaySource: Sendable {
    func ingressGateways() async throws -> [IngressGateway]
}

/// A fixed list, from flags or the config file.
public struct ConfiguredGateways: GatewaySource {
    public var gateways: [IngressGateway]
    public init(_ gateways: [IngressGateway]) { self.gateways = gateways }
    public func ingressGateways() async throws -> [IngressGateway] { gateways }
}

/// Gateways discovered from the ingressgateway Service: `fetch` lists the
/// Service, nodes and pods (the I/O, e.g. with the Kubernetes client), and
/// ``IngressGatewayDiscovery`` decides.
public struct DiscoveredGateways: GatewaySource {
    public let fetch: @Sendable () async throws -> GatewayObjects

    public init(fetch: @escaping @Sendable () async throws -> GatewayObjects) {
        self.fetch = fetch
    }

    public func ingressGateways() async throws -> [IngressGateway] {
        try IngressGatewayDiscovery.gateways(from: await fetch())
    }
}
