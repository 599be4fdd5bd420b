import Foundation
@testable import IsthmusFakeAPIServer
import IsthmusKubeTypes
import Testing

/// Runs curl with the test token against the server, trusting its CA.
func curl(_ k: Kubectl, _ args: [String]) async throws -> (status: Int32, stdout: String) {
    let ca = k.directory.appendingPathComponent("ca.crt").path
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
    p.arguments = ["-sS", "--cacert", ca, "-H", "Authorization: Bearer kubectl-test-token"] + args
    let out = Pipe()
    p.standardOutput = out
    p.standardError = FileHandle.nullDevice
    try p.run()
    let data = await Task.detached { out.fileHandleForReading.readDataToEndOfFile() }.value
    await Task.detached { p.waitUntilExit() }.value
    return (p.terminationStatus, String(decoding: data, as: UTF8.self))
}

@Suite("HEAD and jittered bookmarks", .serialized)
struct HeadAndBookmarkTests {
    @Test("HEAD answers GET's status and headers with no body, on HTTP/1.1 keep-alive and HTTP/2")
    func head() async throws {
        let k = try await Kubectl.start()
        defer { Task { try? await k.stop() } }
        let url = "https://127.0.0.1:\(k.server.port)/api/v1/namespaces/default"
        let get = try await curl(k, ["--http1.1", url])
        #expect(get.status == 0 && get.stdout.contains(#""name": "default""#))
        // Two HEADs on one HTTP/1.1 connection: a stray body byte would break the second.
        let http1 = try await curl(k, ["--http1.1", "-I", url, url])
        #expect(http1.status == 0)
        let heads = http1.stdout.components(separatedBy: "HTTP/1.1 ").filter { !$0.isEmpty }
        #expect(heads.count == 2, "\(http1.stdout)")
        for head in heads {
            #expect(head.hasPrefix("200 OK"))
            #expect(head.lowercased().contains("content-length: \(get.stdout.utf8.count)"), "\(head)")
            #expect(head.lowercased().contains("content-type: application/json"))
        }
        let http2 = try await curl(k, ["--http2", "-i", "-X", "HEAD", url + "/configmaps/missing"])
        #expect(http2.stdout.hasPrefix("HTTP/2 404"), "\(http2.stdout)")
        #expect(!http2.stdout.contains("{"), "HEAD must not carry a body")
        #expect(k.server.recentRequests.contains { $0.method == "HEAD" && $0.statusCode == 404 })
        // A HEAD on a watch ends at once instead of streaming.
        let watch = try await curl(k, ["--http1.1", "-I", "--max-time", "20", url + "/configmaps?watch=1"])
        #expect(watch.status == 0 && watch.stdout.hasPrefix("HTTP/1.1 200"))
    }

    @Test("bookmark waits are spread ±25% around the configured mean")
    func jitterBounds() {
        let mean = Duration.seconds(60)
        #expect(WatchStream.bookmarkDelay(mean: mean, random: 0) == .seconds(45))
        #expect(WatchStream.bookmarkDelay(mean: mean, random: 0.5) == .seconds(60))
        #expect(WatchStream.bookmarkDelay(mean: mean, random: 1) == .seconds(75))
        let samples = (0..<2000).map { _ in WatchStream.bookmarkDelay(mean: mean, random: Double.random(in: 0...1)) }
        #expect(Set(samples).count > 100, "the waits vary")
        let average = samples.reduce(Duration.zero, +) / samples.count
        #expect(average > .seconds(57) && average < .seconds(63))
    }

    @Test("bookmarks keep arriving on a watch at the jittered interval")
    func bookmarksArrive() async throws {
        let k = try await Kubectl.start { $0.bookmarkInterval = .milliseconds(300) }
        defer { Task { try? await k.stop() } }
        let url = "https://127.0.0.1:\(k.server.port)/api/v1/namespaces/default/configmaps?watch=1&allowWatchBookmarks=true&resourceVersion=\(k.server.resourceVersion)&timeoutSeconds=4"
        let out = try await curl(k, ["--http2", "-N", url])
        let bookmarks = out.stdout.split(separator: "\n").filter { $0.hasPrefix(#"{"type":"BOOKMARK""#) }
        // About 13 in 4 s; a loaded machine may deliver fewer, never none.
        #expect(bookmarks.count >= 3, "\(out.stdout)")
    }
}
