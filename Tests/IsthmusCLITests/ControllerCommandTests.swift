import Foundation
import IsthmusTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("isthmus controller and dev --clusters 2", .serialized)
struct ControllerCommandTests {
    @Test("configuration errors are one line naming the flag, exit 2", arguments: [
        (["controller"], "--cluster-uuid: must be set"),
        (["controller", "--cluster-uuid", "b", "--token-ttl", "60"], "--token-ttl: must be a duration"),
        (["controller", "--cluster-uuid", "b", "--refetch-interval", "0s"], "--refetch-interval: must be a duration"),
        (["controller", "--cluster-uuid", "b", "--service-cidr", "10.0.0.0/33"], "--service-cidr: "),
        (["controller", "--cluster-uuid", "b", "--admin-listen", "9090"], "--admin-listen: must be HOST:PORT"),
        (["controller", "--cluster-uuid", "b", "--kubeconfig", "/nonexistent/kubeconfig"], "--kubeconfig: /nonexistent/kubeconfig"),
    ])
    func configurationError(arguments: [String], message: String) async throws {
        let result = try await CLI.run(arguments)
        #expect(result.status == 2, "\(result.stderr)")
        let lines = result.stderr.split(separator: "\n")
        #expect(lines.count == 1 && lines[0].hasPrefix("isthmus controller: \(message)"), "\(result.stderr)")
    }

