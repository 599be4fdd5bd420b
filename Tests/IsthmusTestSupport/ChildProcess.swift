import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Where tests find the programs they drive: the distribution's packages, and
/// the `isthmus` binary `swift build` put beside the test bundle.
public enum Executables {
    public static let kubectl = "/usr/bin/kubectl"
    public static let curl = "/usr/bin/curl"
    public static let openssl = "/usr/bin/openssl"

    /// The build products directory is where the test bundle itself lives.
    public static let isthmus: String = {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return ((exe as NSString).deletingLastPathComponent as NSString).appendingPathComponent("isthmus")
    }()
}

/// A finished child's exit status and everything it wrote.
public struct ChildOutput: Sendable, CustomStringConvertible {
    public var status: Int32
    public var stdout: String
    public var stderr: String

    public init(status: Int32, stdout: String, stderr: String) {
        self.status = status
        self.stdout = stdout
        self.stderr = stderr
    }

    public var description: String { "exit \(status)\nstdout: \(stdout)\nstderr: \(stderr)" }
}

/// A child that outlived its timeout; it was terminated, this is what it wrote.
public struct ChildProcessTimedOut: Error, CustomStringConvertible {
    public var executable: String
    public var arguments: [String]
    public var timeout: Duration
    public var output: ChildOutput
    public var description: String { "\(executable) \(arguments.joined(separator: " ")) still running after \(timeout)\n\(output)" }
}

public enum ChildProcess {
    /// Runs `executable` to completion. Both pipes are read concurrently on
    /// their own threads, so a child filling one pipe cannot deadlock, and no
    /// blocking read occupies the (small) cooperative thread pool.
    ///
    /// After `timeout` the child gets SIGTERM, then SIGKILL 5 s later, and this
    /// throws `ChildProcessTimedOut`. Cancelling the calling task kills the child.
    /// `environment` entries are added to this process's environment.
    public static func run(_ executable: String, _ arguments: [String], stdin: String? = nil,
                           environment: [String: String] = [:], workingDirectory: String? = nil,
                           timeout: Duration = .seconds(300)) async throws -> ChildOutput {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        if let workingDirectory { process.currentDirectoryURL = URL(fileURLWithPath: workingDirectory) }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        let input = stdin.map { _ in Pipe() }
        process.standardInput = input ?? FileHandle.nullDevice
        let exited = ExitSignal()
        process.terminationHandler = { _ in exited.fire() }
        try process.run()
        let pid = process.processIdentifier

        if let input, let stdin {
            Thread.detachNewThread {
                try? input.fileHandleForWriting.write(contentsOf: Data(stdin.utf8))
                try? input.fileHandleForWriting.close()
            }
        }
        let timedOut = Mutex(false)
        let watchdog = Task {
            try await Task.sleep(for: timeout)
            timedOut.withLock { $0 = true }
            _ = kill(pid, SIGTERM)
            try await Task.sleep(for: .seconds(5))
            _ = kill(pid, SIGKILL)
        }
        let (o, e) = await withTaskCancellationHandler {
            async let stdoutData = onThread { out.fileHandleForReading.readDataToEndOfFile() }
            async let stderrData = onThread { err.fileHandleForReading.readDataToEndOfFile() }
            return await (stdoutData, stderrData)
        } onCancel: {
            _ = kill(pid, SIGKILL)
        }
        await exited.wait()
        watchdog.cancel()
        let output = ChildOutput(status: process.terminationStatus,
                                 stdout: String(decoding: o, as: UTF8.self),
                                 stderr: String(decoding: e, as: UTF8.self))
        if timedOut.withLock({ $0 }) {
            throw ChildProcessTimedOut(executable: executable, arguments: arguments, timeout: timeout, output: output)
        }
        return output
    }
}

/// A long-running child (kubectl -w, isthmus proxy/apiserver/dev): its stdout
/// and stderr lines are collected as they arrive so a test can wait for one.
/// The child is killed by `stop()` or, at the latest, when this is released.
public final class RunningChild: Sendable {
    public let executable: String
    public let arguments: [String]
    public let processIdentifier: Int32
    private let process: ProcessBox
    private let collected: Collected
    private let exited = ExitSignal()

