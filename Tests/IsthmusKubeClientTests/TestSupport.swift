import Foundation
import IsthmusFakeAPIServer
import IsthmusHTTP
import IsthmusKubeClient
import IsthmusKubeTypes
import Testing

/// A temporary directory removed when the value is dropped.
final class TemporaryDirectory {
    let path: String
    init() throws {
        path = NSTemporaryDirectory() + "isthmus-kube-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    func write(_ name: String, _ text: String) throws -> String {
        let file = path + "/" + name
        try text.write(toFile: file, atomically: true, encoding: .utf8)
        return file
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// The embedded API server over TLS with its generated CA, and a client
/// configured from a kubeconfig file written the way `isthmus apiserver` writes one.
struct KubeTestServer {
    static let token = "kube-client-test-token"
    let server: FakeAPIServer
    let client: KubeClient
    let directory: TemporaryDirectory

    static func start(historyCapacity: Int = 10_000, bookmarkInterval: Duration = .seconds(60)) async throws -> KubeTestServer {
        var configuration = FakeAPIServer.Configuration(tokens: [token: "admin"])
        configuration.historyCapacity = historyCapacity
        configuration.bookmarkInterval = bookmarkInterval
        configuration.threads = 1
        let server = try await FakeAPIServer.start(configuration)
        let directory = try TemporaryDirectory()
        let ca = try #require(server.caCertificatePEM)
        let kubeconfig = try directory.write("kubeconfig", """
            apiVersion: v1
            kind: Config
            clusters:
            - name: fake
              cluster:
                server: \(server.url)
                certificate-authority-data: \(Data(ca.utf8).base64EncodedString())
            users:
            - name: admin
              user:
                token: \(token)
            contexts:
            - name: fake
              context:
                cluster: fake
                user: admin
                namespace: default
            current-context: fake

            """)
        let client = try KubeClient(configuration: .kubeconfig(path: kubeconfig))
        return KubeTestServer(server: server, client: client, directory: directory)
    }

    func shutdown() async throws { try await server.shutdown() }
}

func configMap(_ name: String, namespace: String = "default", data: [String: String] = [:], labels: [String: String] = [:]) -> JSON {
    var metadata: [(String, JSON)] = [("name", .string(name)), ("namespace", .string(namespace))]
    if !labels.isEmpty { metadata.append(("labels", .object(labels.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) }))) }
    return .object([
        ("apiVersion", .string("v1")), ("kind", .string("ConfigMap")),
        ("metadata", .object(metadata)),
        ("data", .object(data.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) })),
    ])
}
