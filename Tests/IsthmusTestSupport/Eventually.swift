import Testing

/// Polls `condition` until it holds; records a test issue naming `what` if it
/// still does not hold after `deadline`. A liveness check with a generous
/// deadline, never a timing assertion: every caller states its deadline.
///
/// `what` is evaluated only on failure, so it may describe live state.
/// Returns whether the condition held, for callers that must stop on failure.
@discardableResult
public func eventually(_ what: @autoclosure () -> String, deadline: Duration,
                       pollingEvery interval: Duration = .milliseconds(50),
                       sourceLocation: SourceLocation = #_sourceLocation,
                       _ condition: () async throws -> Bool) async rethrows -> Bool {
    let clock = ContinuousClock()
    let end = clock.now + deadline
    while clock.now < end {
        if try await condition() { return true }
        try? await Task.sleep(for: interval)
    }
    Issue.record("never happened within \(deadline): \(what())", sourceLocation: sourceLocation)
    return false
}

/// Polls `condition` every 5 ms for at most `deadline` after `start`; the time
/// it took to hold, measured from `start`, or nil if it never did. For tests
/// that measure how quickly something happens.
public func timeUntil(from start: ContinuousClock.Instant, deadline: Duration,
                      _ condition: () -> Bool) async -> Duration? {
    let clock = ContinuousClock()
    while clock.now - start < deadline {
        if condition() { return clock.now - start }
        try? await Task.sleep(for: .milliseconds(5))
    }
    return nil
}
