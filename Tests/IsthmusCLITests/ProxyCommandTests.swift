import Foundation
import IsthmusTrust
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A long-running `isthmus` subcommand, read until it says where it serves.
private final class RunningCommand {
    let process = Process()
    private let output = Pipe()

    /// Reads stderr, or stdout when `readStdout`.
    init(_ arguments: [String], readStdout: Bool = false, in directory: String? = nil) throws {
        process.executableURL = URL(fileURLWithPath: CLI.binary)
        process.arguments = arguments
        if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
        process.standardError = readStdout ? FileHandle.nullDevice : output
        process.standardOutput = readStdout ? output : FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    /// Everything read so far, so a later wait still finds an earlier line.
    private var text = ""

    /// Reads until a line contains `marker`; returns that line (nil at EOF).
    func waitForLine(containing marker: String) -> String? {
        while true {
            if let line = text.split(separator: "\n").first(where: { $0.contains(marker) }) { return String(line) }
            let data = output.fileHandleForReading.availableData
            if data.isEmpty { return nil }
            text += String(decoding: data, as: UTF8.self)
        }
    }

    func stop() {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    /// The port at the end of `serving https://127.0.0.1:PORT ...` (or `http://` for the admin listener).
    static func port(in line: String, scheme: String = "https") -> Int? {
        guard let range = line.range(of: scheme + "://127.0.0.1:") else { return nil }
        return Int(line[range.upperBound...].prefix { $0.isNumber })
    }
}

@Suite("isthmus proxy", .serialized)
struct ProxyCommandTests {
    private let clusterUUID = "0b4e3f66-7a2d-4e55-8f0c-5d1e9b7c3a22"
    private let peerUUID = "8d5f5d2e-1c1a-4a8e-9a53-2f6f4a3d2c11"

    @Test("a configuration error names the flag and exits before listening")
    func configurationError() throws {
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "token\n".write(toFile: dir + "/token", atomically: true, encoding: .utf8)
        try "not a ca".write(toFile: dir + "/ca.crt", atomically: true, encoding: .utf8)
        let missingPeers = try CLI.run(["proxy", "--listen", "127.0.0.1:0", "--upstream", "https://127.0.0.1:1",
                                        "--upstream-ca", dir + "/ca.crt", "--token-file", dir + "/token",
                                        "--peers", dir + "/missing.json", "--cluster-uuid", clusterUUID])
        #expect(missingPeers.status == 2)
        #expect(missingPeers.stderr.contains("isthmus proxy: --peers: "),
                "\(missingPeers.stderr)")
        let badDuration = try CLI.run(["proxy", "--peers", "p", "--cluster-uuid", clusterUUID, "--max-watch", "30"])
        #expect(badDuration.status != 0)
        #expect(badDuration.stderr.contains("--max-watch must be a duration"), "\(badDuration.stderr)")
        let noToken = try CLI.run(["proxy", "--peers", "p", "--cluster-uuid", clusterUUID, "--token-file", dir + "/none"])
        #expect(noToken.status == 2)
        #expect(noToken.stderr.contains("isthmus proxy: --token-file: cannot read"), "\(noToken.stderr)")
        let badAccessLog = try CLI.run(["proxy", "--upstream", "https://127.0.0.1:1", "--upstream-ca", dir + "/ca.crt",
                                        "--token-file", dir + "/token", "--peers", "p", "--cluster-uuid", clusterUUID,
                                        "--access-log", "syslog"])
        #expect(badAccessLog.status == 2)
        #expect(badAccessLog.stderr.contains("isthmus proxy: --access-log: must be 'stdout' or 'off', got 'syslog'"), "\(badAccessLog.stderr)")
    }

    @Test("isthmus proxy in front of isthmus apiserver serves /healthz and an allowed list to a peer token")
    func endToEnd() async throws {
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let apiserver = try RunningCommand(["apiserver", "--listen", "127.0.0.1:0", "--token", "proxy-sa", "--cert-dir", dir + "/pki"])
        defer { apiserver.stop() }
        let upstreamLine = try #require(apiserver.waitForLine(containing: "serving https://"))
        let upstreamPort = try #require(RunningCommand.port(in: upstreamLine))

        try "proxy-sa\n".write(toFile: dir + "/token", atomically: true, encoding: .utf8)
        let key = SigningKeyPair()
        let ca = try String(contentsOfFile: dir + "/pki/ca.crt", encoding: .utf8)
        let peers = try TrustedPeers([TrustedPeer(clusterUUID: peerUUID, keys: [key.publicKey], rootCA: ca)])
        try peers.encodedJSONString().write(toFile: dir + "/peers.json", atomically: true, encoding: .utf8)
        let proxy = try RunningCommand([
            "proxy", "--listen", "127.0.0.1:0", "--upstream", "https://127.0.0.1:\(upstreamPort)",
            "--upstream-ca", dir + "/pki/ca.crt", "--token-file", dir + "/token", "--peers", dir + "/peers.json",
            "--policies", CLI.repositoryRoot + "/policies", "--cluster-uuid", clusterUUID, "--write-ca", dir + "/proxy-ca.crt",
            "--admin-listen", "127.0.0.1:0", "--audit-log", dir + "/audit.log", "--readiness-probe-interval", "1s",
        ])
        defer { proxy.stop() }
        let proxyLine = try #require(proxy.waitForLine(containing: "serving https://"))
        let proxyPort = try #require(RunningCommand.port(in: proxyLine))

        let now = Int64(Date().timeIntervalSince1970)
        let token = mint(TokenClaims(subject: peerUUID, audience: clusterUUID, scope: .api, notBefore: now - 10,
                                     expiresAt: now + 600), with: key)
        try "Authorization: Bearer \(token)\n".write(toFile: dir + "/auth.header", atomically: true, encoding: .utf8)
        func curl(_ path: String, auth: Bool) throws -> String {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
            process.arguments = ["-sS", "--cacert", dir + "/proxy-ca.crt", "-w", "\n%{http_code}"]
                + (auth ? ["-H", "@" + dir + "/auth.header"] : []) + ["https://127.0.0.1:\(proxyPort)\(path)"]
            let out = Pipe()
            process.standardOutput = out
            process.standardError = FileHandle.nullDevice
            try process.run()
            let data = out.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            return String(decoding: data, as: UTF8.self)
        }
        #expect(try curl("/healthz", auth: false) == "ok\n200")
        let list = try curl("/api/v1/namespaces", auth: true)
        #expect(list.hasSuffix("\n200") && list.contains("NamespaceList"), "\(list)")
        #expect(try curl("/api/v1/namespaces", auth: false).hasSuffix("\n401"))

        // The admin listener: plain HTTP, /metrics counts what just happened, /readyz probes the upstream.
        let adminLine = try #require(proxy.waitForLine(containing: "admin http://"))
        let adminPort = try #require(RunningCommand.port(in: adminLine, scheme: "http"))
        func admin(_ path: String) throws -> String {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
            process.arguments = ["-sS", "-w", "\n%{http_code}", "http://127.0.0.1:\(adminPort)\(path)"]
            let out = Pipe()
            process.standardOutput = out
            process.standardError = FileHandle.nullDevice
            try process.run()
            let data = out.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            return String(decoding: data, as: UTF8.self)
        }
        let metrics = try admin("/metrics")
        #expect(metrics.contains(#"isthmus_proxy_requests_total{peer="\#(peerUUID)",verb="list",resource="namespaces",code="200"} 1"#), "\(metrics)")
        #expect(metrics.contains(#"isthmus_proxy_denials_total{reason="unauthorized"} 1"#), "\(metrics)")
        var ready = ""
        for _ in 0..<300 where !ready.hasSuffix("\n200") {
            ready = try admin("/readyz?verbose")
            if !ready.hasSuffix("\n200") { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(ready.contains("[+]upstream ok") && ready.hasSuffix("\n200"), "\(ready)")
        // The audit log is written from its own thread: poll for the allowed list.
        var audit = ""
        for _ in 0..<300 where !audit.contains(#""resource":"namespaces""#) {
            audit = (try? String(contentsOfFile: dir + "/audit.log", encoding: .utf8)) ?? ""
            if !audit.contains(#""resource":"namespaces""#) { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(audit.contains(#""peer":"\#(peerUUID)","verb":"list","group":"","resource":"namespaces""#), "\(audit)")
        #expect(audit.contains(#""decision":"allow""#) && audit.contains(#""decision":"deny""#), "\(audit)")
        #expect(!audit.contains(token), "the audit log holds a token")
    }

    @Test("isthmus dev: the printed kubectl commands work as the fake peer, delete is refused, Ctrl-C stops it")
    func dev() throws {
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let dev = try RunningCommand(["dev", "--policies", CLI.repositoryRoot + "/policies"], readStdout: true, in: dir)
        defer { dev.stop() }
        _ = try #require(dev.waitForLine(containing: "Ctrl-C stops everything"))
        let kubeconfig = dir + "/.isthmus-dev/peer.kubeconfig"
        #expect(FileManager.default.fileExists(atPath: kubeconfig))
        func kubectl(_ args: String...) throws -> CLIResult {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/kubectl")
            process.arguments = ["--kubeconfig", kubeconfig, "--cache-dir", dir + "/kube-cache"] + args
            let out = Pipe(), err = Pipe()
            process.standardOutput = out
            process.standardError = err
            try process.run()
            let o = out.fileHandleForReading.readDataToEndOfFile()
            let e = err.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            return CLIResult(status: process.terminationStatus, stdout: String(decoding: o, as: UTF8.self),
                             stderr: String(decoding: e, as: UTF8.self))
        }
        let services = try kubectl("get", "svc", "-A")
        #expect(services.status == 0 && services.stdout.contains("istiod") && services.stdout.contains("cart"), "\(services)")
        let slices = try kubectl("get", "endpointslices", "-n", "demo")
        #expect(slices.status == 0 && slices.stdout.contains("web-abc12"), "\(slices)")
        let delete = try kubectl("delete", "svc", "web", "-n", "demo")
        #expect(delete.status != 0 && delete.stderr.contains("read-only"), "\(delete)")
        kill(dev.process.processIdentifier, SIGINT)
        dev.process.waitUntilExit()
        #expect(dev.process.terminationStatus == 0)
    }
}
