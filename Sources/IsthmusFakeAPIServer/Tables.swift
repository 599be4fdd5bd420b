import Foundation
import IsthmusKubeTypes

/// One `additionalPrinterColumns` entry of a CRD version.
public struct PrinterColumn: Sendable, Hashable {
    public var name: String
    /// `string`, `integer`, `number`, `boolean` or `date`.
    public var type: String
    public var format: String
    public var description: String
    public var priority: Int
    public var jsonPath: String

    public init(name: String, type: String, format: String = "", description: String = "", priority: Int = 0, jsonPath: String) {
        self.name = name
        self.type = type
        self.format = format
        self.description = description
        self.priority = priority
        self.jsonPath = jsonPath
    }

    /// The columns of a CRD version, or `nil` when it declares none.
    static func columns(fromCRDVersion version: JSON) -> [PrinterColumn]? {
        guard let raw = version["additionalPrinterColumns"]?.arrayValue, !raw.isEmpty else { return nil }
        return raw.compactMap { c in
            guard let name = c["name"]?.stringValue, let path = c["jsonPath"]?.stringValue else { return nil }
            return PrinterColumn(name: name, type: c["type"]?.stringValue ?? "string", format: c["format"]?.stringValue ?? "",
                                 description: c["description"]?.stringValue ?? "", priority: c["priority"]?.intValue ?? 0, jsonPath: path)
        }
    }
}

/// `meta.k8s.io/v1` Tables for `kubectl get`: the columns kube-apiserver's
/// printers serve for built-in kinds, a CRD's `additionalPrinterColumns`
/// (Name and Age when it declares none), and Name/Created At otherwise.
enum Tables {
    struct Column {
        var name: String
        var type = "string"
        var format = ""
        var description: String
        var priority = 0
        var json: JSON {
            .object([("name", .string(name)), ("type", .string(type)), ("format", .string(format)),
                     ("description", .string(description)), ("priority", .int(priority))])
        }
    }

    static let nameDescription = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names"
    static let ageDescription = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"
    static let name = Column(name: "Name", format: "name", description: nameDescription)
    static let age = Column(name: "Age", description: ageDescription)

    static func table(_ result: ListResult, now: Date = Date()) -> JSON {
        var metadata: [(String, JSON)] = [("resourceVersion", .string(String(result.resourceVersion)))]
        if let c = result.continueToken { metadata.append(("continue", .string(c))) }
        if let remaining = result.remainingItemCount { metadata.append(("remainingItemCount", .int(remaining))) }
        let (columns, cells) = printer(for: result.type, now: now)
        let rows: [JSON] = result.items.map { item in
            .object([
                ("cells", .array(cells(item))),
                ("object", .object([("kind", .string("PartialObjectMetadata")), ("apiVersion", .string("meta.k8s.io/v1")),
                                    ("metadata", item["metadata"] ?? .object([]))])),
            ])
        }
        return .object([("kind", .string("Table")), ("apiVersion", .string("meta.k8s.io/v1")), ("metadata", .object(metadata)),
                        ("columnDefinitions", .array(columns.map(\.json))), ("rows", .array(rows))])
    }

