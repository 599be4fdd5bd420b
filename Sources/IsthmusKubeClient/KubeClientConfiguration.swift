import Foundation
import IsthmusKubeTypes
import NIOSSL
import Yams

/// Where and how to reach an API server: its URL, whom to trust, which
/// credentials to present and the default namespace.
public struct KubeClientConfiguration: Sendable, CustomStringConvertible {
    /// `https://host:port`, without a trailing slash.
    public var server: String
    /// PEM bundle of the CAs to trust; nil trusts the system's roots.
    public var certificateAuthorityPEM: [UInt8]?
    /// Skip verifying the server's certificate (kubeconfig `insecure-skip-tls-verify`).
    public var insecureSkipTLSVerify: Bool
    public var credentials: KubeCredentials
    /// A client certificate and its key, for mutual TLS.
    public var clientCertificate: KubeClientCertificate?
    /// The namespace single-object verbs use when given none (`default` unless configured).
    public var namespace: String
    public var userAgent: String
    /// Deadline for the response head of each request (watches then stream without one).
    public var requestTimeout: Duration

    public init(server: String, certificateAuthorityPEM: [UInt8]? = nil, insecureSkipTLSVerify: Bool = false,
                credentials: KubeCredentials = .none, clientCertificate: KubeClientCertificate? = nil,
                namespace: String = "default", userAgent: String = "isthmus", requestTimeout: Duration = .seconds(30)) {
        var server = server
        while server.hasSuffix("/") { server.removeLast() }
        self.server = server
        self.certificateAuthorityPEM = certificateAuthorityPEM
        self.insecureSkipTLSVerify = insecureSkipTLSVerify
        self.credentials = credentials
        self.clientCertificate = clientCertificate
        self.namespace = namespace
        self.userAgent = userAgent
        self.requestTimeout = requestTimeout
    }

    /// Never shows a token, password or key.
    public var description: String {
        var parts = ["server: \(server)", "namespace: \(namespace)", "credentials: \(credentials)"]
        if certificateAuthorityPEM != nil { parts.append("custom CA") }
        if insecureSkipTLSVerify { parts.append("insecure-skip-tls-verify") }
        if clientCertificate != nil { parts.append("client certificate") }
        return "KubeClientConfiguration(" + parts.joined(separator: ", ") + ")"
    }
}

/// What the client presents in `Authorization`.
public enum KubeCredentials: Sendable, CustomStringConvertible {
    case none
    case bearerToken(String)
    /// A token file read again whenever it changes (projected service account
    /// tokens are rotated in place), and at least every minute.
    case tokenFile(TokenFile)
    case basic(username: String, password: String)

    public var description: String {
        switch self {
        case .none: "none"
        case .bearerToken: "bearer token"
        case .tokenFile(let file): "token file \(file.path)"
        case .basic(let username, _): "basic auth as \(username)"
        }
    }
}

/// A PEM certificate chain and its private key.
public struct KubeClientCertificate: Sendable, CustomStringConvertible {
    public var certificatePEM: [UInt8]
    public var privateKeyPEM: [UInt8]
    public init(certificatePEM: [UInt8], privateKeyPEM: [UInt8]) {
        self.certificatePEM = certificatePEM
        self.privateKeyPEM = privateKeyPEM
    }
    public var description: String { "KubeClientCertificate(<redacted>)" }
}

/// A configuration file or value that cannot be used, naming where and what.
public struct KubeConfigError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The file (or environment variable) at fault.
    public var file: String
    /// The field within it, as a path (`users[admin].user.client-key`).
    public var field: String
    public var message: String
    public init(file: String, field: String, message: String) {
        self.file = file
        self.field = field
        self.message = message
    }
    public var description: String { field.isEmpty ? "\(file): \(message)" : "\(file): \(field): \(message)" }
}

// MARK: - In-cluster

extension KubeClientConfiguration {
    /// The service account directory every pod gets.
    public static let serviceAccountDirectory = "/var/run/secrets/kubernetes.io/serviceaccount"

