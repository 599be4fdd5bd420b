import NIOHTTP1
import Testing

@testable import IsthmusProxy

@Suite("Relay state machine")
struct RelayStateMachineTests {
    private func streaming(clientWritable: Bool = true) -> RelayStateMachine {
        var machine = RelayStateMachine()
        machine.admitted()
        #expect(machine.upstreamOpened() == .sendRequest)
        #expect(machine.upstreamHead(clientWritable: clientWritable) == .forward)
        return machine
    }

    @Test("a request runs idle → connecting → awaiting head → streaming → idle")
    func happyPath() {
        var machine = streaming()
        #expect(machine.upstreamBody() == .forward)
        #expect(machine.upstreamWantsRead() == .read)
        #expect(machine.upstreamEnd() == .forwardEnd)
        #expect(machine.isIdle)
        // A second request on the same HTTP/1.1 connection starts over.
        machine.admitted()
        #expect(machine.state == .connecting)
    }

    @Test("an unwritable client holds the upstream read until it drains")
    func backpressure() {
        var machine = streaming()
        #expect(machine.clientWritabilityChanged(writable: false) == .none)
        #expect(machine.upstreamWantsRead() == .hold)
        #expect(machine.state == .streaming(clientWritable: false, readHeld: true))
        #expect(machine.clientWritabilityChanged(writable: false) == .none)
        #expect(machine.clientWritabilityChanged(writable: true) == .resumeReading)
        #expect(machine.upstreamWantsRead() == .read)
        // Writable again without a held read: nothing to resume.
        #expect(machine.clientWritabilityChanged(writable: true) == .none)
    }

    @Test("a client unwritable when the head arrives holds the first read")
    func unwritableAtHead() {
        var machine = streaming(clientWritable: false)
        #expect(machine.upstreamWantsRead() == .hold)
    }

    @Test("a client that leaves mid-stream closes the upstream, and nothing more is relayed")
    func clientLeavesMidStream() {
        var machine = streaming()
        #expect(machine.clientClosed() == .closeUpstream)
        #expect(machine.upstreamBody() == .drop)
        #expect(machine.upstreamEnd() == .drop)
        #expect(machine.upstreamClosed() == .none)
        #expect(machine.watchDeadline() == .none)
    }

    @Test("a client that leaves while the upstream stream opens gets it closed once open")
    func clientLeavesWhileConnecting() {
        var machine = RelayStateMachine()
        machine.admitted()
        #expect(machine.clientClosed() == .none)
        #expect(machine.upstreamOpened() == .closeUpstream)
        #expect(machine.upstreamFailed() == .ignore)
    }

    @Test("a client that leaves before the head closes the upstream")
    func clientLeavesAwaitingHead() {
        var machine = RelayStateMachine()
        machine.admitted()
        _ = machine.upstreamOpened()
        #expect(machine.clientClosed() == .closeUpstream)
    }

    @Test("an upstream that fails to open or times out before its head is answered with a Status")
    func failuresBeforeHead() {
        var machine = RelayStateMachine()
        machine.admitted()
        #expect(machine.upstreamFailed() == .respond)
        #expect(machine.isIdle)
        machine.admitted()
        _ = machine.upstreamOpened()
        #expect(machine.upstreamFailed() == .respond)  // response-header timeout
        #expect(machine.upstreamHead(clientWritable: true) == .drop)  // a late head is dropped
    }

    @Test("an upstream that closes before its head is a 502; mid-body it closes the client")
    func upstreamCloses() {
        var machine = RelayStateMachine()
        machine.admitted()
        _ = machine.upstreamOpened()
        #expect(machine.upstreamClosed() == .respondBadGateway)
        var streamingMachine = streaming()
        #expect(streamingMachine.upstreamClosed() == .closeClient)
        #expect(streamingMachine.state == .closed)
        // After a clean end the stream's close is expected.
        var ended = streaming()
        _ = ended.upstreamEnd()
        #expect(ended.upstreamClosed() == .none)
    }

    @Test("an upstream lost between two watch events ends the response cleanly; before a head it is still a 502")
    func upstreamLostBetweenWatchEvents() {
        var machine = streaming()
        #expect(machine.upstreamClosed(betweenWatchEvents: true) == .endResponse)
        #expect(machine.state == .idle)
        var waiting = RelayStateMachine()
        waiting.admitted()
        _ = waiting.upstreamOpened()
        #expect(waiting.upstreamClosed(betweenWatchEvents: true) == .respondBadGateway)
    }

    @Test("the watch limit ends a streaming response cleanly, once")
    func watchDeadline() {
        var machine = streaming()
        #expect(machine.watchDeadline() == .endResponse)
        #expect(machine.isIdle)
        #expect(machine.watchDeadline() == .none)
        #expect(machine.upstreamEnd() == .drop)
    }

    @Test("watch limits are the cap minus up to the jitter")
    func watchLimit() {
        let limit = WatchLimit(maximum: .seconds(1000), jitter: 0.1)
        #expect(limit.duration(unit: 0) == .seconds(1000))
        #expect(limit.duration(unit: 0.5) == .seconds(950))
        #expect(limit.duration(unit: 1) == .seconds(900))
        #expect(WatchLimit(maximum: .seconds(10), jitter: 5).jitter == 1)
    }

    @Test("hop-by-hop response headers and those Connection names are not relayed")
    func hopByHop() {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "application/json")
        headers.add(name: "Transfer-Encoding", value: "chunked")
        headers.add(name: "Connection", value: "keep-alive, X-Private")
        headers.add(name: "X-Private", value: "1")
        headers.add(name: "Keep-Alive", value: "timeout=5")
        headers.add(name: "Audit-Id", value: "abc")
        let relayed = HopByHop.relayed(headers)
        #expect(relayed.map(\.name) == ["Content-Type", "Audit-Id"])
    }
}
