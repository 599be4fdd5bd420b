import Foundation
@testable import IsthmusFakeAPIServer
import IsthmusKubeTypes
import Testing

/// Splits `kubectl get` output into rows of whitespace-separated cells.
func tableRows(_ output: String) -> [[String]] {
    output.split(separator: "\n").map { line in
        // Columns are separated by 3+ spaces; a cell never holds more than one.
        line.components(separatedBy: "   ").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }
}

@Suite("Tables as kubectl get prints them", .serialized)
struct TablesTests {
    @Test("JSONPath subset of printer columns: fields, quoted keys, indexes, filters")
    func jsonPath() throws {
        let object = try JSON(parsing: Array(#"""
            {"spec":{"replicas":3,"a.b":"dotted"},"status":{"conditions":[{"type":"Synced","status":"False"},{"type":"Ready","status":"True"}]}}
            """#.utf8))
        #expect(JSONPath.first(".spec.replicas", in: object) == .int(3))
        #expect(JSONPath.first(".spec['a.b']", in: object) == .string("dotted"))
        #expect(JSONPath.first(#".status.conditions[?(@.type=="Ready")].status"#, in: object) == .string("True"))
        #expect(JSONPath.first(".status.conditions[0].type", in: object) == .string("Synced"))
        #expect(JSONPath.first(".status.conditions[-1].type", in: object) == .string("Ready"))
        #expect(JSONPath.first(#".status.conditions[?(@.type!="Ready")].type"#, in: object) == .string("Synced"))
        #expect(JSONPath.first(".status.missing", in: object) == nil)
        #expect(JSONPath.parse(".status[") == nil)
    }

    @Test("ages follow apimachinery's HumanDuration")
    func ages() {
        let now = Date(timeIntervalSince1970: 1_000_000)
        func age(_ seconds: Int) -> String { Tables.age(APIServerCore.timestamp(now.addingTimeInterval(TimeInterval(-seconds))), now: now) }
        #expect(age(5) == "5s")
        #expect(age(119) == "119s")
        #expect(age(150) == "2m30s")
        #expect(age(600) == "10m")
        #expect(age(4 * 3600 + 120) == "4h2m")
        #expect(age(30 * 3600) == "30h")
        #expect(age(3 * 86400 + 3600) == "3d1h")
        #expect(age(40 * 86400) == "40d")
    }

    @Test("Service Table columns match kube-apiserver's (fixture 28d)")
    func serviceColumnsMatchFixture() throws {
        var store = Store()
        let context = WriteContext(timestamp: APIServerCore.timestamp(), uid: "u1")
        _ = try store.create(ResourceRegistry.builtIn.first { $0.resource == "namespaces" }!, namespace: "",
                             body: try JSON(parsing: Array(#"{"metadata":{"name":"fx"}}"#.utf8)), context: context)
        let services = ResourceRegistry.builtIn.first { $0.resource == "services" }!
        _ = try store.create(services, namespace: "fx", body: try JSON(parsing: Array(#"""
            {"metadata":{"name":"a","labels":{"app":"fx"}},"spec":{"clusterIP":"10.104.32.26","selector":{"app":"fx"},"ports":[{"port":80,"protocol":"TCP","targetPort":80}]}}
            """#.utf8)), context: WriteContext(timestamp: APIServerCore.timestamp(), uid: "u2"))
        let table = Tables.table(try store.list(services, namespace: "fx", options: ListOptions()))
        let columns = table["columnDefinitions"]?.arrayValue ?? []
        // Names, types, formats and priorities as recorded; descriptions spot-checked.
        #expect(columns.map { $0["name"]?.stringValue ?? "" } == ["Name", "Type", "Cluster-IP", "External-IP", "Port(s)", "Age", "Selector"])
        #expect(columns.map { $0["priority"]?.intValue ?? -1 } == [0, 0, 0, 0, 0, 0, 1])
        #expect(columns.map { $0["format"]?.stringValue ?? "?" } == ["name", "", "", "", "", "", ""])
        #expect(columns[3]["description"]?.stringValue?.hasPrefix("externalIPs is a list of IP addresses for which nodes in the cluster") == true)
        let cells = table["rows"]?.arrayValue?.first?["cells"]?.arrayValue ?? []
        #expect(cells.count == 7)
        #expect(Array(cells.prefix(5)) == [.string("a"), .string("ClusterIP"), .string("10.104.32.26"), .string("<none>"), .string("80/TCP")])
        #expect(cells.last == .string("app=fx"))
        #expect(table.value(at: ["rows"])?.arrayValue?.first?.value(at: ["object", "kind"]) == .string("PartialObjectMetadata"))
    }

    @Test("kubectl get prints the built-in printers' columns")
    func builtInKinds() async throws {
        let k = try await Kubectl.start()
        defer { Task { try? await k.stop() } }
        func create(_ resource: String, group: String = "", _ json: String) throws {
            try k.server.create(resource: resource, group: group, object: try JSON(parsing: Array(json.utf8)))
        }
        try create("namespaces", #"{"metadata":{"name":"demo"},"status":{"phase":"Active"}}"#)
        try create("services", #"{"metadata":{"name":"web","namespace":"demo"},"spec":{"type":"NodePort","clusterIP":"10.96.0.10","selector":{"app":"web"},"ports":[{"port":80,"nodePort":30080,"protocol":"TCP"},{"port":53,"protocol":"UDP"}]}}"#)
        try create("services", #"{"metadata":{"name":"lb","namespace":"demo"},"spec":{"type":"LoadBalancer","clusterIP":"10.96.0.11","ports":[{"port":443}]}}"#)
        try create("pods", #"{"metadata":{"name":"web-0","namespace":"demo"},"spec":{"nodeName":"n1","containers":[{"name":"a","image":"x"},{"name":"b","image":"y"}]},"status":{"phase":"Running","podIP":"10.0.0.5","containerStatuses":[{"name":"a","ready":true,"restartCount":2},{"name":"b","ready":false,"restartCount":1,"state":{"waiting":{"reason":"CrashLoopBackOff"}}}]}}"#)
        try create("configmaps", #"{"metadata":{"name":"cfg","namespace":"demo"},"data":{"a":"1","b":"2"},"binaryData":{"c":"AA=="}}"#)
        try create("secrets", #"{"metadata":{"name":"tls","namespace":"demo"},"type":"kubernetes.io/tls","data":{"tls.crt":"AA==","tls.key":"AA=="}}"#)
        try create("serviceaccounts", #"{"metadata":{"name":"robot","namespace":"demo"},"secrets":[{"name":"tls"}]}"#)
        try create("nodes", #"{"metadata":{"name":"n1","labels":{"node-role.kubernetes.io/control-plane":"","node-role.kubernetes.io/master":""}},"spec":{"unschedulable":true},"status":{"conditions":[{"type":"Ready","status":"True"}],"nodeInfo":{"kubeletVersion":"v1.32.3"}}}"#)
        try create("endpointslices", group: "discovery.k8s.io", #"{"metadata":{"name":"web-abc","namespace":"demo"},"addressType":"IPv4","ports":[{"port":8080}],"endpoints":[{"addresses":["10.0.0.5"]},{"addresses":["10.0.0.6"]}]}"#)

        let namespaces = tableRows(try await k.ok("get", "namespaces"))
        #expect(namespaces.first == ["NAME", "STATUS", "AGE"])
        #expect(namespaces.contains { $0.prefix(2) == ["demo", "Active"] })

        let services = tableRows(try await k.ok("get", "services", "-n", "demo"))
        #expect(services.first == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"])
        #expect(services.contains { $0.prefix(5) == ["web", "NodePort", "10.96.0.10", "<none>", "80:30080/TCP,53/UDP"] })
        #expect(services.contains { $0.prefix(5) == ["lb", "LoadBalancer", "10.96.0.11", "<pending>", "443/TCP"] })
        let wide = tableRows(try await k.ok("get", "services", "-n", "demo", "-o", "wide"))
        #expect(wide.first?.last == "SELECTOR")
        #expect(wide.contains { $0.first == "web" && $0.last == "app=web" })

        let pods = tableRows(try await k.ok("get", "pods", "-n", "demo"))
        #expect(pods.first == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"])
        #expect(pods.dropFirst().first?.prefix(4) == ["web-0", "1/2", "CrashLoopBackOff", "3"])

        let configMaps = tableRows(try await k.ok("get", "configmaps", "-n", "demo"))
        #expect(configMaps.first == ["NAME", "DATA", "AGE"])
        #expect(configMaps.dropFirst().first?.prefix(2) == ["cfg", "3"])

        let secrets = tableRows(try await k.ok("get", "secrets", "-n", "demo"))
        #expect(secrets.first == ["NAME", "TYPE", "DATA", "AGE"])
        #expect(secrets.dropFirst().first?.prefix(3) == ["tls", "kubernetes.io/tls", "2"])

        let accounts = tableRows(try await k.ok("get", "serviceaccounts", "-n", "demo"))
        #expect(accounts.first == ["NAME", "SECRETS", "AGE"])
        #expect(accounts.dropFirst().first?.prefix(2) == ["robot", "1"])

        let nodes = tableRows(try await k.ok("get", "nodes"))
        #expect(nodes.first == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"])
        #expect(nodes.dropFirst().first?.prefix(3) == ["n1", "Ready,SchedulingDisabled", "control-plane,master"])
        #expect(nodes.dropFirst().first?.last == "v1.32.3")

        let slices = tableRows(try await k.ok("get", "endpointslices", "-n", "demo"))
        #expect(slices.first == ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"])
        #expect(slices.dropFirst().first?.prefix(4) == ["web-abc", "IPv4", "8080", "10.0.0.5,10.0.0.6"])

        // A kind without its own printer (CRDs themselves): the default Name / Created At.
        let crds = try await k.ok("get", "customresourcedefinitions")
        #expect(crds.isEmpty || tableRows(crds).first == ["NAME", "CREATED AT"])
    }

    @Test("a CRD's additionalPrinterColumns, the condition filter form included")
    func customColumns() async throws {
        let k = try await Kubectl.start()
        defer { Task { try? await k.stop() } }
        _ = try await k.ok("create", "-f", try k.file("crd.yaml", """
            apiVersion: apiextensions.k8s.io/v1
            kind: CustomResourceDefinition
            metadata: {name: istiomulticlusters.deckhouse.io}
            spec:
              group: deckhouse.io
              scope: Cluster
              names: {plural: istiomulticlusters, singular: istiomulticluster, kind: IstioMulticluster, listKind: IstioMulticlusterList}
              versions:
              - name: v1alpha1
                served: true
                storage: true
                subresources: {status: {}}
                schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
                additionalPrinterColumns:
                - {name: Endpoint, type: string, jsonPath: .spec.metadataEndpoint}
                - {name: Ready, type: string, jsonPath: '.status.conditions[?(@.type=="Ready")].status'}
                - {name: Gateways, type: integer, jsonPath: .status.gatewayCount}
                - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
                - {name: Synced, type: boolean, jsonPath: .status.synced, priority: 1}

            """))
        _ = try await k.ok("create", "-f", try k.file("cr.yaml", """
            apiVersion: deckhouse.io/v1alpha1
            kind: IstioMulticluster
            metadata: {name: remote}
            spec: {metadataEndpoint: "https://istio.remote.example.com/metadata/"}

            """))
        var rows = tableRows(try await k.ok("get", "istiomulticlusters"))
        #expect(rows.first == ["NAME", "ENDPOINT", "READY", "GATEWAYS", "AGE"])
        // Paths that find nothing are null cells, which kubectl prints blank: only NAME, ENDPOINT and AGE remain.
        #expect(rows.dropFirst().first?.count == 3)
        #expect(rows.dropFirst().first?.prefix(2) == ["remote", "https://istio.remote.example.com/metadata/"])
        _ = try await k.ok("patch", "istiomulticluster", "remote", "--subresource", "status", "--type", "merge", "-p",
                           #"{"status":{"gatewayCount":2,"synced":true,"conditions":[{"type":"Synced","status":"False"},{"type":"Ready","status":"True"}]}}"#)
        rows = tableRows(try await k.ok("get", "istiomulticlusters", "-o", "wide"))
        #expect(rows.first == ["NAME", "ENDPOINT", "READY", "GATEWAYS", "AGE", "SYNCED"])
        #expect(rows.dropFirst().first?.prefix(4) == ["remote", "https://istio.remote.example.com/metadata/", "True", "2"])
        #expect(rows.dropFirst().first?.last == "true")
    }

    @Test("kubectl get -w prints Table rows from a Table watch; events carry one-row Tables, columns only first (fixture 28f)")
    func tableWatch() async throws {
        let k = try await Kubectl.start()
        defer { Task { try? await k.stop() } }
        _ = try await k.ok("create", "-f", try k.file("ns.yaml", namespaceYAML))
        _ = try await k.ok("create", "-f", try k.file("svc.yaml", serviceYAML))
        let outFile = k.directory.appendingPathComponent("watch.out")
        FileManager.default.createFile(atPath: outFile.path, contents: nil)
        let (p, _, _) = try k.process(["get", "services", "-n", "demo", "-w"])
        p.standardOutput = try FileHandle(forWritingTo: outFile)
        try p.run()
        defer { p.terminate() }
        await eventually("kubectl opened its watch") { k.server.openWatchCount >= 1 }
        try k.server.create(resource: "services", object: json(#"{"metadata":{"name":"late","namespace":"demo"},"spec":{"clusterIP":"10.96.7.7","ports":[{"port":90,"protocol":"TCP"}]}}"#))
        await eventually("kubectl printed the new Service as a table row") {
            let rows = tableRows((try? String(contentsOf: outFile, encoding: .utf8)) ?? "")
            return rows.contains { $0.prefix(5) == ["late", "ClusterIP", "10.96.7.7", "<none>", "90/TCP"] }
        }
        let rows = tableRows((try? String(contentsOf: outFile, encoding: .utf8)) ?? "")
        #expect(rows.first == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"])
        #expect(rows.contains { $0.first == "web" })
        let watchRequest = k.server.recentRequests.last { $0.uri.contains("watch=") }
        #expect(watchRequest?.header("accept")?.contains("as=Table") == true)

        // The wire shape, from a raw Table watch.
        let url = "https://127.0.0.1:\(k.server.port)/api/v1/namespaces/demo/services?watch=true&resourceVersion=\(k.server.resourceVersion)&timeoutSeconds=3"
        let watch = Task { try await curl(k, ["--http1.1", "-N", "-H", "Accept: application/json;as=Table;v=v1;g=meta.k8s.io,application/json", url]) }
        await eventually("the raw watch is open") { k.server.openWatchCount >= 2 }
        try k.server.mergePatch(resource: "services", namespace: "demo", name: "late", patch: json(#"{"metadata":{"labels":{"step":"2"}}}"#))
        try k.server.mergePatch(resource: "services", namespace: "demo", name: "late", patch: json(#"{"metadata":{"labels":{"step":"3"}}}"#))
        let lines = try await watch.value.stdout.split(separator: "\n").map { try JSON(parsing: String($0)) }
        #expect(lines.count == 2)
        #expect(lines.first?.value(at: ["object", "kind"]) == .string("Table"))
        #expect(lines.first?.value(at: ["object", "columnDefinitions"])?.arrayValue?.count == 7)
        #expect(lines.last?.value(at: ["object", "columnDefinitions"]) == .null)
        #expect(lines.last?.value(at: ["object", "rows"])?.arrayValue?.first?.value(at: ["object", "metadata", "labels", "step"]) == .string("3"))
    }
}
