// swift-tools-version: 6.1
import PackageDescription

// libFuzzer targets for everything that parses untrusted bytes: the request
// target, bearer tokens, what the proxy never serves, the admission of a request
// head, policy files, peer documents, IstioMulticluster objects and kubeconfigs. In their own
// package so the product's builds stay free of sanitizer flags. Run: ./fuzz/run [seconds]
let package = Package(
    name: "isthmus-fuzz",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "isthmus", path: ".."),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
    ],
    targets: [
        .target(name: "CFuzzerDriver"),
        // What more than one target needs: a byte search, the repository's policies.
        .target(name: "FuzzSupport"),
        .executableTarget(
            name: "FuzzRequestTarget",
            dependencies: ["CFuzzerDriver", .product(name: "IsthmusRequestInfo", package: "isthmus")]),
        // What no peer is served: refusals, and narrowed selectors re-parsed as the API server would.
        .executableTarget(
            name: "FuzzProtectedObjects",
            dependencies: ["CFuzzerDriver", .product(name: "IsthmusPolicy", package: "isthmus")]),
        // The proxy's admission of a request head: admitted exactly when every stage allows it,
        // and what is forwarded is canonical.
        .executableTarget(
            name: "FuzzAdmission",
            dependencies: [
                "CFuzzerDriver", "FuzzSupport",
                .product(name: "IsthmusAdmission", package: "isthmus"),
                .product(name: "IsthmusPolicy", package: "isthmus"),
                .product(name: "IsthmusRequestInfo", package: "isthmus"),
                .product(name: "IsthmusTrust", package: "isthmus"),
            ]),
        // One policy file added to the default directory: all or nothing, only additive,
        // and the same rules however the YAML is spelled.
        .executableTarget(
            name: "FuzzPolicy",
            dependencies: [
                "CFuzzerDriver", "FuzzSupport",
                .product(name: "IsthmusPolicy", package: "isthmus"),
                .product(name: "IsthmusRequestInfo", package: "isthmus"),
                .product(name: "Yams", package: "Yams"),
            ]),
        // What peers send and operators write: the trusted peers file, public and private
        // metadata (Deckhouse- and Isthmus-shaped), and metadata fetch responses.
        .executableTarget(
            name: "FuzzPeerDocuments",
            dependencies: [
                "CFuzzerDriver",
                .product(name: "IsthmusController", package: "isthmus"),
                .product(name: "IsthmusKubeTypes", package: "isthmus"),
                .product(name: "IsthmusTrust", package: "isthmus"),
            ]),
        // IstioMulticluster objects, both spec forms.
        .executableTarget(
            name: "FuzzIstioMulticluster",
            dependencies: [
                "CFuzzerDriver",
                .product(name: "IsthmusController", package: "isthmus"),
                .product(name: "IsthmusKubeTypes", package: "isthmus"),
            ]),
        // Kubeconfigs: istiod remote secrets the controller reads back and renders,
        // and what the Kubernetes client reads from --kubeconfig.
        .executableTarget(
            name: "FuzzKubeconfig",
            dependencies: [
                "CFuzzerDriver",
                .product(name: "IsthmusController", package: "isthmus"),
                .product(name: "IsthmusKubeClient", package: "isthmus"),
            ]),
        // Crashes on purpose: the runner's own test (./fuzz/run --self-test).
        .executableTarget(name: "FuzzRunnerSelfTest", dependencies: ["CFuzzerDriver"]),
        .executableTarget(
            name: "FuzzToken",
            dependencies: [
                "CFuzzerDriver", "FuzzSupport",
                .product(name: "IsthmusTrust", package: "isthmus"),
                .product(name: "IsthmusKubeTypes", package: "isthmus"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]),
    ],
    swiftLanguageModes: [.v6]
)