    /// The column definitions of a type and the function that fills one row.
    static func printer(for type: ResourceType, now: Date) -> ([Column], (JSON) -> [JSON]) {
        func s(_ object: JSON, _ path: String...) -> String? { object.value(at: path)?.stringValue }
        func nameCell(_ o: JSON) -> JSON { .string(s(o, "metadata", "name") ?? "") }
        func ageCell(_ o: JSON) -> JSON { .string(age(s(o, "metadata", "creationTimestamp"), now: now)) }
        func count(_ o: JSON, _ keys: String...) -> Int {
            keys.reduce(0) { $0 + (o[$1]?.objectValue?.count ?? o[$1]?.arrayValue?.count ?? 0) }
        }
        if type.isCustom {
            let custom = type.printerColumns ?? [PrinterColumn(name: "Age", type: "date", description: ageDescription,
                                                               jsonPath: ".metadata.creationTimestamp")]
            let columns = [name] + custom.map { Column(name: $0.name, type: $0.type, format: $0.format, description: $0.description, priority: $0.priority) }
            return (columns, { o in [nameCell(o)] + custom.map { customCell($0, o, now: now) } })
        }
        switch (type.group, type.resource) {
        case ("", "namespaces"):
            return ([name, Column(name: "Status", description: "The status of the namespace"), age],
                    { o in [nameCell(o), .string(s(o, "status", "phase") ?? ""), ageCell(o)] })
        case ("", "services"):
            return ([name,
                     Column(name: "Type", description: "type determines how the Service is exposed. Defaults to ClusterIP. Valid options are ExternalName, ClusterIP, NodePort, and LoadBalancer. \"ClusterIP\" allocates a cluster-internal IP address for load-balancing to endpoints. Endpoints are determined by the selector or if that is not specified, by manual construction of an Endpoints object or EndpointSlice objects. If clusterIP is \"None\", no virtual IP is allocated and the endpoints are published as a set of endpoints rather than a virtual IP. \"NodePort\" builds on ClusterIP and allocates a port on every node which routes to the same endpoints as the clusterIP. \"LoadBalancer\" builds on NodePort and creates an external load-balancer (if supported in the current cloud) which routes to the same endpoints as the clusterIP. \"ExternalName\" aliases this service to the specified externalName. Several other fields do not apply to ExternalName services. More info: https://kubernetes.io/docs/concepts/services-networking/service/#publishing-services-service-types"),
                     Column(name: "Cluster-IP", description: "clusterIP is the IP address of the service and is usually assigned randomly. If an address is specified manually, is in-range (as per system configuration), and is not in use, it will be allocated to the service; otherwise creation of the service will fail. This field may not be changed through updates unless the type field is also being changed to ExternalName (which requires this field to be blank) or the type field is being changed from ExternalName (in which case this field may optionally be specified, as describe above).  Valid values are \"None\", empty string (\"\"), or a valid IP address. Setting this to \"None\" makes a \"headless service\" (no virtual IP), which is useful when direct endpoint connections are preferred and proxying is not required.  Only applies to types ClusterIP, NodePort, and LoadBalancer. If this field is specified when creating a Service of type ExternalName, creation will fail. This field will be wiped when updating a Service to type ExternalName. More info: https://kubernetes.io/docs/concepts/services-networking/service/#virtual-ips-and-service-proxies"),
                     Column(name: "External-IP", description: "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.  These IPs are not managed by Kubernetes.  The user is responsible for ensuring that traffic arrives at a node with this IP.  A common example is external load-balancers that are not part of the Kubernetes system."),
                     Column(name: "Port(s)", description: "The list of ports that are exposed by this service. More info: https://kubernetes.io/docs/concepts/services-networking/service/#virtual-ips-and-service-proxies"),
                     age,
                     Column(name: "Selector", description: "Route service traffic to pods with label keys and values matching this selector. If empty or not present, the service is assumed to have an external process managing its endpoints, which Kubernetes will not modify. Only applies to types ClusterIP, NodePort, and LoadBalancer. Ignored if type is ExternalName. More info: https://kubernetes.io/docs/concepts/services-networking/service/", priority: 1)],
                    { o in [nameCell(o), .string(s(o, "spec", "type") ?? ""), .string(nonEmpty(s(o, "spec", "clusterIP"))),
                            .string(serviceExternalIP(o)), .string(servicePorts(o)), ageCell(o), .string(selector(o.value(at: ["spec", "selector"])))] })
        case ("", "pods"):
            return ([name,
                     Column(name: "Ready", description: "The aggregate readiness state of this pod for accepting traffic."),
                     Column(name: "Status", description: "The aggregate status of the containers in this pod."),
                     Column(name: "Restarts", description: "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."),
                     age,
                     Column(name: "IP", description: "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.", priority: 1),
                     Column(name: "Node", description: "NodeName indicates in which node this pod is scheduled. If empty, this pod is a candidate for scheduling by the scheduler defined in schedulerName. Once this field is set, the kubelet for this node becomes responsible for the lifecycle of this pod. This field should not be used to express a desire for the pod to be scheduled on a specific node. https://kubernetes.io/docs/concepts/scheduling-eviction/assign-pod-node/#nodename", priority: 1)],
                    { o in
                        let statuses = o.value(at: ["status", "containerStatuses"])?.arrayValue ?? []
                        let total = o.value(at: ["spec", "containers"])?.arrayValue?.count ?? 0
                        let ready = statuses.filter { $0["ready"]?.boolValue == true }.count
                        let restarts = statuses.reduce(0) { $0 + ($1["restartCount"]?.intValue ?? 0) }
                        return [nameCell(o), .string("\(ready)/\(total)"), .string(podStatus(o)), .string(String(restarts)), ageCell(o),
                                .string(s(o, "status", "podIP") ?? "<none>"), .string(s(o, "spec", "nodeName") ?? "<none>")]
                    })
        case ("", "configmaps"):
            return ([name, Column(name: "Data", description: "Data contains the configuration data. Each key must consist of alphanumeric characters, '-', '_' or '.'. Values with non-UTF-8 byte sequences must use the BinaryData field. The keys stored in Data must not overlap with the keys in the BinaryData field, this is enforced during validation process."), age],
                    { o in [nameCell(o), .int(count(o, "data", "binaryData")), ageCell(o)] })
        case ("", "secrets"):
            return ([name, Column(name: "Type", description: "Used to facilitate programmatic handling of secret data. More info: https://kubernetes.io/docs/concepts/configuration/secret/#secret-types"),
                     Column(name: "Data", description: "Data contains the secret data. Each key must consist of alphanumeric characters, '-', '_' or '.'. The serialized form of the secret data is a base64 encoded string, representing the arbitrary (possibly non-string) data value here. Described in https://tools.ietf.org/html/rfc4648#section-4"), age],
                    { o in [nameCell(o), .string(s(o, "type") ?? "Opaque"), .int(count(o, "data")), ageCell(o)] })
        case ("", "serviceaccounts"):
            return ([name, Column(name: "Secrets", description: "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use."), age],
                    { o in [nameCell(o), .int(count(o, "secrets")), ageCell(o)] })
        case ("", "nodes"):
            return ([name, Column(name: "Status", description: "The status of the node"), Column(name: "Roles", description: "The roles of the node"), age,
                     Column(name: "Version", description: "Kubelet Version reported by the node."),
                     Column(name: "Internal-IP", description: "List of addresses reachable to the node. Queried from cloud provider, if available.", priority: 1),
                     Column(name: "External-IP", description: "List of addresses reachable to the node. Queried from cloud provider, if available.", priority: 1)],
                    { o in
                        let addresses = o.value(at: ["status", "addresses"])?.arrayValue ?? []
                        func address(_ kind: String) -> String {
                            addresses.first { $0["type"]?.stringValue == kind }?["address"]?.stringValue ?? "<none>"
                        }
                        return [nameCell(o), .string(nodeStatus(o)), .string(nodeRoles(o)), ageCell(o),
                                .string(s(o, "status", "nodeInfo", "kubeletVersion") ?? ""), .string(address("InternalIP")), .string(address("ExternalIP"))]
                    })
        case ("", "endpoints"):
            return ([name, Column(name: "Endpoints", description: "Endpoints of the service"), age],
                    { o in [nameCell(o), .string(endpointsAddresses(o)), ageCell(o)] })
        case ("discovery.k8s.io", "endpointslices"):
            return ([name, Column(name: "AddressType", description: "addressType specifies the type of address carried by this EndpointSlice. All addresses in this slice must be the same type. This field is immutable after creation. The following address types are currently supported: * IPv4: Represents an IPv4 Address. * IPv6: Represents an IPv6 Address. * FQDN: Represents a Fully Qualified Domain Name. (Deprecated) The EndpointSlice controller only generates, and kube-proxy only processes, slices of addressType \"IPv4\" and \"IPv6\". No semantics are defined for the \"FQDN\" type."),
                     Column(name: "Ports", description: "ports specifies the list of network ports exposed by each endpoint in this slice. Each port must have a unique name. Each slice may include a maximum of 100 ports. Services always have at least 1 port, so EndpointSlices generated by the EndpointSlice controller will likewise always have at least 1 port. EndpointSlices used for other purposes may have an empty ports list."),
                     Column(name: "Endpoints", description: "endpoints is a list of unique endpoints in this slice. Each slice may include a maximum of 1000 endpoints."), age],
                    { o in
                        let ports = o["ports"]?.arrayValue ?? []
                        let portText = ports.isEmpty ? "<unset>" : ports.map { $0["port"]?.intValue.map(String.init) ?? "<unset>" }.joined(separator: ",")
                        let addresses = (o["endpoints"]?.arrayValue ?? []).flatMap { $0["addresses"]?.arrayValue?.compactMap(\.stringValue) ?? [] }
                        return [nameCell(o), .string(s(o, "addressType") ?? ""), .string(portText), .string(truncatedList(addresses, empty: "<unset>")), ageCell(o)]
                    })
        case ("apps", "deployments"):
            // The built-in printer's columns; with no controller, status stays as written (0 of N).
            return ([name, Column(name: "Ready", description: "Number of the pod with ready state"),
                     Column(name: "Up-to-date", type: "integer", description: "Total number of non-terminated pods targeted by this deployment that have the desired template spec."),
                     Column(name: "Available", type: "integer", description: "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment."), age],
                    { o in
                        let want = o.value(at: ["spec", "replicas"])?.intValue ?? 1
                        let ready = o.value(at: ["status", "readyReplicas"])?.intValue ?? 0
                        return [nameCell(o), .string("\(ready)/\(want)"), .int(o.value(at: ["status", "updatedReplicas"])?.intValue ?? 0),
                                .int(o.value(at: ["status", "availableReplicas"])?.intValue ?? 0), ageCell(o)]
                    })
        default:
            // rest.NewDefaultTableConvertor: Name and Created At (CRDs among them).
            return ([name, Column(name: "Created At", format: "date-time", description: ageDescription)],
                    { o in [nameCell(o), .string(s(o, "metadata", "creationTimestamp") ?? "")] })
        }
    }

