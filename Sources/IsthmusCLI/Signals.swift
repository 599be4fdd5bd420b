import UnixSignals

/// SIGINT or SIGTERM, trapped from the moment ``install()`` returns, for the
/// commands that are not a ServiceGroup (`isthmus dev`, `isthmus apiserver`):
/// installed before the command says "serving", so a signal sent as soon as
/// that line appears is a graceful shutdown, never the default (fatal) action.
struct TerminationSignal: Sendable {
    private let signals: UnixSignalsSequence

    static func install() async -> TerminationSignal {
        TerminationSignal(signals: await UnixSignalsSequence(trapping: .sigint, .sigterm))
    }

    /// Returns once a signal has arrived.
    func wait() async {
        var iterator = signals.makeAsyncIterator()
        _ = await iterator.next()
    }
}