    /// Starts the child with stdin closed; `environment` entries are added to
    /// this process's environment.
    public init(_ executable: String, _ arguments: [String], environment: [String: String] = [:],
                workingDirectory: String? = nil) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        if let workingDirectory { process.currentDirectoryURL = URL(fileURLWithPath: workingDirectory) }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        let exited = exited
        process.terminationHandler = { _ in exited.fire() }
        try process.run()
        self.executable = executable
        self.arguments = arguments
        self.processIdentifier = process.processIdentifier
        self.process = ProcessBox(process)
        let collected = Collected()
        self.collected = collected
        for (handle, stream) in [(out.fileHandleForReading, Stream.stdout), (err.fileHandleForReading, .stderr)] {
            Thread.detachNewThread {
                while true {
                    let data = handle.availableData
                    if data.isEmpty { break }
                    collected.append(data, to: stream)
                }
                collected.close(stream)
            }
        }
    }

    deinit {
        _ = kill(processIdentifier, SIGKILL)
    }

    public enum Stream: Sendable { case stdout, stderr }

    /// Everything written to `stream` so far.
    public func output(_ stream: Stream) -> String { collected.text(stream) }

    /// Complete lines written to either stream so far, in arrival order per stream.
    public var lines: [String] { collected.lines(.stdout) + collected.lines(.stderr) }

    /// Waits until a complete line on `stream` (either, when nil) contains
    /// `marker` and returns it; nil once the child closed those streams or
    /// after `deadline`. Earlier lines count, so a late wait still finds them.
    public func waitForLine(containing marker: String, on stream: Stream? = nil,
                            deadline: Duration = .seconds(300)) async -> String? {
        let streams = stream.map { [$0] } ?? [.stdout, .stderr]
        let end = ContinuousClock.now + deadline
        while true {
            for s in streams {
                if let line = collected.lines(s).first(where: { $0.contains(marker) }) { return line }
            }
            if streams.allSatisfy({ collected.isClosed($0) }) || ContinuousClock.now >= end { return nil }
            try? await Task.sleep(for: .milliseconds(20))
        }
    }

    public var isRunning: Bool { process.value.isRunning }

    /// Sends `signal` to the child (SIGTERM, SIGHUP, ...).
    public func send(_ signal: Int32) { _ = kill(processIdentifier, signal) }

    /// Waits for the child to exit and returns its status (its termination
    /// signal if it was killed).
    public func waitForExit() async -> Int32 {
        await exited.wait()
        return process.value.terminationStatus
    }

    /// Kills the child at once (SIGKILL: children of the test runner may ignore
    /// SIGTERM) and reaps it, so its sockets are closed when this returns.
    public func stop() async {
        if !exited.hasFired { send(SIGKILL) }
        await exited.wait()
    }
}

// MARK: - Plumbing

/// Runs blocking work on its own thread, off the cooperative pool.
@discardableResult
func onThread<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        Thread.detachNewThread { continuation.resume(returning: body()) }
    }
}

/// Fires once; any number of waiters, before or after.
final class ExitSignal: Sendable {
    private let state = Mutex<(fired: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    var hasFired: Bool { state.withLock { $0.fired } }

    func fire() {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.fired = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    func wait() async {
        await withCheckedContinuation { continuation in
            let fired = state.withLock { state -> Bool in
                if !state.fired { state.waiters.append(continuation) }
                return state.fired
            }
            if fired { continuation.resume() }
        }
    }
}

/// `Process` is thread-safe for the reads used here but not marked Sendable.
final class ProcessBox: @unchecked Sendable {
    let value: Process
    init(_ value: Process) { self.value = value }
}

/// Output collected from a running child, one buffer per stream.
final class Collected: Sendable {
    private struct Buffer {
        var text = ""
        var closed = false
    }
    private let buffers = Mutex<[RunningChild.Stream: Buffer]>([.stdout: Buffer(), .stderr: Buffer()])

    func append(_ data: Data, to stream: RunningChild.Stream) {
        buffers.withLock { $0[stream]!.text += String(decoding: data, as: UTF8.self) }
    }

    func close(_ stream: RunningChild.Stream) { buffers.withLock { $0[stream]!.closed = true } }
    func isClosed(_ stream: RunningChild.Stream) -> Bool { buffers.withLock { $0[stream]!.closed } }
    func text(_ stream: RunningChild.Stream) -> String { buffers.withLock { $0[stream]!.text } }

    /// Complete (newline-terminated) lines; a partial last line is not yet a line,
    /// unless the stream is closed.
    func lines(_ stream: RunningChild.Stream) -> [String] {
        let (text, closed) = buffers.withLock { ($0[stream]!.text, $0[stream]!.closed) }
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if !closed || lines.last == "" { lines.removeLast() }
        return lines
    }
}