    // MARK: Cells

    /// A CRD column's cell as the apiextensions table convertor computes it; `null` when the path finds nothing.
    static func customCell(_ column: PrinterColumn, _ object: JSON, now: Date) -> JSON {
        guard let value = JSONPath.first(column.jsonPath, in: object), value != .null else { return .null }
        switch column.type {
        case "integer":
            if case .number(let n) = value { return Int(n).map { .int($0) } ?? Double(n).map { .int(Int($0)) } ?? .null }
            if case .string(let s) = value, let i = Int(s) { return .int(i) }
            return .null
        case "number":
            if case .number = value { return value }
            return .null
        case "boolean":
            if case .bool = value { return value }
            return .null
        case "date":
            guard let text = value.stringValue, ISO8601DateFormatter().date(from: text) != nil else { return .null }
            return .string(age(text, now: now))
        default:
            switch value {
            case .string(let text): return .string(text)
            case .number(let n): return .string(n)
            case .bool(let b): return .string(b ? "true" : "false")
            default: return .string(String(decoding: value.bytes(), as: UTF8.self))
            }
        }
    }

    static func nonEmpty(_ text: String?) -> String {
        guard let text, !text.isEmpty else { return "<none>" }
        return text
    }

    static func selector(_ labels: JSON?) -> String {
        let pairs = labels?.objectValue?.compactMap { k, v in v.stringValue.map { "\(k)=\($0)" } } ?? []
        return pairs.isEmpty ? "<none>" : pairs.sorted().joined(separator: ",")
    }

