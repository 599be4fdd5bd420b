import IsthmusKubeTypes

/// The shape of one Kubernetes protobuf message, for decoding request bodies
/// into the JSON the store keeps. Field numbers are those of k8s.io/api and
/// apimachinery 1.32 `generated.proto` (proto2: every field optional).
///
/// Go's generated marshallers write every non-pointer field, zero or not, so
/// zero scalars and empty messages are dropped unless a field is a pointer in
/// Go (``Field/keepsZero``), as `omitempty` JSON would have them. A field this
/// schema does not know is refused when it carries anything (``ProtobufBody/Failure/unsupportedField(_:)``):
/// dropping it would store less than the client sent.
struct ProtoMessage: Sendable {
    indirect enum Kind: Sendable {
        case string
        case int
        case bool
        case message(ProtoMessage)
        /// `map<string,string>`: entries with key = 1, value = 2.
        case stringMap
        /// `map<string, Quantity>`: entries whose value is `Quantity { string string = 1 }`.
        case quantityMap
        /// `IntOrString { type = 1 (0 int, 1 string), intVal = 2, strVal = 3 }`.
        case intOrString
        /// ObjectMeta as ``ProtobufBody/objectMeta(_:)`` reads it.
        case objectMeta
        /// Server-owned (status): skipped whatever it holds, as the API server ignores it on create.
        case ignored
    }

    struct Field: Sendable {
        var name: String
        var kind: Kind
        var repeated = false
        /// A pointer in Go: a present zero (`replicas: 0`, `ready: false`) is kept.
        var keepsZero = false
    }

    var fields: [Int: Field]

    init(_ fields: [Int: Field]) { self.fields = fields }

    /// Decodes `raw` as this message; `path` names it in errors (`spec.template`).
    func decode(_ raw: ArraySlice<UInt8>, path: String) throws(ProtobufBody.Failure) -> JSON {
        var order: [String] = []
        var values: [String: JSON] = [:]
        var lists: [String: [JSON]] = [:]
        var maps: [String: [(String, JSON)]] = [:]
        var reader = ProtobufBody.Reader(raw)
        while let (number, value) = try reader.next() {
            guard let field = fields[number] else {
                if Self.isEmpty(value) { continue }
                throw .unsupportedField("\(path).(\(number))")
            }
            let fieldPath = path.isEmpty ? field.name : path + "." + field.name
            if !order.contains(field.name) { order.append(field.name) }
            switch field.kind {
            case .ignored:
                continue
            case .stringMap:
                let (key, entry) = try ProtobufBody.mapEntry(try value.message())
                maps[field.name, default: []].append((key, .string(String(decoding: entry, as: UTF8.self))))
            case .quantityMap:
                let (key, entry) = try ProtobufBody.mapEntry(try value.message())
                var quantity = ""
                var r = ProtobufBody.Reader(entry)
                while let (f, v) = try r.next() { if f == 1 { quantity = try v.string() } }
                maps[field.name, default: []].append((key, .string(quantity)))
            default:
                guard let decoded = try Self.decodeScalar(field, value, path: fieldPath) else { continue }
                if field.repeated {
                    lists[field.name, default: []].append(decoded)
                } else {
                    values[field.name] = decoded
                }
            }
        }
        var out: [(String, JSON)] = []
        for name in order {
            if let value = values[name] { out.append((name, value)) }
            if let list = lists[name], !list.isEmpty { out.append((name, .array(list))) }
            if let map = maps[name], !map.isEmpty { out.append((name, .object(map))) }
        }
        return .object(out)
    }

