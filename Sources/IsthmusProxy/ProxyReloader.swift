import Foundation
import IsthmusAdmission
import IsthmusHTTP
import IsthmusPolicy
import IsthmusTrust
import Logging
import NIOConcurrencyHelpers

/// A file (or directory) the proxy re-reads while it runs.
public enum ReloadSource: String, Sendable, Hashable, CaseIterable {
    /// The trusted peers file.
    case peers
    /// The policy directory.
    case policy
    /// The serving certificate and key files (only when given as files).
    case servingCertificate
}

/// What the reloads of each source did so far. Sendable and cheap to copy:
/// `/readyz` and `/metrics` read it through ``ProxyServer/reloadStatus``.
public struct ReloadStatus: Sendable, Hashable {
    public struct Source: Sendable, Hashable {
        /// When the source last loaded, at start or on a reload.
        public var lastSuccess: Date?
        /// When a reload last failed.
        public var lastFailure: Date?
        /// Why the latest attempt failed (the previous state is still served);
        /// nil when the latest attempt succeeded.
        public var lastError: String?
        /// Reloads applied since start (the initial load is not counted).
        public var successes = 0
        /// Reloads refused since start.
        public var failures = 0

        public init() {}
    }

    public var sources: [ReloadSource: Source] = [:]

    public init() {}

    public subscript(source: ReloadSource) -> Source {
        get { sources[source] ?? Source() }
        set { sources[source] = newValue }
    }

    mutating func loaded(_ source: ReloadSource, at time: Date, initial: Bool = false) {
        self[source].lastSuccess = time
        self[source].lastError = nil
        if !initial { self[source].successes += 1 }
    }

    mutating func refused(_ source: ReloadSource, error: String, at time: Date) {
        self[source].lastFailure = time
        self[source].lastError = error
        self[source].failures += 1
    }
}

/// Decides which sources need a reload: those whose contents differ from
/// the last contents seen, applied or refused. A refused file is tried
/// (and logged) once per distinct content, not on every poll.
struct ReloadChangeDetector {
    private var seen: [ReloadSource: [UInt8]] = [:]

    /// Records `contents` and says whether the source should be reloaded.
    mutating func shouldReload(_ source: ReloadSource, contents: [UInt8], forced: Bool) -> Bool {
        defer { seen[source] = contents }
        return forced || seen[source] != contents
    }
}

/// The serving certificate and key files, polled for changes (a cert-manager
/// or kubelet Secret update replaces them in place).
public struct ServingCertificateFiles: Sendable, Hashable {
    public var certificate: String
    public var key: String

    public init(certificate: String, key: String) {
        self.certificate = certificate
        self.key = key
    }

    /// Reads both files; the certificate file also serves as its own CA entry.
    public func load() throws -> ServingCertificates {
        let certificatePEM = try String(contentsOfFile: certificate, encoding: .utf8)
        let keyPEM = try String(contentsOfFile: key, encoding: .utf8)
        return ServingCertificates(caCertificatePEM: certificatePEM, certificatePEM: certificatePEM, privateKeyPEM: keyPEM)
    }
}

