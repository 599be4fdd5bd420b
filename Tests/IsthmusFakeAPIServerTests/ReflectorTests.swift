import Foundation
import IsthmusFakeAPIServer
import IsthmusKubeTypes
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing

/// A client-go-style reflector: list, watch from the list's resourceVersion,
/// keep a local cache, re-list on 410. Its checks are the informer's contract:
/// no event lost, none duplicated, resourceVersions only move forward.
actor Reflector {
    let client: TestHTTPClient
    let path: String
    private(set) var cache: [String: UInt64] = [:]
    private(set) var lastResourceVersion: UInt64 = 0
    private(set) var bookmarks = 0
    private(set) var relists = 0
    private(set) var expiredSeen = 0
    private(set) var problems: [String] = []

    init(client: TestHTTPClient, path: String) {
        self.client = client
        self.path = path
    }

    func list() async throws {
        let (code, body) = try await client.request(.GET, path)
        guard code == 200 else { problems.append("list: HTTP \(code)"); return }
        let list = try JSON(parsing: body)
        cache = [:]
        for item in list["items"]?.arrayValue ?? [] {
            guard let name = item.value(at: ["metadata", "name"])?.stringValue,
                  let rv = item.value(at: ["metadata", "resourceVersion"])?.stringValue.flatMap(UInt64.init) else { continue }
            cache[name] = rv
        }
        lastResourceVersion = list.value(at: ["metadata", "resourceVersion"])?.stringValue.flatMap(UInt64.init) ?? 0
        relists += 1
    }

    /// Watches from the last resourceVersion until the stream ends; true if it ended with 410.
    func watchOnce(timeoutSeconds: Int) async throws -> Bool {
        let (events, _) = try await client.watch("\(path)?watch=1&allowWatchBookmarks=true&resourceVersion=\(lastResourceVersion)&timeoutSeconds=\(timeoutSeconds)")
        for await event in events {
            if apply(event) { return true }
        }
        return false
    }

    /// Applies one event; true when it is the 410 that forces a re-list.
    private func apply(_ event: JSON) -> Bool {
        let type = event["type"]?.stringValue ?? ""
        let object = event["object"] ?? .null
        if type == "ERROR" {
            if object["code"]?.intValue == 410 { expiredSeen += 1; return true }
            problems.append("unexpected error event \(event.serialized())")
            return false
        }
        guard let rv = object.value(at: ["metadata", "resourceVersion"])?.stringValue.flatMap(UInt64.init) else {
            problems.append("event without resourceVersion")
            return false
        }
        if rv <= lastResourceVersion && !(type == "BOOKMARK" && rv == lastResourceVersion) {
            problems.append("\(type) rv \(rv) not after \(lastResourceVersion)")
        }
        lastResourceVersion = max(lastResourceVersion, rv)
        let name = object.value(at: ["metadata", "name"])?.stringValue ?? ""
        switch type {
        case "BOOKMARK": bookmarks += 1
        case "ADDED":
            if cache[name] != nil { problems.append("duplicate ADDED \(name)") }
            cache[name] = rv
        case "MODIFIED":
            if cache[name] == nil { problems.append("MODIFIED for unknown \(name)") }
            cache[name] = rv
        case "DELETED":
            if cache.removeValue(forKey: name) == nil { problems.append("DELETED for unknown \(name)") }
        default:
            problems.append("unknown event type \(type)")
        }
        return false
    }

    /// list, then watch; re-list on 410, re-watch when a stream ends, until `stop` says so.
    func run(until stop: @escaping @Sendable () async -> Bool) async throws {
        try await list()
        while !(await stop()) {
            if try await watchOnce(timeoutSeconds: 2) { try await list() }
        }
    }
}

func configMap(_ name: String, _ value: Int) -> JSON {
    .object([("metadata", .object([("name", .string(name)), ("namespace", .string("default"))])),
             ("data", .object([("v", .string(String(value)))]))])
}

/// What the server holds now, as name -> resourceVersion.
func serverState(_ server: FakeAPIServer, client: TestHTTPClient) async throws -> [String: UInt64] {
    let (_, body) = try await client.request(.GET, "/api/v1/namespaces/default/configmaps")
    var out: [String: UInt64] = [:]
    for item in try JSON(parsing: body)["items"]?.arrayValue ?? [] {
        out[item.value(at: ["metadata", "name"])?.stringValue ?? ""] = item.value(at: ["metadata", "resourceVersion"])?.stringValue.flatMap(UInt64.init)
    }
    return out
}