    /// One non-map value, or nil when it is a zero the JSON form would omit.
    private static func decodeScalar(_ field: Field, _ value: ProtobufBody.Value, path: String) throws(ProtobufBody.Failure) -> JSON? {
        switch field.kind {
        case .string:
            let text = try value.string()
            return text.isEmpty && !field.keepsZero && !field.repeated ? nil : .string(text)
        case .int:
            let number = Int64(bitPattern: try value.varint())
            return number == 0 && !field.keepsZero ? nil : .number(String(number))
        case .bool:
            let flag = try value.varint() != 0
            return !flag && !field.keepsZero ? nil : .bool(flag)
        case .message(let schema):
            let decoded = try schema.decode(try value.message(), path: path)
            if case .object(let members) = decoded, members.isEmpty, !field.keepsZero, !field.repeated { return nil }
            return decoded
        case .intOrString:
            var type: UInt64 = 0, int: Int64 = 0, text = ""
            var r = ProtobufBody.Reader(try value.message())
            while let (f, v) = try r.next() {
                switch f {
                case 1: type = try v.varint()
                case 2: int = Int64(bitPattern: try v.varint())
                case 3: text = try v.string()
                default: break
                }
            }
            return type == 1 ? .string(text) : .number(String(int))
        case .objectMeta:
            return try ProtobufBody.objectMeta(try value.message())
        case .stringMap, .quantityMap, .ignored:
            return nil
        }
    }

    /// A field that carries nothing: zero varint, empty bytes, or a fixed-width one.
    private static func isEmpty(_ value: ProtobufBody.Value) -> Bool {
        switch value {
        case .varint(let v): v == 0
        case .bytes(let b): b.isEmpty
        case .fixed: false
        }
    }
}

private typealias F = ProtoMessage.Field

/// The kinds a remote istiod reads and a user creates by hand.
enum ProtoSchemas {
    static let labelSelector = ProtoMessage([
        1: F(name: "matchLabels", kind: .stringMap),
        2: F(name: "matchExpressions", kind: .message(ProtoMessage([
            1: F(name: "key", kind: .string), 2: F(name: "operator", kind: .string),
            3: F(name: "values", kind: .string, repeated: true),
        ])), repeated: true),
    ])

    static let objectReference = ProtoMessage([
        1: F(name: "kind", kind: .string), 2: F(name: "namespace", kind: .string), 3: F(name: "name", kind: .string),
        4: F(name: "uid", kind: .string), 5: F(name: "apiVersion", kind: .string),
        6: F(name: "resourceVersion", kind: .string), 7: F(name: "fieldPath", kind: .string),
    ])

    static let resourceRequirements = ProtoMessage([
        1: F(name: "limits", kind: .quantityMap), 2: F(name: "requests", kind: .quantityMap),
    ])

    static let container = ProtoMessage([
        1: F(name: "name", kind: .string),
        2: F(name: "image", kind: .string),
        3: F(name: "command", kind: .string, repeated: true),
        4: F(name: "args", kind: .string, repeated: true),
        5: F(name: "workingDir", kind: .string),
        6: F(name: "ports", kind: .message(ProtoMessage([
            1: F(name: "name", kind: .string), 2: F(name: "hostPort", kind: .int), 3: F(name: "containerPort", kind: .int),
            4: F(name: "protocol", kind: .string), 5: F(name: "hostIP", kind: .string),
        ])), repeated: true),
        // EnvVar: valueFrom (3) is not decoded; a body that uses it is refused, not shortened.
        7: F(name: "env", kind: .message(ProtoMessage([1: F(name: "name", kind: .string), 2: F(name: "value", kind: .string)])),
             repeated: true),
        8: F(name: "resources", kind: .message(resourceRequirements)),
        13: F(name: "terminationMessagePath", kind: .string),
        14: F(name: "imagePullPolicy", kind: .string),
        16: F(name: "stdin", kind: .bool),
        17: F(name: "stdinOnce", kind: .bool),
        18: F(name: "tty", kind: .bool),
        20: F(name: "terminationMessagePolicy", kind: .string),
    ])