/// Re-reads the peers file, the policy directory and the serving certificate
/// (every poll interval, and on demand for SIGHUP), and applies what changed
/// off the data path: a new ``AdmissionPipeline`` swapped in whole, a new TLS
/// context for new connections. A bad file keeps the previous state.
actor ProxyReloader {
    private let configuration: ProxyConfiguration
    private let services: ProxyServices
    private let server: HTTPServer
    private let certificates: NIOLockedValueBox<ServingCertificates>
    private var detector = ReloadChangeDetector()
    nonisolated let status: NIOLockedValueBox<ReloadStatus>

    init(configuration: ProxyConfiguration, services: ProxyServices, server: HTTPServer,
         certificates: NIOLockedValueBox<ServingCertificates>) {
        self.configuration = configuration
        self.services = services
        self.server = server
        self.certificates = certificates
        var status = ReloadStatus()
        var detector = ReloadChangeDetector()
        let now = Date()
        for source in Self.sources(configuration) {
            status.loaded(source, at: now, initial: true)
            // What start() just loaded; a change from here on is a reload.
            _ = detector.shouldReload(source, contents: Self.contents(of: source, configuration), forced: false)
        }
        self.status = NIOLockedValueBox(status)
        self.detector = detector
    }

    private static func sources(_ configuration: ProxyConfiguration) -> [ReloadSource] {
        configuration.tlsFiles == nil || configuration.plainHTTP ? [.peers, .policy] : [.peers, .policy, .servingCertificate]
    }

    /// The bytes whose change triggers a reload; a read error is content too,
    /// so a file that disappears is reported once.
    private static func contents(of source: ReloadSource, _ configuration: ProxyConfiguration) -> [UInt8] {
        func file(_ path: String) -> [UInt8] {
            if let data = FileManager.default.contents(atPath: path) { return [0] + [UInt8](data) }
            return [1] + Array(path.utf8)
        }
        switch source {
        case .peers:
            return file(configuration.peersFile)
        case .policy:
            do {
                var bytes: [UInt8] = [0]
                for policy in try PolicySet.sources(inDirectory: configuration.policyDirectory) {
                    bytes += Array(policy.name.utf8) + [0] + Array(policy.contents.utf8) + [0]
                }
                return bytes
            } catch {
                return [1] + Array(error.description.utf8)
            }
        case .servingCertificate:
            guard let files = configuration.tlsFiles else { return [] }
            return file(files.certificate) + [0xFF] + file(files.key)
        }
    }

    /// Reloads every source that changed (every source when `forced`).
    func check(forced: Bool) {
        for source in Self.sources(configuration) {
            guard detector.shouldReload(source, contents: Self.contents(of: source, configuration), forced: forced) else {
                continue
            }
            do {
                try apply(source)
                status.withLockedValue { $0.loaded(source, at: Date()) }
                configuration.logger.info("reloaded \(describe(source))", metadata: ["source": "\(source.rawValue)"])
                services.reloadRefusals.withLockedValue { $0[source] = nil }
                services.operations.metrics.recordReload(source: source.rawValue, succeeded: true)
            } catch {
                let message = "\(error)".split(separator: "\n").joined(separator: "; ")
                status.withLockedValue { $0.refused(source, error: message, at: Date()) }
                services.reloadRefusals.withLockedValue { $0[source] = message }
                services.operations.metrics.recordReload(source: source.rawValue, succeeded: false)
                configuration.logger.warning("reload of \(describe(source)) refused, keeping the previous one: \(message)",
                                             metadata: ["source": "\(source.rawValue)"])
            }
        }
    }

    private func describe(_ source: ReloadSource) -> String {
        switch source {
        case .peers: "the trusted peers file \(configuration.peersFile)"
        case .policy: "the policy directory \(configuration.policyDirectory)"
        case .servingCertificate: "the serving certificate \(configuration.tlsFiles?.certificate ?? "")"
        }
    }

    private func apply(_ source: ReloadSource) throws {
        switch source {
        case .peers:
            let data = try Data(contentsOf: URL(fileURLWithPath: configuration.peersFile))
            let peers = try TrustedPeers(json: [UInt8](data))
            let verifier = TokenVerifier(localClusterUUID: configuration.localClusterUUID, peers: peers,
                                         leeway: configuration.tokenLeeway, acceptedIssuers: configuration.acceptedIssuers)
            let current = services.admission.withLockedValue { $0 }
            // Tokens verified against the old keys must be checked again.
            current.cache.synchronize(with: verifier)
            services.install(current.replacing(verifier: verifier))
        case .policy:
            let policy = try PolicySet.load(directory: configuration.policyDirectory)
            let current = services.admission.withLockedValue { $0 }
            services.install(current.replacing(policy: policy))
        case .servingCertificate:
            guard let files = configuration.tlsFiles else { return }
            let loaded = try files.load()
            try server.replaceCertificates(loaded)
            certificates.withLockedValue { $0 = loaded }
        }
    }
}
