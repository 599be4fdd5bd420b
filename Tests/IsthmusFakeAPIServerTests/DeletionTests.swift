import Foundation
import IsthmusFakeAPIServer
import IsthmusKubeTypes
import Testing

@Suite("deletecollection and namespace termination with kubectl", .serialized)
struct DeletionTests {
    func configMap(_ name: String, namespace: String = "demo", labels: String = "{}") -> JSON {
        json(#"{"metadata":{"name":"\#(name)","namespace":"\#(namespace)","labels":\#(labels)}}"#)
    }

    @Test("kubectl delete --all / -l, and DELETE on the collection with a label selector")
    func deleteCollection() async throws {
        let k = try await Kubectl.start()
        defer { Task { try? await k.stop() } }
        _ = try await k.ok("create", "-f", try k.file("ns.yaml", namespaceYAML))
        for i in 0..<3 { try k.server.create(resource: "configmaps", object: configMap("front-\(i)", labels: #"{"tier":"front"}"#)) }
        for i in 0..<2 { try k.server.create(resource: "configmaps", object: configMap("back-\(i)", labels: #"{"tier":"back"}"#)) }
        try k.server.create(resource: "configmaps", object: configMap("elsewhere", namespace: "default", labels: #"{"tier":"front"}"#))

        let bySelector = try await k.ok("delete", "configmaps", "-n", "demo", "-l", "tier=front")
        #expect(bySelector.contains(#"configmap "front-0" deleted"#) && bySelector.contains(#"configmap "front-2" deleted"#))
        #expect(try await k.ok("get", "configmaps", "-n", "demo", "-o", "name") == "configmap/back-0\nconfigmap/back-1\n")

        // The collection endpoint itself (client-go's DeleteCollection): the deleted items come back as a list.
        for i in 0..<2 { try k.server.create(resource: "configmaps", object: configMap("raw-\(i)", labels: #"{"tier":"raw"}"#)) }
        let raw = try JSON(parsing: Array(try await k.ok("delete", "--raw", "/api/v1/namespaces/demo/configmaps?labelSelector=tier%3Draw").utf8))
        #expect(raw["kind"] == .string("ConfigMapList"))
        #expect(raw["items"]?.arrayValue?.compactMap { $0.value(at: ["metadata", "name"])?.stringValue } == ["raw-0", "raw-1"])

        let all = try await k.ok("delete", "configmaps", "--all", "-n", "demo")
        #expect(all.contains(#"configmap "back-0" deleted"#) && all.contains(#"configmap "back-1" deleted"#))
        #expect(try await k.ok("get", "configmaps", "-n", "demo", "-o", "name").isEmpty)
        // Other namespaces are untouched.
        _ = try k.server.get(resource: "configmaps", namespace: "default", name: "elsewhere")
        // Namespaces have no deletecollection upstream: 405.
        let namespaces = try await k.run("delete", "--raw", "/api/v1/namespaces")
        #expect(namespaces.status != 0 && namespaces.stderr.contains("MethodNotAllowed"), "\(namespaces)")
    }

    @Test("kubectl delete namespace: Terminating, creates refused with 403, watchers see the DELETED events, then it is gone")
    func namespaceTermination() async throws {
        // No automatic controller: the namespace stays Terminating until the test finalizes it.
        let k = try await Kubectl.start { $0.namespaceFinalizationDelay = nil }
        defer { Task { try? await k.stop() } }
        _ = try await k.ok("create", "-f", try k.file("ns.yaml", namespaceYAML))
        _ = try await k.ok("create", "-f", try k.file("svc.yaml", serviceYAML))
        try k.server.create(resource: "configmaps", object: configMap("settings"))

        // A watch over all namespaces' ConfigMaps, printing each event's type and name.
        let outFile = k.directory.appendingPathComponent("watch.out")
        FileManager.default.createFile(atPath: outFile.path, contents: nil)
        let (p, _, _) = try k.process(["get", "configmaps", "-A", "--watch-only", "--output-watch-events", "-o", "json"])
        p.standardOutput = try FileHandle(forWritingTo: outFile)
        try p.run()
        defer { p.terminate() }
        await eventually("kubectl opened its watch") { k.server.openWatchCount >= 1 }

        #expect(try await k.ok("delete", "namespace", "demo", "--wait=false").contains(#"namespace "demo" deleted"#))
        let phase = try await k.ok("get", "namespace", "demo", "-o", "jsonpath={.status.phase}")
        #expect(phase == "Terminating")
        let late = try await k.run("create", "configmap", "late", "-n", "demo", "--from-literal=a=b", "--dry-run=client", "-o", "yaml")
        let lateFile = try k.file("late.yaml", late.stdout)
        let refused = try await k.run("create", "-f", lateFile)
        #expect(refused.status != 0)
        #expect(refused.stderr.contains(#"configmaps "late" is forbidden: unable to create new content in namespace demo because it is being terminated"#), "\(refused)")

        // kubectl waits (on a watch) until the namespace is gone.
        let (waiter, _, _) = try k.process(["wait", "--for=delete", "namespace/demo", "--timeout=60s"])
        try waiter.run()
        await eventually("kubectl wait is watching") { k.server.openWatchCount >= 2 }
        #expect(k.server.finalizeNamespace("demo"))
        await Task.detached { waiter.waitUntilExit() }.value
        #expect(waiter.terminationStatus == 0)
        #expect(throws: Status.self) { try k.server.get(resource: "services", namespace: "demo", name: "web") }
        await eventually("the watcher printed the ConfigMap's DELETED event") {
            let text = (try? String(contentsOf: outFile, encoding: .utf8)) ?? ""
            return text.contains(#"{"type":"DELETED","object":{"apiVersion":"v1","kind":"ConfigMap""#) && text.contains(#""name":"settings","namespace":"demo""#)
        }
    }

    @Test("with the default controller delay, kubectl delete namespace returns once the namespace is gone")
    func namespaceControllerRuns() async throws {
        let k = try await Kubectl.start()
        defer { Task { try? await k.stop() } }
        _ = try await k.ok("create", "-f", try k.file("ns.yaml", namespaceYAML))
        try k.server.create(resource: "configmaps", object: configMap("settings"))
        #expect(try await k.ok("delete", "namespace", "demo", "--timeout=60s").contains(#"namespace "demo" deleted"#))
        #expect(throws: Status.self) { try k.server.get(resource: "namespaces", name: "demo") }
        #expect(throws: Status.self) { try k.server.get(resource: "configmaps", namespace: "demo", name: "settings") }
    }
}
