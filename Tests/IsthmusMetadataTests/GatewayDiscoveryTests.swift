import IsthmusKubeTypes
@testable import IsthmusMetadata
import Testing

/// Objects shaped as kube-apiserver 1.32 returns them (trimmed of fields
/// discovery does not read, but with the neighbours it must skip over).
enum GatewayObjectFixtures {
    static func service(type: String, tlsNodePort: Int? = 31443, ingress: String = "[]", selector: String? = #"{"app":"ingressgateway","istio.io/rev":"v1x21"}"#) -> JSON {
        let nodePort = tlsNodePort.map { #","nodePort":\#($0)"# } ?? ""
        let selectorMember = selector.map { #","selector":\#($0)"# } ?? ""
        let text = #"""
        {"kind":"Service","apiVersion":"v1","metadata":{"name":"ingressgateway","namespace":"d8-istio","uid":"9a2c0c35-5b0e-4f0c-8d1f-1f0e7c9d2b11","resourceVersion":"48213"},
         "spec":{"ports":[{"name":"http-status","protocol":"TCP","port":15021,"targetPort":15021,"nodePort":30021},
                          {"name":"tls","protocol":"TCP","port":15443,"targetPort":15443\#(nodePort)}]\#(selectorMember),
                 "clusterIP":"10.222.31.7","type":"\#(type)","externalTrafficPolicy":"Local"},
         "status":{"loadBalancer":{"ingress":\#(ingress)}}}
        """#
        return (try? JSON(parsing: text)) ?? .null
    }

    static func node(_ name: String, ready: Bool = true, unschedulable: Bool = false,
                     internalIP: String? = nil, externalIP: String? = nil) -> JSON {
        var addresses: [JSON] = [.object([("type", .string("Hostname")), ("address", .string(name))])]
        if let internalIP { addresses.append(.object([("type", .string("InternalIP")), ("address", .string(internalIP))])) }
        if let externalIP { addresses.append(.object([("type", .string("ExternalIP")), ("address", .string(externalIP))])) }
        var spec: [(String, JSON)] = [("podCIDR", .string("10.111.1.0/24"))]
        if unschedulable { spec.append(("unschedulable", .bool(true))) }
        return .object([
            ("kind", .string("Node")), ("apiVersion", .string("v1")),
            ("metadata", .object([("name", .string(name)), ("labels", .object([("kubernetes.io/hostname", .string(name))]))])),
            ("spec", .object(spec)),
            ("status", .object([
                ("conditions", .array([
                    .object([("type", .string("MemoryPressure")), ("status", .string("False"))]),
                    .object([("type", .string("Ready")), ("status", .string(ready ? "True" : "Unknown")),
                             ("reason", .string(ready ? "KubeletReady" : "NodeStatusUnknown"))]),
                ])),
                ("addresses", .array(addresses)),
            ])),
        ])
    }

    static func pod(_ name: String, node: String, ready: Bool = true, labels: [(String, String)]? = nil,
                    namespace: String = "d8-istio", terminating: Bool = false) -> JSON {
        let podLabels = labels ?? [("app", "ingressgateway"), ("istio.io/rev", "v1x21"), ("pod-template-hash", "5d8f")]
        var metadata: [(String, JSON)] = [("name", .string(name)), ("namespace", .string(namespace)),
                                          ("labels", .object(podLabels.map { ($0.0, .string($0.1)) }))]
        if terminating { metadata.append(("deletionTimestamp", .string("2026-11-25T19:00:00Z"))) }
        return .object([
            ("kind", .string("Pod")), ("apiVersion", .string("v1")),
            ("metadata", .object(metadata)),
            ("spec", .object([("nodeName", .string(node))])),
            ("status", .object([
                ("phase", .string("Running")),
                ("conditions", .array([
                    .object([("type", .string("PodScheduled")), ("status", .string("True"))]),
                    .object([("type", .string("Ready")), ("status", .string(ready ? "True" : "False"))]),
                ])),
            ])),
        ])
    }
}

@Suite("ingress gateway discovery")
struct GatewayDiscoveryTests {
    typealias F = GatewayObjectFixtures

    @Test("LoadBalancer: each ingress entry's ip, else hostname, with the port named tls")
    func loadBalancer() throws {
        let service = F.service(type: "LoadBalancer",
                                ingress: #"[{"ip":"203.0.113.20","ipMode":"VIP"},{"hostname":"gw-a.elb.example.com"},{"ip":"203.0.113.10","hostname":"ignored.example.com"}]"#)
        let gateways = try IngressGatewayDiscovery.gateways(from: GatewayObjects(service: service))
        #expect(gateways == [
            IngressGateway(address: "203.0.113.10", port: 15443),
            IngressGateway(address: "203.0.113.20", port: 15443),
            IngressGateway(address: "gw-a.elb.example.com", port: 15443),
        ])
    }

    @Test("LoadBalancer without an address yet is an error, not an empty list")
    func loadBalancerPending() {
        #expect(throws: GatewayDiscoveryError("LoadBalancer service d8-istio/ingressgateway has no ingress address yet")) {
            try IngressGatewayDiscovery.gateways(from: GatewayObjects(service: F.service(type: "LoadBalancer")))
        }
    }

    struct NodePortRow: Sendable, CustomStringConvertible {
        var description: String
        var nodes: [JSON]
        var pods: [JSON]
        var want: [IngressGateway]
    }

    static let nodePortRows: [NodePortRow] = [
        NodePortRow(description: "ExternalIP is preferred over InternalIP",
                    nodes: [F.node("a", internalIP: "192.168.0.1", externalIP: "198.51.100.1")],
                    pods: [F.pod("gw-1", node: "a")],
                    want: [IngressGateway(address: "198.51.100.1", port: 31443)]),
        NodePortRow(description: "InternalIP when the node has no ExternalIP",
                    nodes: [F.node("a", internalIP: "192.168.0.1")],
                    pods: [F.pod("gw-1", node: "a")],
                    want: [IngressGateway(address: "192.168.0.1", port: 31443)]),
        NodePortRow(description: "only nodes running a gateway pod, one entry per node however many pods",
                    nodes: [F.node("a", internalIP: "192.168.0.1"), F.node("b", internalIP: "192.168.0.2"),
                            F.node("c", internalIP: "192.168.0.3")],
                    pods: [F.pod("gw-1", node: "c"), F.pod("gw-2", node: "a"), F.pod("gw-3", node: "a")],
                    want: [IngressGateway(address: "192.168.0.1", port: 31443), IngressGateway(address: "192.168.0.3", port: 31443)]),
        NodePortRow(description: "a node that is not Ready is skipped",
                    nodes: [F.node("a", ready: false, internalIP: "192.168.0.1"), F.node("b", internalIP: "192.168.0.2")],
                    pods: [F.pod("gw-1", node: "a"), F.pod("gw-2", node: "b")],
                    want: [IngressGateway(address: "192.168.0.2", port: 31443)]),
        NodePortRow(description: "a cordoned (unschedulable) node is skipped",
                    nodes: [F.node("a", unschedulable: true, internalIP: "192.168.0.1"), F.node("b", internalIP: "192.168.0.2")],
                    pods: [F.pod("gw-1", node: "a"), F.pod("gw-2", node: "b")],
                    want: [IngressGateway(address: "192.168.0.2", port: 31443)]),
        NodePortRow(description: "unready, terminating, unselected and other-namespace pods do not count",
                    nodes: [F.node("a", internalIP: "192.168.0.1"), F.node("b", internalIP: "192.168.0.2"),
                            F.node("c", internalIP: "192.168.0.3"), F.node("d", internalIP: "192.168.0.4"),
                            F.node("e", internalIP: "192.168.0.5")],
                    pods: [F.pod("gw-1", node: "a", ready: false), F.pod("gw-2", node: "b", terminating: true),
                           F.pod("web", node: "c", labels: [("app", "web")]),
                           F.pod("gw-other", node: "d", namespace: "istio-system"), F.pod("gw-5", node: "e")],
                    want: [IngressGateway(address: "192.168.0.5", port: 31443)]),
        NodePortRow(description: "a pod must carry every selector label",
                    nodes: [F.node("a", internalIP: "192.168.0.1"), F.node("b", internalIP: "192.168.0.2")],
                    pods: [F.pod("gw-old-rev", node: "a", labels: [("app", "ingressgateway"), ("istio.io/rev", "v1x19")]),
                           F.pod("gw-1", node: "b")],
                    want: [IngressGateway(address: "192.168.0.2", port: 31443)]),
    ]

    @Test("NodePort: the tls nodePort on ready, schedulable nodes that run ready gateway pods", arguments: nodePortRows)
    func nodePort(_ row: NodePortRow) throws {
        let objects = GatewayObjects(service: F.service(type: "NodePort"), nodes: row.nodes, pods: row.pods)
        #expect(try IngressGatewayDiscovery.gateways(from: objects) == row.want)
    }

    @Test("discovery failures say what is missing", arguments: [
        (F.service(type: "ClusterIP"), "of type ClusterIP"),
        (F.service(type: "NodePort", tlsNodePort: nil), "has no nodePort"),
        (F.service(type: "NodePort", selector: nil), "has no selector"),
        (F.service(type: "NodePort"), "no ready, schedulable node runs a ready gateway pod"),
    ])
    func failures(_ service: JSON, _ message: String) {
        do {
            let gateways = try IngressGatewayDiscovery.gateways(
                from: GatewayObjects(service: service, nodes: [F.node("a", ready: false, internalIP: "192.168.0.1")],
                                     pods: [F.pod("gw-1", node: "a")]))
            Issue.record("expected an error, got \(gateways)")
        } catch {
            #expect(error.message.contains(message), "\(error.message)")
        }
    }

    @Test("a service without a port named tls is refused")
    func noTLSPort() throws {
        var service = F.service(type: "LoadBalancer", ingress: #"[{"ip":"203.0.113.20"}]"#)
        service.setValue(.array([.object([("name", .string("https")), ("port", .int(443))])]), at: ["spec", "ports"])
        #expect(throws: GatewayDiscoveryError(#"service d8-istio/ingressgateway has no port named "tls""#)) {
            try IngressGatewayDiscovery.gateways(from: GatewayObjects(service: service))
        }
    }

    @Test("DiscoveredGateways runs the fetch closure through discovery")
    func discoveredSource() async throws {
        let source = DiscoveredGateways {
            GatewayObjects(service: F.service(type: "LoadBalancer", ingress: #"[{"ip":"203.0.113.20"}]"#))
        }
        #expect(try await source.ingressGateways() == [IngressGateway(address: "203.0.113.20", port: 15443)])
    }
}