    static let podSpec = ProtoMessage([
        2: F(name: "containers", kind: .message(container), repeated: true),
        3: F(name: "restartPolicy", kind: .string),
        4: F(name: "terminationGracePeriodSeconds", kind: .int, keepsZero: true),
        5: F(name: "activeDeadlineSeconds", kind: .int, keepsZero: true),
        6: F(name: "dnsPolicy", kind: .string),
        7: F(name: "nodeSelector", kind: .stringMap),
        8: F(name: "serviceAccountName", kind: .string),
        9: F(name: "serviceAccount", kind: .string),
        10: F(name: "nodeName", kind: .string),
        11: F(name: "hostNetwork", kind: .bool),
        15: F(name: "imagePullSecrets", kind: .message(ProtoMessage([1: F(name: "name", kind: .string)])), repeated: true),
        16: F(name: "hostname", kind: .string),
        17: F(name: "subdomain", kind: .string),
        19: F(name: "schedulerName", kind: .string),
        20: F(name: "initContainers", kind: .message(container), repeated: true),
        21: F(name: "automountServiceAccountToken", kind: .bool, keepsZero: true),
        24: F(name: "priorityClassName", kind: .string),
        25: F(name: "priority", kind: .int, keepsZero: true),
        29: F(name: "runtimeClassName", kind: .string),
        30: F(name: "enableServiceLinks", kind: .bool, keepsZero: true),
        31: F(name: "preemptionPolicy", kind: .string),
    ])

    static let podTemplateSpec = ProtoMessage([1: F(name: "metadata", kind: .objectMeta), 2: F(name: "spec", kind: .message(podSpec))])

    static let service = ProtoMessage([
        1: F(name: "metadata", kind: .objectMeta),
        2: F(name: "spec", kind: .message(ProtoMessage([
            1: F(name: "ports", kind: .message(ProtoMessage([
                1: F(name: "name", kind: .string), 2: F(name: "protocol", kind: .string), 3: F(name: "port", kind: .int),
                4: F(name: "targetPort", kind: .intOrString), 5: F(name: "nodePort", kind: .int),
                6: F(name: "appProtocol", kind: .string),
            ])), repeated: true),
            2: F(name: "selector", kind: .stringMap),
            3: F(name: "clusterIP", kind: .string),
            4: F(name: "type", kind: .string),
            5: F(name: "externalIPs", kind: .string, repeated: true),
            7: F(name: "sessionAffinity", kind: .string),
            8: F(name: "loadBalancerIP", kind: .string),
            9: F(name: "loadBalancerSourceRanges", kind: .string, repeated: true),
            10: F(name: "externalName", kind: .string),
            11: F(name: "externalTrafficPolicy", kind: .string),
            12: F(name: "healthCheckNodePort", kind: .int),
            13: F(name: "publishNotReadyAddresses", kind: .bool),
            17: F(name: "ipFamilyPolicy", kind: .string),
            18: F(name: "clusterIPs", kind: .string, repeated: true),
            19: F(name: "ipFamilies", kind: .string, repeated: true),
            20: F(name: "allocateLoadBalancerNodePorts", kind: .bool, keepsZero: true),
            21: F(name: "loadBalancerClass", kind: .string),
            22: F(name: "internalTrafficPolicy", kind: .string),
            23: F(name: "trafficDistribution", kind: .string),
        ]))),
        3: F(name: "status", kind: .ignored),
    ])

    static let pod = ProtoMessage([
        1: F(name: "metadata", kind: .objectMeta), 2: F(name: "spec", kind: .message(podSpec)), 3: F(name: "status", kind: .ignored),
    ])

    static let node = ProtoMessage([
        1: F(name: "metadata", kind: .objectMeta),
        2: F(name: "spec", kind: .message(ProtoMessage([
            1: F(name: "podCIDR", kind: .string),
            2: F(name: "externalID", kind: .string),
            3: F(name: "providerID", kind: .string),
            4: F(name: "unschedulable", kind: .bool),
            5: F(name: "taints", kind: .message(ProtoMessage([
                1: F(name: "key", kind: .string), 2: F(name: "value", kind: .string), 3: F(name: "effect", kind: .string),
            ])), repeated: true),
            7: F(name: "podCIDRs", kind: .string, repeated: true),
        ]))),
        3: F(name: "status", kind: .ignored),
    ])

