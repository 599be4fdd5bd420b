// swift-tools-version: 6.1
import PackageDescription

// Dependencies point toward the pure core modules; only the `isthmus`
// executable (through IsthmusCLI) imports everything.
let package = Package(
    name: "isthmus",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "isthmus", targets: ["isthmus"]),
        .library(name: "IsthmusRequestInfo", targets: ["IsthmusRequestInfo"]),
        .library(name: "IsthmusTrust", targets: ["IsthmusTrust"]),
        .library(name: "IsthmusPolicy", targets: ["IsthmusPolicy"]),
        .library(name: "IsthmusKubeTypes", targets: ["IsthmusKubeTypes"]),
        .library(name: "IsthmusHTTP", targets: ["IsthmusHTTP"]),
        .library(name: "IsthmusLogging", targets: ["IsthmusLogging"]),
        .library(name: "IsthmusFakeAPIServer", targets: ["IsthmusFakeAPIServer"]),
        .library(name: "IsthmusAdmission", targets: ["IsthmusAdmission"]),
        .library(name: "IsthmusProxy", targets: ["IsthmusProxy"]),
        .library(name: "IsthmusKubeClient", targets: ["IsthmusKubeClient"]),
        .library(name: "IsthmusController", targets: ["IsthmusController"]),
        .library(name: "IsthmusMetadata", targets: ["IsthmusMetadata"]),
        .library(name: "IsthmusControllerService", targets: ["IsthmusControllerService"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.7.4"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/x-sheep/swift-property-based.git", from: "2.0.1"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-nio-http2.git", from: "1.46.0"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
    ],
    targets: [
        // Kubernetes request parsing: method + request target -> RequestAttributes,
        // exactly as kube-apiserver's RequestInfo derives them. No I/O, no Foundation.
        .target(name: "IsthmusRequestInfo"),
        // Peer trust: Ed25519 keys as PEM, EdDSA JWTs, the trusted peers file,
        // the verified-token cache. No network I/O. Reads JSON with
        // IsthmusKubeTypes' reader in its strict mode.
        .target(
            name: "IsthmusTrust",
            dependencies: [
                "IsthmusKubeTypes",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
            ]),
        // Allowlist policies: RBAC-shaped YAML compiled at load, decided per request.
        .target(
            name: "IsthmusPolicy",
            dependencies: [
                "IsthmusRequestInfo",
                .product(name: "Yams", package: "Yams"),
            ]),
        // Kubernetes wire values: Status, ObjectMeta, WatchEvent as JSON. No I/O.
        .target(name: "IsthmusKubeTypes"),
        // Shared NIO parts: TLS/ALPN server bootstrap (h2 + http/1.1), self-signed
        // CA and serving certificates, Status responses. Reused by the proxy.
        .target(
            name: "IsthmusHTTP",
            dependencies: [
                "IsthmusKubeTypes",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]),
        // swift-log's handler for every service: JSON lines or terminal text on
        // standard error, bootstrapped once by the command that runs.
        .target(
            name: "IsthmusLogging",
            dependencies: [
                "IsthmusKubeTypes",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]),
        // In-memory Kubernetes API server: the upstream for dev mode, tests, benchmarks.
        .target(
            name: "IsthmusFakeAPIServer",
            dependencies: [
                "IsthmusKubeTypes", "IsthmusHTTP",
                .product(name: "Yams", package: "Yams"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]),
        // The proxy's admission of a request head (shape, token, RequestInfo,
        // protected objects, policy): pure, no NIO, so it is tested and fuzzed alone.
        .target(
            name: "IsthmusAdmission",
            dependencies: ["IsthmusRequestInfo", "IsthmusTrust", "IsthmusPolicy"]),
        // The proxy's NIO data path, built on the admission pipeline.
        .target(
            name: "IsthmusProxy",
            dependencies: [
                "IsthmusAdmission", "IsthmusRequestInfo", "IsthmusTrust", "IsthmusPolicy", "IsthmusKubeTypes", "IsthmusHTTP",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]),
        // Kubernetes API client: kubeconfig / in-cluster configuration, typed verbs,
        // watch streams and an informer whose retry decisions are a pure state machine.
        .target(
            name: "IsthmusKubeClient",
            dependencies: [
                "IsthmusKubeTypes",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]),
        // The IstioMulticluster controller's decisions: spec and metadata parsing,
        // requirements, conditions, desired Secrets, reconcile plans. No I/O.
        .target(
            name: "IsthmusController",
            dependencies: [
                "IsthmusTrust", "IsthmusKubeTypes",
                .product(name: "Yams", package: "Yams"),
            ]),
        // The metadata service: public and private metadata documents (pure),
        // ingress gateway discovery (pure), and the server that serves them.
        .target(
            name: "IsthmusMetadata",
            dependencies: [
                "IsthmusTrust", "IsthmusKubeTypes", "IsthmusHTTP", "IsthmusKubeClient",
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]),
        // The controller's I/O: the Kubernetes client, metadata fetches, the
        // round loop, leader election and the admin port around IsthmusController.
        .target(
            name: "IsthmusControllerService",
            dependencies: [
                "IsthmusController", "IsthmusKubeClient", "IsthmusTrust", "IsthmusKubeTypes", "IsthmusHTTP",
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]),
        // The command implementations, kept in a library so tests can drive them.
        .target(
            name: "IsthmusCLI",
            dependencies: [
                "IsthmusRequestInfo", "IsthmusTrust", "IsthmusPolicy",
                "IsthmusFakeAPIServer", "IsthmusHTTP", "IsthmusProxy", "IsthmusMetadata",
                "IsthmusControllerService", "IsthmusController", "IsthmusKubeClient", "IsthmusLogging",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Yams", package: "Yams"),
            ]),
        .executableTarget(name: "isthmus", dependencies: ["IsthmusCLI"]),

        // Test-only helpers shared by the test targets (eventually, child
        // processes); never a dependency of a product.
        .target(
            name: "IsthmusTestSupport",
            path: "Tests/IsthmusTestSupport"),
        .testTarget(
            name: "IsthmusTestSupportTests",
            dependencies: ["IsthmusTestSupport"]),
        .testTarget(
            name: "IsthmusRequestInfoTests",
            dependencies: [
                "IsthmusRequestInfo",
                .product(name: "PropertyBased", package: "swift-property-based"),
            ]),
        .testTarget(
            name: "IsthmusTrustTests",
            dependencies: [
                "IsthmusTrust",
                .product(name: "Crypto", package: "swift-crypto"),
            ]),
        .testTarget(
            name: "IsthmusPolicyTests",
            dependencies: [
                "IsthmusPolicy", "IsthmusRequestInfo",
                .product(name: "PropertyBased", package: "swift-property-based"),
            ]),
        .testTarget(
            name: "IsthmusLoggingTests",
            dependencies: [
                "IsthmusLogging", "IsthmusKubeTypes",
                .product(name: "Logging", package: "swift-log"),
            ]),
        .testTarget(
            name: "IsthmusKubeTypesTests",
            dependencies: ["IsthmusKubeTypes"]),
        .testTarget(
            name: "IsthmusHTTPTests",
            dependencies: ["IsthmusTestSupport",
                "IsthmusHTTP",
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
            ]),
        .testTarget(
            name: "IsthmusFakeAPIServerTests",
            dependencies: [
                "IsthmusFakeAPIServer", "IsthmusHTTP", "IsthmusKubeTypes",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "InMemoryLogging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]),
        .testTarget(
            name: "IsthmusAdmissionTests",
            dependencies: ["IsthmusAdmission", "IsthmusPolicy", "IsthmusRequestInfo", "IsthmusTrust"]),
        .testTarget(
            name: "IsthmusProxyTests",
            dependencies: ["IsthmusTestSupport",
                "IsthmusAdmission", "IsthmusProxy", "IsthmusTrust", "IsthmusPolicy", "IsthmusRequestInfo",
                "IsthmusFakeAPIServer", "IsthmusHTTP", "IsthmusKubeTypes",
                .product(name: "MetricsTestKit", package: "swift-metrics"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]),
        .testTarget(
            name: "IsthmusKubeClientTests",
            dependencies: ["IsthmusTestSupport",
                "IsthmusKubeClient", "IsthmusKubeTypes", "IsthmusFakeAPIServer", "IsthmusHTTP",
            ]),
        .testTarget(
            name: "IsthmusControllerTests",
            dependencies: [
                "IsthmusController", "IsthmusTrust", "IsthmusKubeTypes",
                .product(name: "Yams", package: "Yams"),
                .product(name: "PropertyBased", package: "swift-property-based"),
            ]),
        .testTarget(
            name: "IsthmusMetadataTests",
            dependencies: ["IsthmusTestSupport",
                "IsthmusMetadata", "IsthmusTrust", "IsthmusKubeTypes", "IsthmusHTTP", "IsthmusKubeClient",
                "IsthmusFakeAPIServer",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "InMemoryLogging", package: "swift-log"),
            ]),
        .testTarget(
            name: "IsthmusControllerServiceTests",
            dependencies: ["IsthmusTestSupport",
                "IsthmusControllerService", "IsthmusController", "IsthmusKubeClient", "IsthmusKubeTypes", "IsthmusTrust",
                "IsthmusFakeAPIServer", "IsthmusHTTP", "IsthmusMetadata", "IsthmusProxy",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
                .product(name: "InMemoryLogging", package: "swift-log"),
            ]),
        // Runs the built `isthmus` binary as an operator would.
        .testTarget(
            name: "IsthmusCLITests",
            dependencies: ["IsthmusTestSupport", "isthmus", "IsthmusCLI", "IsthmusTrust", "IsthmusProxy"]),
    ],
    swiftLanguageModes: [.v6]
)
