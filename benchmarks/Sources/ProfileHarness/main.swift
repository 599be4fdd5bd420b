// A bare loop over one benchmarked operation, without the benchmark framework,
// for profilers: the same inputs as CoreBenchmarks (from CoreFixtures).
//
//   swift build -c release --product ProfileHarness
//   valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out \
//       .build/release/ProfileHarness parse-decide:0 20000
//   callgrind_annotate --inclusive=yes /tmp/cg.out | head -60
//
// Operations: parse-decide:N (N indexes requestCases, see --list), parse,
// decide:N, cached, cold, bare, mint. Setup (policy load, key generation,
// cache warm-up) runs before the loop and shows up in the profile as a
// constant; run enough iterations that the loop dominates.

import CoreFixtures
import Foundation
import IsthmusPolicy
import IsthmusRequestInfo
import IsthmusTrust

@_optimize(none) func consume(_: some Any) {}
@_optimize(none) func opaque<T>(_ value: T) -> T { value }

func parse(_ method: String, _ target: String) -> RequestAttributes {
    do {
        return try RequestAttributes(method: method, target: target)
    } catch {
        fatalError("\(method) \(target) was rejected: \(error)")
    }
}

let arguments = CommandLine.arguments.dropFirst()
if arguments.first == "--list" || arguments.isEmpty {
    for (index, request) in requestCases.enumerated() {
        print("\(index): \(request.name)  \(request.method) \(request.target)")
    }
    print("usage: ProfileHarness <parse-decide:N|parse|decide:N|cached|cold|bare|mint> [iterations]")
    exit(arguments.isEmpty ? 2 : 0)
}
let operation = arguments.first!
let iterations = arguments.dropFirst().first.flatMap { Int($0) } ?? 100_000

func requestCase(_ operation: String) -> RequestCase {
    guard let index = operation.split(separator: ":").last.flatMap({ Int($0) }), requestCases.indices.contains(index)
    else { fatalError("\(operation): expected an index 0..<\(requestCases.count)") }
    return requestCases[index]
}

switch operation {
case let op where op.hasPrefix("parse-decide:"):
    let policy = loadShippedPolicies()
    let request = requestCase(op)
    for _ in 0..<iterations {
        consume(policy.decide(parse(opaque(request.method), opaque(request.target)), peer: peerUUID))
    }
case "parse":
    let request = longestRequestCase
    for _ in 0..<iterations {
        consume(parse(opaque(request.method), opaque(request.target)))
    }
case let op where op.hasPrefix("decide:"):
    let policy = loadShippedPolicies()
    let request = requestCase(op)
    let attributes = parse(request.method, request.target)
    for _ in 0..<iterations {
        consume(policy.decide(opaque(attributes), peer: peerUUID))
    }
case "cached":
    let tokens = TokenFixture()
    let cache = tokens.warmCache()
    for _ in 0..<iterations {
        consume(try! tokens.verifier.verify(opaque(tokens.token), scope: .api, now: now, cache: cache))
    }
case "cold":
    let tokens = TokenFixture()
    for _ in 0..<iterations {
        consume(try! tokens.verifier.verify(opaque(tokens.token), scope: .api, now: now))
    }
case "bare":
    let tokens = TokenFixture()
    for _ in 0..<iterations {
        consume(tokens.bareKey.isValidSignature(opaque(tokens.signature), for: opaque(tokens.signingInput)))
    }
case "mint":
    let tokens = TokenFixture()
    for _ in 0..<iterations {
        consume(mint(opaque(tokens.claims), with: tokens.key))
    }
default:
    fatalError("unknown operation \(operation); try --list")
}