    static let endpoints: ProtoMessage = {
        let address = ProtoMessage([
            1: F(name: "ip", kind: .string), 2: F(name: "targetRef", kind: .message(objectReference)),
            3: F(name: "hostname", kind: .string), 4: F(name: "nodeName", kind: .string, keepsZero: true),
        ])
        return ProtoMessage([
            1: F(name: "metadata", kind: .objectMeta),
            2: F(name: "subsets", kind: .message(ProtoMessage([
                1: F(name: "addresses", kind: .message(address), repeated: true),
                2: F(name: "notReadyAddresses", kind: .message(address), repeated: true),
                // core/v1 EndpointPort: port = 2, protocol = 3 (discovery/v1 has them the other way round).
                3: F(name: "ports", kind: .message(ProtoMessage([
                    1: F(name: "name", kind: .string), 2: F(name: "port", kind: .int), 3: F(name: "protocol", kind: .string),
                    4: F(name: "appProtocol", kind: .string, keepsZero: true),
                ])), repeated: true),
            ])), repeated: true),
        ])
    }()

    static let endpointSlice = ProtoMessage([
        1: F(name: "metadata", kind: .objectMeta),
        2: F(name: "endpoints", kind: .message(ProtoMessage([
            1: F(name: "addresses", kind: .string, repeated: true),
            2: F(name: "conditions", kind: .message(ProtoMessage([
                1: F(name: "ready", kind: .bool, keepsZero: true), 2: F(name: "serving", kind: .bool, keepsZero: true),
                3: F(name: "terminating", kind: .bool, keepsZero: true),
            ])), keepsZero: true),
            3: F(name: "hostname", kind: .string, keepsZero: true),
            4: F(name: "targetRef", kind: .message(objectReference)),
            5: F(name: "deprecatedTopology", kind: .stringMap),
            6: F(name: "nodeName", kind: .string, keepsZero: true),
            7: F(name: "zone", kind: .string, keepsZero: true),
        ])), repeated: true),
        3: F(name: "ports", kind: .message(ProtoMessage([
            1: F(name: "name", kind: .string, keepsZero: true), 2: F(name: "protocol", kind: .string, keepsZero: true),
            3: F(name: "port", kind: .int, keepsZero: true), 4: F(name: "appProtocol", kind: .string, keepsZero: true),
        ])), repeated: true),
        4: F(name: "addressType", kind: .string),
    ])

    static let deployment = ProtoMessage([
        1: F(name: "metadata", kind: .objectMeta),
        2: F(name: "spec", kind: .message(ProtoMessage([
            1: F(name: "replicas", kind: .int, keepsZero: true),
            2: F(name: "selector", kind: .message(labelSelector)),
            3: F(name: "template", kind: .message(podTemplateSpec)),
            4: F(name: "strategy", kind: .message(ProtoMessage([
                1: F(name: "type", kind: .string),
                2: F(name: "rollingUpdate", kind: .message(ProtoMessage([
                    1: F(name: "maxUnavailable", kind: .intOrString), 2: F(name: "maxSurge", kind: .intOrString),
                ]))),
            ]))),
            5: F(name: "minReadySeconds", kind: .int),
            6: F(name: "revisionHistoryLimit", kind: .int, keepsZero: true),
            7: F(name: "paused", kind: .bool),
            9: F(name: "progressDeadlineSeconds", kind: .int, keepsZero: true),
        ]))),
        3: F(name: "status", kind: .ignored),
    ])

    /// The schema of `apiVersion`/`kind`, or nil when this server does not decode it.
    static func schema(apiVersion: String, kind: String) -> ProtoMessage? {
        switch (apiVersion, kind) {
        case ("v1", "Service"): service
        case ("v1", "Pod"): pod
        case ("v1", "Node"): node
        case ("v1", "Endpoints"): endpoints
        case ("discovery.k8s.io/v1", "EndpointSlice"): endpointSlice
        case ("apps/v1", "Deployment"): deployment
        default: nil
        }
    }
}
