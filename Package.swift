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
        .library(name: "IsthmusProxy", targets: ["IsthmusProxy"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.7.4"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/x-sheep/swift-property-based.git", from: "2.0.1"),
    ],
    targets: [
        // Kubernetes request parsing: method + request target -> RequestAttributes,
        // exactly as kube-apiserver's RequestInfo derives them. No I/O, no Foundation.
        .target(name: "IsthmusRequestInfo"),
        // Peer trust: Ed25519 keys as PEM, EdDSA JWTs, the trusted peers file,
        // the verified-token cache. No network I/O.
        .target(
            name: "IsthmusTrust",
            dependencies: [
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
        // The proxy: its admission pipeline (shape, token, policy) is pure and
        // comes first; the NIO data path is built on it.
        .target(
            name: "IsthmusProxy",
            dependencies: ["IsthmusRequestInfo", "IsthmusTrust", "IsthmusPolicy"]),
        // The command implementations, kept in a library so tests can drive them.
        .target(
            name: "IsthmusCLI",
            dependencies: [
                "IsthmusRequestInfo", "IsthmusTrust", "IsthmusPolicy",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),
        .executableTarget(name: "isthmus", dependencies: ["IsthmusCLI"]),

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
            name: "IsthmusProxyTests",
            dependencies: ["IsthmusProxy", "IsthmusTrust", "IsthmusPolicy", "IsthmusRequestInfo"]),
        // Runs the built `isthmus` binary as an operator would.
        .testTarget(
            name: "IsthmusCLITests",
            dependencies: ["isthmus", "IsthmusCLI", "IsthmusTrust"]),
    ],
    swiftLanguageModes: [.v6]
)
