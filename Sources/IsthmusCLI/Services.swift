import Logging
import ServiceLifecycle
import UnixSignals

/// A started server as a swift-service-lifecycle `Service`: `announce` runs
/// once the group runs (SIGTERM and SIGINT are trapped by then, so a signal
/// sent once it has said "serving" is a graceful shutdown), and `stop` when
/// graceful shutdown begins.
struct ServerService: Service {
    let announce: @Sendable () async throws -> Void
    let stop: @Sendable () async throws -> Void

    func run() async throws {
        try await announce()
        // Cancelled (a sibling failed) or shut down gracefully: stop either way.
        try? await gracefulShutdown()
        try await stop()
    }
}

/// Work that runs until graceful shutdown (the controller's rounds).
struct LoopService: Service {
    let body: @Sendable () async throws -> Void

    func run() async throws {
        do {
            try await cancelWhenGracefulShutdown { try await body() }
        } catch is CancellationError {}
    }
}

/// Runs `action` on each SIGHUP (the operator's "re-read your files") until
/// graceful shutdown. SIGHUP is trapped when this is made, before the
/// service announces itself.
struct HangupService: Service {
    let signals: UnixSignalsSequence
    let action: @Sendable () async -> Void

    static func trapping(_ action: @escaping @Sendable () async -> Void) async -> HangupService {
        HangupService(signals: await UnixSignalsSequence(trapping: .sighup), action: action)
    }

    func run() async throws {
        for await _ in signals.cancelOnGracefulShutdown() { await action() }
    }
}

/// Runs `services` until SIGTERM or SIGINT, then shuts them down in reverse
/// order (the last one first), each after the one after it has finished.
func runServices(_ services: [any Service], logger: Logger) async throws {
    let group = ServiceGroup(configuration: ServiceGroupConfiguration(
        services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
    try await group.run()
}