    static func servicePorts(_ o: JSON) -> String {
        let ports = o.value(at: ["spec", "ports"])?.arrayValue ?? []
        if ports.isEmpty { return "<none>" }
        return ports.map { p in
            let port = p["port"]?.intValue ?? 0
            let proto = p["protocol"]?.stringValue ?? "TCP"
            if let nodePort = p["nodePort"]?.intValue, nodePort > 0 { return "\(port):\(nodePort)/\(proto)" }
            return "\(port)/\(proto)"
        }.joined(separator: ",")
    }

    static func serviceExternalIP(_ o: JSON) -> String {
        let externalIPs = o.value(at: ["spec", "externalIPs"])?.arrayValue?.compactMap(\.stringValue) ?? []
        switch o.value(at: ["spec", "type"])?.stringValue ?? "ClusterIP" {
        case "ExternalName":
            return o.value(at: ["spec", "externalName"])?.stringValue ?? "<none>"
        case "LoadBalancer":
            let ingress = (o.value(at: ["status", "loadBalancer", "ingress"])?.arrayValue ?? []).compactMap {
                $0["ip"]?.stringValue ?? $0["hostname"]?.stringValue
            }
            let all = ingress + externalIPs
            return all.isEmpty ? "<pending>" : all.joined(separator: ",")
        default:
            return externalIPs.isEmpty ? "<none>" : externalIPs.joined(separator: ",")
        }
    }