    /// The pod's own service account: `KUBERNETES_SERVICE_HOST`/`_PORT`, and
    /// `token` (re-read as it rotates), `ca.crt` and `namespace` in `directory`.
    public static func inCluster(
        environment: [String: String] = ProcessInfo.processInfo.environment,
        directory: String = serviceAccountDirectory
    ) throws(KubeConfigError) -> KubeClientConfiguration {
        guard let host = environment["KUBERNETES_SERVICE_HOST"], !host.isEmpty else {
            throw KubeConfigError(file: "environment", field: "KUBERNETES_SERVICE_HOST", message: "not set (not running in a pod?)")
        }
        guard let port = environment["KUBERNETES_SERVICE_PORT"], !port.isEmpty else {
            throw KubeConfigError(file: "environment", field: "KUBERNETES_SERVICE_PORT", message: "not set (not running in a pod?)")
        }
        guard let portNumber = Int(port), (1...65535).contains(portNumber) else {
            throw KubeConfigError(file: "environment", field: "KUBERNETES_SERVICE_PORT", message: "not a port number: \(port)")
        }
        let hostPart = host.contains(":") ? "[\(host)]" : host
        let tokenPath = directory + "/token"
        let tokenFile = TokenFile(path: tokenPath)
        do {
            _ = try tokenFile.read()
        } catch {
            throw KubeConfigError(file: tokenPath, field: "", message: "cannot read the service account token: \(error)")
        }
        let caPath = directory + "/ca.crt"
        let ca = try readFile(caPath, file: caPath, field: "")
        try validateCertificates(ca, file: caPath, field: "")
        var namespace = "default"
        if let data = FileManager.default.contents(atPath: directory + "/namespace") {
            let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            if !text.isEmpty { namespace = text }
        }
        return KubeClientConfiguration(
            server: "https://\(hostPart):\(portNumber)", certificateAuthorityPEM: ca,
            credentials: .tokenFile(tokenFile), namespace: namespace)
    }
}

// MARK: - Kubeconfig

extension KubeClientConfiguration {
    /// Reads a kubeconfig file: the named context, or its `current-context`.
    /// Relative file paths in it are relative to the file's directory, as kubectl reads them.
    public static func kubeconfig(path: String, context: String? = nil) throws(KubeConfigError) -> KubeClientConfiguration {
        let data = try readFile(path, file: path, field: "")
        let base = (path as NSString).deletingLastPathComponent
        return try kubeconfig(yaml: String(decoding: data, as: UTF8.self), file: path,
                              baseDirectory: base.isEmpty ? "." : base, context: context)
    }

