import IsthmusController
import Testing

@Suite("Requirements for clusters")
struct RequirementsTests {
    static func local(_ domain: String? = "cluster.local", pods: String? = "10.111.0.0/16", services: String? = "10.222.0.0/16") -> ClusterNetworking {
        try! ClusterNetworking(clusterDomain: domain, podSubnetCIDR: pods, serviceSubnetCIDR: services)
    }

    struct Row: Sendable, CustomTestStringConvertible {
        var name: String
        var local: ClusterNetworking
        var peer: PrivateMetadata
        var status: Condition.Status
        var reason: String
        /// Fragments the message must contain (both clusters' values).
        var mentions: [String]
        var testDescription: String { name }
    }

    static let rows: [Row] = [
        .init(name: "disjoint IPv4 ranges, same domain", local: local(),
              peer: Fixtures.privateMetadata(pods: "10.112.0.0/16", services: "10.223.0.0/16"),
              status: .true, reason: "RequirementsMet", mentions: []),
        .init(name: "different clusterDomain", local: local(),
              peer: Fixtures.privateMetadata(clusterDomain: "k8s.example", pods: "10.112.0.0/16", services: "10.223.0.0/16"),
              status: .false, reason: "ClusterDomainMismatch", mentions: ["\"cluster.local\"", "\"k8s.example\""]),
        .init(name: "trailing dot is the same domain", local: local("cluster.local."),
              peer: Fixtures.privateMetadata(pods: "10.112.0.0/16", services: "10.223.0.0/16"),
              status: .true, reason: "RequirementsMet", mentions: []),
        .init(name: "identical pod subnets", local: local(),
              peer: Fixtures.privateMetadata(pods: "10.111.0.0/16", services: "10.223.0.0/16"),
              status: .false, reason: "PodSubnetOverlap", mentions: ["10.111.0.0/16"]),
        .init(name: "service subnet nested in the peer's", local: local(),
              peer: Fixtures.privateMetadata(pods: "10.112.0.0/16", services: "10.0.0.0/8"),
              status: .false, reason: "ServiceSubnetOverlap", mentions: ["10.222.0.0/16", "10.0.0.0/8"]),
        .init(name: "our pods in the peer's services", local: local(),
              peer: Fixtures.privateMetadata(pods: "10.112.0.0/16", services: "10.111.128.0/17"),
              status: .false, reason: "PodServiceSubnetOverlap", mentions: ["10.111.0.0/16", "10.111.128.0/17"]),
        .init(name: "IPv6 service subnets overlap in dual stack", local: local(services: "10.222.0.0/16,fd00:222::/108"),
              peer: Fixtures.privateMetadata(pods: "10.112.0.0/16", services: "10.223.0.0/16,fd00:222::/112"),
              status: .false, reason: "ServiceSubnetOverlap", mentions: ["fd00:222::/108", "fd00:222::/112"]),
        .init(name: "IPv6 disjoint, IPv4 disjoint", local: local(pods: "10.111.0.0/16,fd00:111::/56"),
              peer: Fixtures.privateMetadata(pods: "10.112.0.0/16,fd00:112::/56", services: "10.223.0.0/16"),
              status: .true, reason: "RequirementsMet", mentions: []),
        .init(name: "an IPv4 and an IPv6 range never collide", local: local(pods: "10.0.0.0/8", services: "10.222.0.0/16"),
              peer: Fixtures.privateMetadata(pods: "::ffff:10.0.0.0/104", services: "fd00::/108"),
              status: .true, reason: "RequirementsMet", mentions: []),
        .init(name: "domain and pods both wrong: all listed", local: local(),
              peer: Fixtures.privateMetadata(clusterDomain: "other.local", pods: "10.111.0.0/24", services: "10.223.0.0/16"),
              status: .false, reason: "ClusterDomainMismatch", mentions: ["other.local", "10.111.0.0/24"]),
        .init(name: "a Deckhouse peer publishes nothing to compare", local: local(),
              peer: Fixtures.privateMetadata(clusterDomain: nil, pods: nil, services: nil),
              status: .unknown, reason: "NotChecked", mentions: ["does not publish clusterDomain"]),
        .init(name: "unconfigured locally: only what can be compared", local: local(nil, pods: nil),
              peer: Fixtures.privateMetadata(pods: "10.112.0.0/16", services: "10.223.0.0/16"),
              status: .true, reason: "RequirementsMet", mentions: ["not checked", "clusterDomain is not configured"]),
    ]

    @Test("requirements matrix", arguments: rows)
    func matrix(_ row: Row) {
        let condition = RequirementsCheck(local: row.local, peer: row.peer).condition()
        #expect(condition.type == "RequirementsMet")
        #expect(condition.status == row.status)
        #expect(condition.reason == row.reason)
        for fragment in row.mentions {
            #expect(condition.message.contains(fragment), "\(condition.message)")
        }
    }

    @Test("local configuration errors name the field")
    func localConfiguration() {
        #expect(throws: SpecError(field: "serviceSubnetCIDR", problem: CIDRListError(item: "10.0.0.0").description)) {
            try ClusterNetworking(clusterDomain: "cluster.local", podSubnetCIDR: "10.0.0.0/8", serviceSubnetCIDR: "10.0.0.0")
        }
    }
}
