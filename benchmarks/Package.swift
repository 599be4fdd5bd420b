// swift-tools-version: 6.1
import PackageDescription

// Micro-benchmarks of the decision core, with ordo-one/benchmark, in their own
// package so the product's builds and tests stay fast.
// Run: cd benchmarks && swift package --allow-writing-to-package-directory benchmark
// Figures and details: README.md.
let package = Package(
    name: "isthmus-benchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "isthmus", path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark.git", from: "1.38.1", traits: ["MallocInterposer"]),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
    ],
    targets: [
        .executableTarget(
            name: "CoreBenchmarks",
            dependencies: [
                "CoreFixtures",
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "IsthmusRequestInfo", package: "isthmus"),
                .product(name: "IsthmusPolicy", package: "isthmus"),
                .product(name: "IsthmusTrust", package: "isthmus"),
            ],
            path: "Benchmarks/CoreBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        // The benchmarks' inputs: the requests, the shipped policies, the token.
        .target(
            name: "CoreFixtures",
            dependencies: [
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "IsthmusRequestInfo", package: "isthmus"),
                .product(name: "IsthmusPolicy", package: "isthmus"),
                .product(name: "IsthmusTrust", package: "isthmus"),
            ],
            path: "Sources/CoreFixtures"
        ),
        // The same operations in a bare loop, for valgrind/perf (see its main.swift).
        // Kept out of Benchmarks/: the plugin runs every executable there as a suite.
        .executableTarget(
            name: "ProfileHarness",
            dependencies: [
                "CoreFixtures",
                .product(name: "IsthmusRequestInfo", package: "isthmus"),
                .product(name: "IsthmusPolicy", package: "isthmus"),
                .product(name: "IsthmusTrust", package: "isthmus"),
            ],
            path: "Sources/ProfileHarness"
        ),
    ],
    swiftLanguageModes: [.v6]
)
