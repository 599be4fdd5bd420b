import Dispatch
import Foundation
import Synchronization

/// Runs `action` on every SIGHUP (the operator's "re-read your files") until
/// the returned source is cancelled.
func onHangup(_ action: @escaping @Sendable () -> Void) -> any DispatchSourceSignal {
    signal(SIGHUP, SIG_IGN)
    let source = DispatchSource.makeSignalSource(signal: SIGHUP, queue: .global())
    source.setEventHandler(handler: action)
    source.resume()
    return source
}

/// SIGINT or SIGTERM, caught from the moment ``install()`` returns: a
/// command installs it before it says "serving", so a signal sent as soon as
/// that line appears is a graceful shutdown, never the default (fatal) action.
/// `@unchecked`: `sources` never changes after `init`; it only keeps the
/// dispatch sources alive.
final class TerminationSignal: @unchecked Sendable {
    private struct State {
        var fired = false
        var waiters: [CheckedContinuation<Void, Never>] = []
    }
    private let state = Mutex(State())
    private var sources: [any DispatchSourceSignal] = []

    static func install() -> TerminationSignal {
        let termination = TerminationSignal()
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { termination.fire() }
            source.resume()
            termination.sources.append(source)
        }
        return termination
    }

    private func fire() {
        let waiters = state.withLock { state in
            state.fired = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Returns once a signal has arrived (at once if one already has).
    func wait() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let fired = state.withLock { state in
                if !state.fired { state.waiters.append(continuation) }
                return state.fired
            }
            if fired { continuation.resume() }
        }
    }
}
