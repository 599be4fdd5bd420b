import Foundation
import IsthmusTestSupport
import IsthmusTrust
import Testing

@Suite("isthmus peers")
struct PeersCommandTests {
    /// Two key pairs and a self-signed CA made with the CLI and openssl, as an operator would.
    private func material() async throws -> String {
        let dir = try CLI.temporaryDirectory()
        for name in ["a", "a2"] {
            #expect(try await CLI.run(["keys", "generate", "--out", dir + "/" + name]).status == 0)
        }
        let openssl = try await ChildProcess.run(Executables.openssl, [
            "req", "-x509", "-newkey", "ed25519", "-nodes", "-keyout", "/dev/null",
            "-subj", "/CN=istio-ca", "-days", "1", "-out", dir + "/ca.pem"])
        #expect(openssl.status == 0)
        return dir
    }

    @Test("peers add creates the file, refuses a duplicate, and --replace rotates the key")
    func addAndReplace() async throws {
        let dir = try await material()
        let file = dir + "/peers.json"
        let add = ["peers", "add", "--file", file, "--cluster-uuid", "cluster-a", "--root-ca", dir + "/ca.pem", "--public-key"]
        #expect(try await CLI.run(add + [dir + "/a/public.pem"]).status == 0)
        let first = try TrustedPeers(json: String(contentsOfFile: file, encoding: .utf8))
        #expect(first.clusterUUIDs == ["cluster-a"])
        #expect(first["cluster-a"]?.keys == [try PeerPublicKey(pem: String(contentsOfFile: dir + "/a/public.pem", encoding: .utf8))])

        let duplicate = try await CLI.run(add + [dir + "/a2/public.pem"])
        #expect(duplicate.status == 1)
        #expect(duplicate.stderr.contains("peer \"cluster-a\" is already trusted; pass --replace"))
        #expect(try TrustedPeers(json: String(contentsOfFile: file, encoding: .utf8)) == first, "a refused add changes nothing")

        #expect(try await CLI.run(add + [dir + "/a2/public.pem", "--replace"]).status == 0)
        let rotated = try TrustedPeers(json: String(contentsOfFile: file, encoding: .utf8))
        #expect(rotated["cluster-a"]?.keys == [try PeerPublicKey(pem: String(contentsOfFile: dir + "/a2/public.pem", encoding: .utf8))])
    }

    @Test("a private key given as the public key is refused, naming the field, without echoing it")
    func privateKeyRefused() async throws {
        let dir = try await material()
        let result = try await CLI.run(["peers", "add", "--file", dir + "/peers.json", "--cluster-uuid", "cluster-a",
                                  "--public-key", dir + "/a/private.pem", "--root-ca", dir + "/ca.pem"])
        #expect(result.status == 1)
        #expect(result.stderr.contains("peer \"cluster-a\": authnKeyPub: PEM label is \"PRIVATE KEY\""))
        let privatePEM = try String(contentsOfFile: dir + "/a/private.pem", encoding: .utf8)
        let body = privatePEM.split(separator: "\n")[1]
        #expect(!result.stderr.contains(body))
        #expect(!FileManager.default.fileExists(atPath: dir + "/peers.json"), "nothing is written on a refusal")
    }

    @Test("a corrupt peers file is refused by peers add and token verify, naming the file, and left as it was")
    func corruptFile() async throws {
        let dir = try await material()
        let file = dir + "/peers.json"
        let corrupt = "{\"cluster-a\": {\"clusterUUID\": \"cluster-b\"}}"
        try corrupt.write(toFile: file, atomically: true, encoding: .utf8)
        let add = try await CLI.run(["peers", "add", "--file", file, "--cluster-uuid", "cluster-c",
                               "--public-key", dir + "/a/public.pem", "--root-ca", dir + "/ca.pem"])
        #expect(add.status == 1)
        #expect(add.stderr.hasPrefix(file + ": peer \"cluster-a\""), "\(add.stderr)")
        #expect(try String(contentsOfFile: file, encoding: .utf8) == corrupt)
        let verify = try await CLI.run(["token", "verify", "--peers", file, "--audience", "cluster-b", "--scope", "api"],
                                 stdin: "x.y.z")
        #expect(verify.status == 1)
        #expect(verify.stderr.hasPrefix(file + ": peer \"cluster-a\""), "\(verify.stderr)")
    }
}
