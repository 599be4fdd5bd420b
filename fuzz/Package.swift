// swift-tools-version: 6.1
import PackageDescription

// libFuzzer targets for the parsers that see untrusted bytes first: the request
// target parser, the bearer token parser, and what the proxy never serves. In their own package so the
// product's builds stay free of sanitizer flags. Run: ./fuzz/run [seconds]
let package = Package(
    name: "isthmus-fuzz",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "isthmus", path: ".."),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
    ],
    targets: [
        .target(name: "CFuzzerDriver"),
        .executableTarget(
            name: "FuzzRequestTarget",
            dependencies: ["CFuzzerDriver", .product(name: "IsthmusRequestInfo", package: "isthmus")]),
        // What no peer is served: refusals, and narrowed selectors re-parsed as the API server would.
        .executableTarget(
            name: "FuzzProtectedObjects",
            dependencies: ["CFuzzerDriver", .product(name: "IsthmusPolicy", package: "isthmus")]),
        // Crashes on purpose: the runner's own test (./fuzz/run --self-test).
        .executableTarget(name: "FuzzRunnerSelfTest", dependencies: ["CFuzzerDriver"]),
        .executableTarget(
            name: "FuzzToken",
            dependencies: [
                "CFuzzerDriver",
                .product(name: "IsthmusTrust", package: "isthmus"),
                .product(name: "IsthmusKubeTypes", package: "isthmus"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]),
    ],
    swiftLanguageModes: [.v6]
)