    @Test("against isthmus apiserver: creates the cluster key Secret, serves /readyz and /metrics, exits 0 on SIGTERM")
    func runsAgainstAnAPIServer() async throws {
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let kubeconfig = dir + "/kubeconfig"
        let apiserver = try RunningChild(CLI.binary, ["apiserver", "--listen", "127.0.0.1:0", "--token", "admin-token",
                                            "--cert-dir", dir + "/pki", "--kubeconfig-out", kubeconfig])
        defer { apiserver.send(SIGKILL) }
        _ = try #require(await apiserver.waitForLine(containing: "serving https://"))
        let kubectl = ["--kubeconfig", kubeconfig, "--cache-dir", dir + "/cache"]
        let crd = try await CLI.runExecutable("/usr/bin/kubectl", kubectl + [
            "apply", "-f", CLI.repositoryRoot + "/charts/isthmus/crds/istiomulticlusters.deckhouse.io.yaml"])
        #expect(crd.status == 0, "\(crd.stderr)")

        let controller = try RunningChild(CLI.binary, ["controller", "--kubeconfig", kubeconfig, "--cluster-uuid", "bbbbbbbb-0000-4000-8000-00000000000b",
                                             "--namespace", "default", "--istio-namespace", "default", "--admin-listen", "127.0.0.1:0"])
        defer { controller.send(SIGKILL) }
        let line = try #require(await controller.waitForLine(containing: "admin http://"))
        let range = try #require(line.range(of: "admin http://127.0.0.1:"))
        let port = try #require(Int(line[range.upperBound...].prefix { $0.isNumber }))

        var ready = CLIResult(status: -1, stdout: "", stderr: "")
        for _ in 0..<600 where ready.status != 0 {
            ready = try await CLI.runExecutable("/usr/bin/curl", ["-sS", "--fail", "http://127.0.0.1:\(port)/readyz"])
            if ready.status != 0 { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(ready.status == 0 && ready.stdout == "ok\n", "\(ready.stderr)")
        let metrics = try await CLI.runExecutable("/usr/bin/curl", ["-sS", "--fail", "http://127.0.0.1:\(port)/metrics"])
        #expect(metrics.stdout.contains("# TYPE isthmus_controller_writes_total counter"), "\(metrics.stdout)")
        #expect(metrics.stdout.contains("isthmus_controller_trusted_peers 0"), "\(metrics.stdout)")

        let secret = try await CLI.runExecutable("/usr/bin/kubectl", kubectl + [
            "get", "secret", "isthmus-cluster-key", "-n", "default", "-o", "jsonpath={.data}"])
        #expect(secret.status == 0 && secret.stdout.contains("private.pem") && secret.stdout.contains("public.pem"), "\(secret.stderr)")

        controller.send(SIGTERM)
        #expect(await controller.waitForExit() == 0)
        #expect(controller.output(.stderr).contains(#""message":"shutting down""#), "\(controller.output(.stderr))")
    }

    @Test("dev --clusters 2 pairs two clusters; B's remote secret kubeconfig reads A through A's proxy with kubectl")
    func devTwoClusters() async throws {
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let dev = try RunningChild(CLI.binary, ["dev", "--clusters", "2", "--policies", CLI.repositoryRoot + "/policies"], workingDirectory: dir)
        defer { dev.send(SIGKILL) }
        let command = try #require(await dev.waitForLine(containing: "kubectl --kubeconfig"))
        let kubeconfig = dir + "/.isthmus-dev/cluster-b-to-a.kubeconfig"
        // Printed relative to the working directory, as --dir was given.
        #expect(command.hasSuffix("kubectl --kubeconfig .isthmus-dev/cluster-b-to-a.kubeconfig get svc -A"), "\(command)")
        let attributes = try FileManager.default.attributesOfItem(atPath: kubeconfig)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)

        let kubectl = ["--kubeconfig", kubeconfig, "--cache-dir", dir + "/cache"]
        let list = try await CLI.runExecutable("/usr/bin/kubectl", kubectl + ["get", "svc", "-A"])
        #expect(list.status == 0, "\(list.stderr)")
        // Cluster A's own Service, not B's: the kubeconfig reads A.
        #expect(list.stdout.contains("hello-from-cluster-a") && !list.stdout.contains("hello-from-cluster-b"), "\(list.stdout)")
        let delete = try await CLI.runExecutable("/usr/bin/kubectl", kubectl + ["delete", "svc", "web", "-n", "demo"])
        #expect(delete.status != 0 && delete.stderr.contains("read-only"), "\(delete.stderr)")

        // B reads A's gateway credential, never A's signing key, trusted peers,
        // remote secrets (A's token for B is in one), SA-token or Helm Secrets.
        let secrets = try await CLI.runExecutable("/usr/bin/kubectl", kubectl + ["get", "secrets", "-A"])
        #expect(secrets.status == 0 && secrets.stdout.contains("ingressgateway-cert"), "\(secrets)")
        for name in ["isthmus-cluster-key", "isthmus-trusted-peers", "istio-remote-secret-", "web-token", "sh.helm.release"] {
            #expect(!secrets.stdout.contains(name), "\(name) in \(secrets.stdout)")
        }
        for (namespace, name) in [("isthmus-system", "isthmus-cluster-key"), ("isthmus-system", "isthmus-trusted-peers"),
                                  ("istio-system", "istio-remote-secret-cluster-b"), ("demo", "web-token")] {
            let get = try await CLI.runExecutable("/usr/bin/kubectl", kubectl + ["-n", namespace, "get", "secret", name, "-o", "yaml"])
            #expect(get.status != 0 && get.stderr.contains("Error from server (Forbidden)"), "\(name): \(get)")
            #expect(!get.stdout.contains("private.pem") && !get.stdout.contains("token"), "\(name): \(get.stdout)")
        }
        let gateway = try await CLI.runExecutable("/usr/bin/kubectl", kubectl + ["-n", "istio-system", "get", "secret",
                                                                              "ingressgateway-cert", "-o", "name"])
        #expect(gateway.status == 0 && gateway.stdout.contains("secret/ingressgateway-cert"), "\(gateway)")

        // Cluster A's owner creates a Service; B reads it through A's proxy.
        let admin = dir + "/.isthmus-dev/cluster-a/admin.kubeconfig"
        _ = try #require(await dev.waitForLine(containing: "cluster-a/admin.kubeconfig -n demo create service clusterip"))
        let create = try await CLI.runExecutable("/usr/bin/kubectl", ["--kubeconfig", admin, "--cache-dir", dir + "/cache-admin",
                                                                    "-n", "demo", "create", "service", "clusterip", "hello", "--tcp=80:8080"])
        #expect(create.status == 0 && create.stdout.contains("service/hello created"), "\(create)")
        let seen = try await CLI.runExecutable("/usr/bin/kubectl", kubectl + ["-n", "demo", "get", "svc", "hello", "-o", "name"])
        #expect(seen.status == 0 && seen.stdout.contains("service/hello"), "\(seen)")

        dev.send(SIGINT)
        #expect(await dev.waitForExit() == 0)
    }
}