    /// The pod STATUS column: a waiting or terminated container's reason wins over the phase, as kubectl shows it.
    static func podStatus(_ o: JSON) -> String {
        if o.value(at: ["metadata", "deletionTimestamp"]) != nil { return "Terminating" }
        var reason = o.value(at: ["status", "reason"])?.stringValue ?? o.value(at: ["status", "phase"])?.stringValue ?? "Pending"
        for c in o.value(at: ["status", "containerStatuses"])?.arrayValue ?? [] {
            if let waiting = c.value(at: ["state", "waiting", "reason"])?.stringValue, !waiting.isEmpty {
                reason = waiting
            } else if let terminated = c.value(at: ["state", "terminated", "reason"])?.stringValue, !terminated.isEmpty {
                reason = terminated
            }
        }
        return reason
    }

    static func nodeStatus(_ o: JSON) -> String {
        let ready = (o.value(at: ["status", "conditions"])?.arrayValue ?? []).first { $0["type"]?.stringValue == "Ready" }
        var status: String
        switch ready?["status"]?.stringValue {
        case "True": status = "Ready"
        case "False": status = "NotReady"
        default: status = "Unknown"
        }
        if o.value(at: ["spec", "unschedulable"])?.boolValue == true { status += ",SchedulingDisabled" }
        return status
    }

    static func nodeRoles(_ o: JSON) -> String {
        var roles: Set<String> = []
        for (key, value) in o.value(at: ["metadata", "labels"])?.objectValue ?? [] {
            if key.hasPrefix("node-role.kubernetes.io/") {
                let role = String(key.dropFirst("node-role.kubernetes.io/".count))
                if !role.isEmpty { roles.insert(role) }
            } else if key == "kubernetes.io/role", let role = value.stringValue, !role.isEmpty {
                roles.insert(role)
            }
        }
        return roles.isEmpty ? "<none>" : roles.sorted().joined(separator: ",")
    }

    static func endpointsAddresses(_ o: JSON) -> String {
        var out: [String] = []
        for subset in o["subsets"]?.arrayValue ?? [] {
            let ips = (subset["addresses"]?.arrayValue ?? []).compactMap { $0["ip"]?.stringValue }
            let ports = (subset["ports"]?.arrayValue ?? []).compactMap { $0["port"]?.intValue }
            for ip in ips {
                if ports.isEmpty { out.append(ip) } else { out.append(contentsOf: ports.map { "\(ip):\($0)" }) }
            }
        }
        return truncatedList(out, empty: "<none>")
    }

    /// At most three entries, then ` + N more...`, as the upstream printers shorten lists.
    static func truncatedList(_ items: [String], empty: String) -> String {
        if items.isEmpty { return empty }
        if items.count <= 3 { return items.joined(separator: ",") }
        return items.prefix(3).joined(separator: ",") + " + \(items.count - 3) more..."
    }

    /// `duration.HumanDuration` from k8s.io/apimachinery.
    static func age(_ timestamp: String?, now: Date) -> String {
        guard let timestamp, let date = ISO8601DateFormatter().date(from: timestamp) else { return "<unknown>" }
        let seconds = Int(now.timeIntervalSince(date))
        if seconds < -1 { return "<invalid>" }
        if seconds < 0 { return "0s" }
        if seconds < 120 { return "\(seconds)s" }
        let minutes = seconds / 60
        if minutes < 10 { return seconds % 60 == 0 ? "\(minutes)m" : "\(minutes)m\(seconds % 60)s" }
        if minutes < 180 { return "\(minutes)m" }
        let hours = minutes / 60
        if hours < 8 { return minutes % 60 == 0 ? "\(hours)h" : "\(hours)h\(minutes % 60)m" }
        if hours < 48 { return "\(hours)h" }
        if hours < 24 * 8 { return hours % 24 == 0 ? "\(hours / 24)d" : "\(hours / 24)d\(hours % 24)h" }
        if hours < 24 * 365 * 2 { return "\(hours / 24)d" }
        let days = hours / 24
        if hours < 24 * 365 * 8 { return days % 365 == 0 ? "\(days / 365)y" : "\(days / 365)y\(days % 365)d" }
        return "\(days / 365)y"
    }
}

