// Micro-benchmarks of Isthmus's per-request decision core: request parsing,
// the allowlist decision against the shipped default policies, and bearer
// token verification (cached, cold, and the bare Ed25519 baseline).
//
// See ../../README.md for what each benchmark measures, how to run them and
// the latest figures. Inputs live in ../../Sources/CoreFixtures.

import Benchmark
import CoreFixtures
import IsthmusPolicy
import IsthmusRequestInfo
import IsthmusTrust

/// `RequestAttributes(method:target:)`, with the (impossible here) rejection
/// turned into a crash so the loop measures the success path only.
@inline(__always)
private func parse(_ method: String, _ target: String) -> RequestAttributes {
    do {
        return try RequestAttributes(method: method, target: target)
    } catch {
        fatalError("\(method) \(target) was rejected: \(error)")
    }
}

let benchmarks: @Sendable () -> Void = {
    // Bounded runs: each benchmark stops after maxDuration (3 s) or
    // maxIterations, whichever comes first; the suite runs in about a minute.
    let metrics: [BenchmarkMetric] = [.wallClock, .cpuTotal, .mallocCountTotal, .throughput]
    /// Sub-microsecond operations: 1000 per measured iteration, so timer and
    /// bookkeeping overhead vanish; figures are reported per operation.
    let fast = Benchmark.Configuration(
        metrics: metrics, timeUnits: .nanoseconds, warmupIterations: 20, scalingFactor: .kilo,
        maxDuration: .seconds(3), maxIterations: 1_000_000)
    /// Tens of microseconds (Ed25519): one operation per measured iteration.
    let slow = Benchmark.Configuration(
        metrics: metrics, timeUnits: .nanoseconds, warmupIterations: 200, scalingFactor: .one,
        maxDuration: .seconds(3), maxIterations: 1_000_000)

    // MARK: parse + decide

    let policy = loadShippedPolicies()  // checks every case's expected verdict

    for request in requestCases {
        Benchmark("Parse+decide: \(request.name)", configuration: fast) { benchmark in
            let method = request.method
            let target = request.target
            for _ in benchmark.scaledIterations {
                let attributes = parse(identity(method), identity(target))
                blackHole(policy.decide(attributes, peer: peerUUID))
            }
        }
    }

    Benchmark("Parse only: \(longestRequestCase.name)", configuration: fast) { benchmark in
        let method = longestRequestCase.method
        let target = longestRequestCase.target
        for _ in benchmark.scaledIterations {
            blackHole(parse(identity(method), identity(target)))
        }
    }

    // The decision alone, for the longest request (so Parse only + Decide only
    // ~ its Parse+decide) and for the denied one, which tries every rule.
    for request in [longestRequestCase, deniedRequestCase] {
        Benchmark("Decide only: \(request.name)", configuration: fast) { benchmark in
            let attributes = parse(request.method, request.target)
            for _ in benchmark.scaledIterations {
                blackHole(policy.decide(identity(attributes), peer: peerUUID))
            }
        }
    }

    // MARK: tokens

    let tokens = TokenFixture()
    // One cache, warmed once: the token istiod presents on every request.
    let cache = tokens.warmCache()

    Benchmark("Token: cached check", configuration: fast) { benchmark in
        for _ in benchmark.scaledIterations {
            do {
                blackHole(try tokens.verifier.verify(identity(tokens.token), scope: .api, now: now, cache: cache))
            } catch {
                fatalError("cached check failed: \(error)")
            }
        }
    }

    Benchmark("Token: cold verify", configuration: slow) { benchmark in
        for _ in benchmark.scaledIterations {
            do {
                blackHole(try tokens.verifier.verify(identity(tokens.token), scope: .api, now: now))
            } catch {
                fatalError("cold verify failed: \(error)")
            }
        }
    }

    Benchmark("Ed25519: bare verify", configuration: slow) { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(tokens.bareKey.isValidSignature(identity(tokens.signature), for: identity(tokens.signingInput)))
        }
    }

    // Calibration: what the framework itself adds to one measured iteration
    // of the `.one`-scaled benchmarks above (mallocs and time of its own
    // bookkeeping); subtract it from their per-operation figures.
    Benchmark("Overhead: empty iteration (scaling .one)", configuration: slow) { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(identity(0))
        }
    }

    Benchmark("Token: mint", configuration: slow) { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(mint(identity(tokens.claims), with: tokens.key))
        }
    }
}
