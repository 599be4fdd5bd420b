import Foundation
import IsthmusTestSupport
import Testing

/// Runs the built `isthmus apiserver` as an operator would, then the real kubectl against it.
@Suite("isthmus apiserver")
struct APIServerCommandTests {
    static func waitFor(_ path: String) async -> Bool {
        for _ in 0..<1500 {
            if FileManager.default.fileExists(atPath: path) { return true }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return false
    }

    /// kubectl's status and its stdout and stderr together.
    static func kubectl(_ args: [String]) async throws -> (Int32, String) {
        let output = try await ChildProcess.run(Executables.kubectl, args)
        return (output.status, output.stdout + output.stderr)
    }

    @Test("writes a CA and kubeconfig that kubectl uses, reuses the CA, and exits 0 on SIGTERM")
    func serves() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("isthmus-apiserver-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let certDir = dir.appendingPathComponent("pki").path
        var firstCA = ""
        for round in 0..<2 {
            let kubeconfig = dir.appendingPathComponent("kubeconfig-\(round)").path
            let server = try RunningChild(CLI.binary, [
                "apiserver", "--listen", "127.0.0.1:0", "--token", "first-token", "--token", "second-token",
                "--cert-dir", certDir, "--kubeconfig-out", kubeconfig])
            #expect(await Self.waitFor(kubeconfig), "no kubeconfig written")
            let (status, output) = try await Self.kubectl(["--kubeconfig", kubeconfig, "--cache-dir", dir.appendingPathComponent("cache").path,
                                                           "get", "namespaces", "-o", "name"])
            #expect(status == 0 && output.contains("namespace/default"), "\(output)")
            let config = try String(contentsOfFile: kubeconfig, encoding: .utf8)
            #expect(config.contains("token: first-token") && !config.contains("second-token"))
            let ca = try String(contentsOfFile: certDir + "/ca.crt", encoding: .utf8)
            if round == 0 { firstCA = ca } else { #expect(ca == firstCA, "the CA was not reused") }
            #expect(FileManager.default.fileExists(atPath: certDir + "/tls.key"))
            server.send(SIGTERM)
            #expect(await server.waitForExit() == 0)
        }
    }
}