/// The JSONPath subset CRD printer columns use: `.a.b`, `['a.b']`, `[N]`, and
/// `[?(@.k=="v")]` / `[?(@.k.l!="v")]` filters; the first match wins, as the
/// table convertor takes only the first result.
enum JSONPath {
    enum Step: Equatable {
        case field(String)
        case index(Int)
        case filter(path: [String], value: String, negated: Bool)
        case wildcard
    }

    static func parse(_ path: String) -> [Step]? {
        var steps: [Step] = []
        var rest = Substring(path.hasPrefix("{") && path.hasSuffix("}") ? String(path.dropFirst().dropLast()) : path)
        if rest.hasPrefix("$") { rest = rest.dropFirst() }
        while let c = rest.first {
            if c == "." {
                rest = rest.dropFirst()
                let end = rest.firstIndex { $0 == "." || $0 == "[" } ?? rest.endIndex
                let name = rest[..<end]
                if name.isEmpty { return nil }
                steps.append(name == "*" ? .wildcard : .field(String(name)))
                rest = rest[end...]
            } else if c == "[" {
                guard let close = closingBracket(rest) else { return nil }
                let inner = rest[rest.index(after: rest.startIndex)..<close].trimmingCharacters(in: " ")
                rest = rest[rest.index(after: close)...]
                if inner == "*" {
                    steps.append(.wildcard)
                } else if let i = Int(inner) {
                    steps.append(.index(i))
                } else if (inner.hasPrefix("'") && inner.hasSuffix("'")) || (inner.hasPrefix("\"") && inner.hasSuffix("\"")), inner.count >= 2 {
                    steps.append(.field(String(inner.dropFirst().dropLast())))
                } else if inner.hasPrefix("?(@."), inner.hasSuffix(")") {
                    let expression = inner.dropFirst(4).dropLast()
                    let negated = expression.contains("!=")
                    let parts = expression.components(separatedBy: negated ? "!=" : "==")
                    guard parts.count == 2 else { return nil }
                    let key = parts[0].trimmingCharacters(in: " ")
                    var value = parts[1].trimmingCharacters(in: " ")
                    if value.count >= 2, value.first == value.last, value.first == "\"" || value.first == "'" {
                        value = String(value.dropFirst().dropLast())
                    }
                    steps.append(.filter(path: key.split(separator: ".").map(String.init), value: value, negated: negated))
                } else {
                    return nil
                }
            } else {
                return nil
            }
        }
        return steps
    }

    /// The `]` closing the bracket at the start of `s`, skipping quoted text.
    static func closingBracket(_ s: Substring) -> Substring.Index? {
        var quote: Character?
        var i = s.index(after: s.startIndex)
        while i < s.endIndex {
            let c = s[i]
            if let q = quote {
                if c == q { quote = nil }
            } else if c == "'" || c == "\"" {
                quote = c
            } else if c == "]" {
                return i
            }
            i = s.index(after: i)
        }
        return nil
    }

    /// Every value the path selects, in document order.
    static func evaluate(_ path: String, in object: JSON) -> [JSON] {
        guard let steps = parse(path) else { return [] }
        var current = [object]
        for step in steps {
            var next: [JSON] = []
            for value in current {
                switch step {
                case .field(let name):
                    if let child = value[name] { next.append(child) }
                case .index(let i):
                    if let items = value.arrayValue {
                        let index = i < 0 ? items.count + i : i
                        if index >= 0 && index < items.count { next.append(items[index]) }
                    }
                case .wildcard:
                    if let items = value.arrayValue { next.append(contentsOf: items) }
                    else if let members = value.objectValue { next.append(contentsOf: members.map(\.1)) }
                case .filter(let key, let expected, let negated):
                    for item in value.arrayValue ?? [] {
                        let actual = item.value(at: key)
                        let text: String? = switch actual {
                        case .string(let s): s
                        case .number(let n): n
                        case .bool(let b): b ? "true" : "false"
                        default: nil
                        }
                        if let text, (text == expected) != negated { next.append(item) }
                    }
                }
            }
            current = next
        }
        return current
    }

    static func first(_ path: String, in object: JSON) -> JSON? {
        evaluate(path, in: object).first
    }
}