    /// Parses kubeconfig text; `file` names it in errors.
    public static func kubeconfig(yaml: String, file: String, baseDirectory: String = ".",
                                  context contextName: String? = nil) throws(KubeConfigError) -> KubeClientConfiguration {
        let root: [String: Any]
        do {
            guard let node = try Yams.compose(yaml: yaml), let loaded = try plainValue(node) as? [String: Any] else {
                throw KubeConfigError(file: file, field: "", message: "not a YAML mapping")
            }
            root = loaded
        } catch let error as KubeConfigError {
            throw KubeConfigError(file: file, field: error.field, message: error.message)
        } catch {
            throw KubeConfigError(file: file, field: "", message: "invalid YAML: \(error)")
        }
        func fail(_ field: String, _ message: String) -> KubeConfigError {
            KubeConfigError(file: file, field: field, message: message)
        }
        func named(_ list: String, _ name: String, body: String) throws(KubeConfigError) -> [String: Any] {
            guard let entries = root[list] as? [Any] else { throw fail(list, "missing") }
            for case let entry as [String: Any] in entries where entry["name"] as? String == name {
                guard let value = entry[body] as? [String: Any] else { throw fail("\(list)[\(name)].\(body)", "missing") }
                return value
            }
            throw fail(list, "no entry named \(name)")
        }

        let selected: String
        if let contextName {
            selected = contextName
        } else if let current = root["current-context"] as? String, !current.isEmpty {
            selected = current
        } else {
            throw fail("current-context", "not set and no context was given")
        }
        let context = try named("contexts", selected, body: "context")
        let contextField = "contexts[\(selected)].context"
        guard let clusterName = context["cluster"] as? String, !clusterName.isEmpty else {
            throw fail("\(contextField).cluster", "missing")
        }
        let cluster = try named("clusters", clusterName, body: "cluster")
        let clusterField = "clusters[\(clusterName)].cluster"
        guard let server = cluster["server"] as? String, !server.isEmpty else { throw fail("\(clusterField).server", "missing") }
        guard server.hasPrefix("https://") || server.hasPrefix("http://") else {
            throw fail("\(clusterField).server", "not an http(s) URL: \(server)")
        }

        func path(_ value: String) -> String {
            value.hasPrefix("/") ? value : baseDirectory + "/" + value
        }
        func string(_ map: [String: Any], _ key: String, _ field: String) throws(KubeConfigError) -> String? {
            guard let value = map[key] else { return nil }
            guard let text = value as? String else { throw fail("\(field).\(key)", "not a string") }
            return text.isEmpty ? nil : text
        }
        /// `KEY-data` (base64) or `KEY` (a file path), as kubeconfig spells both forms.
        func pem(_ map: [String: Any], _ key: String, _ field: String) throws(KubeConfigError) -> [UInt8]? {
            if let encoded = try string(map, key + "-data", field) {
                // As Go's encoding/json reads a []byte: standard Base64, line breaks ignored.
                guard let bytes = Base64.decodeStandard(encoded.utf8.filter { $0 != UInt8(ascii: "\n") && $0 != UInt8(ascii: "\r") }) else {
                    throw fail("\(field).\(key)-data", "not base64")
                }
                return bytes
            }
            if let relative = try string(map, key, field) {
                return try readFile(path(relative), file: file, field: "\(field).\(key)")
            }
            return nil
        }

        let ca = try pem(cluster, "certificate-authority", clusterField)
        if let ca { try validateCertificates(ca, file: file, field: "\(clusterField).certificate-authority") }
        var insecure = false
        if let value = cluster["insecure-skip-tls-verify"] {
            guard let flag = value as? Bool else { throw fail("\(clusterField).insecure-skip-tls-verify", "not a boolean") }
            insecure = flag
        }

        var credentials = KubeCredentials.none
        var clientCertificate: KubeClientCertificate?
        if let userName = context["user"] as? String, !userName.isEmpty {
            let user = try named("users", userName, body: "user")
            let userField = "users[\(userName)].user"
            for unsupported in ["exec", "auth-provider"] where user[unsupported] != nil {
                throw fail("\(userField).\(unsupported)", "not supported; use a token, tokenFile or client certificate")
            }
            if let token = try string(user, "token", userField) {
                credentials = .bearerToken(token)
            } else if let tokenFile = try string(user, "tokenFile", userField) {
                let file = TokenFile(path: path(tokenFile))
                do { _ = try file.read() } catch {
                    throw fail("\(userField).tokenFile", "cannot read \(path(tokenFile)): \(error)")
                }
                credentials = .tokenFile(file)
            } else if let username = try string(user, "username", userField) {
                credentials = .basic(username: username, password: try string(user, "password", userField) ?? "")
            }
            let certificate = try pem(user, "client-certificate", userField)
            let key = try pem(user, "client-key", userField)
            switch (certificate, key) {
            case (let certificate?, let key?):
                try validateCertificates(certificate, file: file, field: "\(userField).client-certificate")
                do { _ = try NIOSSLPrivateKey(bytes: key, format: .pem) } catch {
                    throw fail("\(userField).client-key", "not a PEM private key")
                }
                clientCertificate = KubeClientCertificate(certificatePEM: certificate, privateKeyPEM: key)
            case (nil, nil):
                break
            case (nil, _):
                throw fail("\(userField).client-certificate", "missing (client-key is set)")
            case (_, nil):
                throw fail("\(userField).client-key", "missing (client-certificate is set)")
            }
        }
        let namespace = try string(context, "namespace", contextField) ?? "default"
        return KubeClientConfiguration(
            server: server, certificateAuthorityPEM: ca, insecureSkipTLSVerify: insecure,
            credentials: credentials, clientCertificate: clientCertificate, namespace: namespace)
    }
}

