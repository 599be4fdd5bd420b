#if canImport(Darwin)
import Darwin
#elseif canImport(Glibc)
import Glibc
#endif
import Foundation
import NIOConcurrencyHelpers

// Free functions: inside the writer, `open`, `write` and `close` name its methods.
private func systemOpen(_ path: String, _ flags: Int32, _ mode: mode_t) -> Int32 { open(path, flags, mode) }
private func systemWrite(_ descriptor: Int32, _ bytes: UnsafeRawPointer, _ count: Int) -> Int { write(descriptor, bytes, count) }
private func systemClose(_ descriptor: Int32) -> Int32 { close(descriptor) }

/// Where a log goes.
public enum LogDestination: Sendable, Hashable {
    case off
    case standardOutput
    /// Appended to (created with mode 0640 if missing).
    case file(String)
}

/// Writes lines to a file descriptor from its own thread, so an event loop
/// only appends to a memory buffer and never waits on a slow disk or a full
/// pipe. The buffer is bounded: a line that does not fit is dropped and
/// counted (a log must never grow the proxy's memory without limit).
///
/// The thread writes at most once per ``coalescing`` interval while lines keep
/// coming: waking it for every line cost a `futex` wake and a context switch
/// per request (~5 % of the proxy's CPU on small GETs).
public final class BufferedLineWriter: Sendable {
    /// How long the writer thread lets lines gather after writing a batch.
    static let coalescing: useconds_t = 10_000
    private struct State {
        var pending: [UInt8] = []
        var closed = false
        /// Lines accepted, and lines the writer thread has written out.
        var accepted = 0
        var written = 0
        var dropped = 0
    }

    private let descriptor: Int32
    private let ownsDescriptor: Bool
    private let capacity: Int
    private let state = NIOLockedValueBox(State())
    private let wake = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)
    private let onDrop: @Sendable () -> Void

    /// Opens `destination` (nil for `.off`). A file that cannot be opened
    /// throws, naming it.
    public static func open(_ destination: LogDestination, capacityBytes: Int = 4 << 20,
                            onDrop: @escaping @Sendable () -> Void = {}) throws -> BufferedLineWriter? {
        switch destination {
        case .off:
            return nil
        case .standardOutput:
            return BufferedLineWriter(descriptor: STDOUT_FILENO, ownsDescriptor: false, capacityBytes: capacityBytes, onDrop: onDrop)
        case .file(let path):
            let descriptor = systemOpen(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o640)
            guard descriptor >= 0 else {
                throw LineWriterError(path: path, reason: String(cString: strerror(errno)))
            }
            return BufferedLineWriter(descriptor: descriptor, ownsDescriptor: true, capacityBytes: capacityBytes, onDrop: onDrop)
        }
    }

    init(descriptor: Int32, ownsDescriptor: Bool, capacityBytes: Int, onDrop: @escaping @Sendable () -> Void) {
        self.descriptor = descriptor
        self.ownsDescriptor = ownsDescriptor
        self.capacity = capacityBytes
        self.onDrop = onDrop
        let thread = Thread { [self] in self.run() }
        thread.name = "isthmus-log-writer"
        thread.start()
    }

    /// Queues `line` plus a line feed; false (and counted) if the buffer is full or closed.
    @discardableResult
    public func write(_ line: [UInt8]) -> Bool {
        let (accepted, signal) = state.withLockedValue { state -> (Bool, Bool) in
            guard !state.closed, state.pending.count + line.count + 1 <= capacity else {
                state.dropped += 1
                return (false, false)
            }
            let wasEmpty = state.pending.isEmpty
            state.pending.append(contentsOf: line)
            state.pending.append(0x0A)
            state.accepted += 1
            return (true, wasEmpty)
        }
        if signal { wake.signal() }
        if !accepted { onDrop() }
        return accepted
    }

    /// Lines dropped so far.
    public var droppedLines: Int { state.withLockedValue { $0.dropped } }

    /// Waits (polling, off any event loop) until every line accepted so far is written.
    public func flush() async {
        let target = state.withLockedValue { $0.accepted }
        while state.withLockedValue({ $0.written < target && !$0.closed }) {
            try? await Task.sleep(for: .milliseconds(5))
        }
    }

    /// Writes what is queued, stops the thread and closes an owned file. Blocks
    /// until done: call at shutdown, not on an event loop.
    public func close() {
        let first = state.withLockedValue { state in
            defer { state.closed = true }
            return !state.closed
        }
        guard first else { return }
        wake.signal()
        finished.wait()
        if ownsDescriptor { _ = systemClose(descriptor) }
    }

    private func run() {
        while true {
            wake.wait()
            while true {
                let (batch, lines, closed) = state.withLockedValue { state -> ([UInt8], Int, Bool) in
                    let batch = state.pending
                    state.pending = []
                    state.pending.reserveCapacity(min(capacity, max(4096, batch.count)))
                    return (batch, state.accepted - state.written, state.closed)
                }
                if batch.isEmpty {
                    if closed {
                        finished.signal()
                        return
                    }
                    break
                }
                writeAll(batch)
                state.withLockedValue { $0.written += lines }
                if !closed { usleep(Self.coalescing) }
            }
        }
    }

    private func writeAll(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let n = systemWrite(descriptor, buffer.baseAddress! + offset, buffer.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    return  // A broken log destination must not take the proxy down.
                }
                offset += n
            }
        }
    }
}

/// A log file that could not be opened.
public struct LineWriterError: Error, Sendable, CustomStringConvertible {
    public var path: String
    public var reason: String
    public var description: String { "cannot open \(path): \(reason)" }
}