@Suite("Reflector against the fake API server", .serialized)
struct ReflectorTests {
    static func server(history: Int) async throws -> FakeAPIServer {
        var config = FakeAPIServer.Configuration(tokens: ["kubectl-test-token": "admin"])
        config.plainHTTP = true
        config.threads = 2
        config.historyCapacity = history
        config.bookmarkInterval = .milliseconds(50)
        return try await FakeAPIServer.start(config)
    }

    @Test("list then watch across 10,000 changes: nothing lost or duplicated, bookmarks arrive")
    func tenThousandChanges() async throws {
        let server = try await Self.server(history: 20_000)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let client = TestHTTPClient(group: group, port: server.port)
        for i in 0..<50 { try server.create(resource: "configmaps", object: configMap("seed-\(i)", 0)) }
        let reflector = Reflector(client: client, path: "/api/v1/namespaces/default/configmaps")
        let done = NIOLockedValueBox(false)
        let run = Task { try await reflector.run { done.withLockedValue { $0 } } }
        await eventually("the reflector is watching") { server.openWatchCount >= 1 }

        // 10,000 changes: creates, updates and deletes.
        var live: [String] = (0..<50).map { "seed-\($0)" }
        var created = 0
        for i in 0..<10_000 {
            switch i % 5 {
            case 0, 1:
                let name = "cm-\(created)"
                created += 1
                try server.create(resource: "configmaps", object: configMap(name, i))
                live.append(name)
            case 4 where live.count > 10:
                let name = live.remove(at: (i * 7) % live.count)
                try server.delete(resource: "configmaps", namespace: "default", name: name)
            default:
                let name = live[(i * 13) % live.count]
                try server.mergePatch(resource: "configmaps", namespace: "default", name: name,
                                      patch: .object([("data", .object([("v", .string(String(i)))]))]))
            }
            if i % 500 == 0 { await Task.yield() }
        }
        let final = server.resourceVersion
        await eventually("the reflector caught up and got a bookmark at the final resourceVersion", deadline: .seconds(120)) {
            let rv = await reflector.lastResourceVersion
            let bookmarks = await reflector.bookmarks
            return rv == final && bookmarks > 0
        }
        done.withLockedValue { $0 = true }
        try await run.value
        #expect(await reflector.problems == [])
        #expect(await reflector.cache == (try await serverState(server, client: client)))
        #expect(await reflector.cache.count == live.count)
        #expect(await reflector.relists == 1)
        try await server.shutdown()
        try await group.shutdownGracefully()
    }

    @Test("a reflector that falls behind the history gets 410, re-lists and converges")
    func relistAfterExpired() async throws {
        let server = try await Self.server(history: 100)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let client = TestHTTPClient(group: group, port: server.port)
        for i in 0..<20 { try server.create(resource: "configmaps", object: configMap("seed-\(i)", 0)) }
        let reflector = Reflector(client: client, path: "/api/v1/namespaces/default/configmaps")
        try await reflector.list()
        // While it is not watching, more changes than the history holds.
        for i in 0..<300 {
            try server.mergePatch(resource: "configmaps", namespace: "default", name: "seed-\(i % 20)",
                                  patch: .object([("data", .object([("v", .string(String(i)))]))]))
        }
        #expect(try await reflector.watchOnce(timeoutSeconds: 5) == true)
        #expect(await reflector.expiredSeen == 1)
        let done = NIOLockedValueBox(false)
        let run = Task { try await reflector.run { done.withLockedValue { $0 } } }
        for i in 0..<50 { try server.create(resource: "configmaps", object: configMap("late-\(i)", i)) }
        let final = server.resourceVersion
        await eventually("the reflector converged after re-listing", deadline: .seconds(120)) {
            await reflector.lastResourceVersion == final
        }
        done.withLockedValue { $0 = true }
        try await run.value
        #expect(await reflector.problems == [])
        #expect(await reflector.relists >= 2)
        #expect(await reflector.cache == (try await serverState(server, client: client)))
        try await server.shutdown()
        try await group.shutdownGracefully()
    }
}