// MARK: - Helpers

/// A scalar that is not a string or a boolean (a number, null): no field of a
/// kubeconfig is one, so it is only ever reported as "not a string".
private struct NotAString {}

/// The kubeconfig's values from the composed node tree: strings, booleans,
/// lists and mappings (a repeated key: the last wins, as Go's YAML reader
/// does). Not Yams' untyped `load`, which traps on a mapping key that is not
/// a scalar (`{a: b}: c`) and on a sexagesimal integer that overflows
/// (`1:2:3:4:5:6:7:8:9:10:11`); numbers are never constructed here.
private func plainValue(_ node: Node) throws(KubeConfigError) -> Any {
    switch node {
    case .scalar(let scalar):
        switch node.tag.description {
        case Tag.Name.str.rawValue: return scalar.string
        case Tag.Name.bool.rawValue: return node.bool ?? NotAString()
        default: return NotAString()
        }
    case .sequence(let sequence):
        var values: [Any] = []
        for item in sequence { values.append(try plainValue(item)) }
        return values
    case .mapping(let mapping):
        var values: [String: Any] = [:]
        for (key, value) in mapping {
            guard case .scalar(let name) = key else {
                let mark = key.mark.map { ($0.line, $0.column) } ?? (1, 1)
                throw KubeConfigError(file: "", field: "", message: "line \(mark.0), column \(mark.1): a mapping key is not a string")
            }
            values[name.string] = try plainValue(value)
        }
        return values
    case .alias:
        throw KubeConfigError(file: "", field: "", message: "YAML aliases are not supported")
    }
}

private func readFile(_ path: String, file: String, field: String) throws(KubeConfigError) -> [UInt8] {
    guard let data = FileManager.default.contents(atPath: path) else {
        throw KubeConfigError(file: file, field: field, message: "cannot read \(path)")
    }
    return Array(data)
}

private func validateCertificates(_ pem: [UInt8], file: String, field: String) throws(KubeConfigError) {
    let certificates: [NIOSSLCertificate]
    do { certificates = try NIOSSLCertificate.fromPEMBytes(pem) } catch {
        throw KubeConfigError(file: file, field: field, message: "not PEM certificates")
    }
    if certificates.isEmpty { throw KubeConfigError(file: file, field: field, message: "no PEM certificate in it") }
}

// MARK: - Choosing a source

extension KubeClientConfiguration {
    /// The configuration a command should use, in kubectl's order: the
    /// `kubeconfig` path given (a flag), else `$KUBECONFIG` (its first file),
    /// else the pod's service account when `KUBERNETES_SERVICE_HOST` is set,
    /// else `~/.kube/config`.
    public static func resolve(
        kubeconfig: String? = nil, context: String? = nil,
        environment: [String: String] = ProcessInfo.processInfo.environment,
        serviceAccountDirectory: String = serviceAccountDirectory
    ) throws(KubeConfigError) -> KubeClientConfiguration {
        if let kubeconfig, !kubeconfig.isEmpty {
            return try .kubeconfig(path: kubeconfig, context: context)
        }
        if let list = environment["KUBECONFIG"], let first = list.split(separator: ":").first(where: { !$0.isEmpty }) {
            return try .kubeconfig(path: String(first), context: context)
        }
        if let host = environment["KUBERNETES_SERVICE_HOST"], !host.isEmpty {
            return try .inCluster(environment: environment, directory: serviceAccountDirectory)
        }
        let home = environment["HOME"] ?? NSHomeDirectory()
        return try .kubeconfig(path: home + "/.kube/config", context: context)
    }
}
