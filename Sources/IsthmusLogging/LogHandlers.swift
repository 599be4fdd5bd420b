#if canImport(Darwin)
import Darwin
#elseif canImport(Glibc)
import Glibc
#endif
import IsthmusKubeTypes
import Logging
import NIOConcurrencyHelpers

/// How a service's log lines are written on standard error.
public enum LogFormat: String, Sendable, CaseIterable {
    /// One JSON object per line: `time`, `level`, `label`, `message`, then
    /// `metadata` when there is any. For log collectors.
    case json
    /// `TIME LEVEL LABEL: MESSAGE key=value ...`, for a person at a terminal.
    case text

    /// JSON unless standard error is a terminal.
    public static var automatic: LogFormat { isatty(2) == 1 ? .text : .json }
}

/// Where finished lines go. Each line is written whole with one `write(2)`,
/// under a lock, so lines from different threads never interleave.
public final class LogLineSink: Sendable {
    private let descriptor: Int32
    private let lock = NIOLock()

    public static let standardError = LogLineSink(descriptor: 2)

    init(descriptor: Int32) { self.descriptor = descriptor }

    func emit(_ line: [UInt8]) {
        lock.withLock {
            line.withUnsafeBytes { buffer in
                var offset = 0
                while offset < buffer.count {
                    let written = write(descriptor, buffer.baseAddress! + offset, buffer.count - offset)
                    if written < 0 && errno == EINTR { continue }
                    if written <= 0 { return }
                    offset += written
                }
            }
        }
    }
}

/// The one `LogHandler` of Isthmus: a label, a level, metadata, and a
/// format. Its output is built as bytes (no Foundation, no formatter).
public struct IsthmusLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    public var logLevel: Logger.Level
    public let label: String
    let format: LogFormat
    let sink: LogLineSink
    let clock: @Sendable () -> Double

    public init(label: String, format: LogFormat, level: Logger.Level,
                metadataProvider: Logger.MetadataProvider? = nil, sink: LogLineSink = .standardError) {
        self.init(label: label, format: format, level: level, metadataProvider: metadataProvider, sink: sink,
                  clock: { wallClockSeconds() })
    }

    init(label: String, format: LogFormat, level: Logger.Level, metadataProvider: Logger.MetadataProvider?,
         sink: LogLineSink, clock: @escaping @Sendable () -> Double) {
        self.label = label
        self.format = format
        self.logLevel = level
        self.metadataProvider = metadataProvider
        self.sink = sink
        self.clock = clock
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        sink.emit(line(for: event))
    }

    /// The whole line, newline included.
    func line(for event: LogEvent) -> [UInt8] {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { _, new in new } }
        if let own = event.metadata { merged.merge(own) { _, new in new } }
        if let error = event.error { merged["error"] = .string("\(error)") }
        var out: [UInt8] = []
        out.reserveCapacity(160)
        switch format {
        case .json: Self.writeJSON(time: clock(), event: event, label: label, metadata: merged, into: &out)
        case .text: Self.writeText(time: clock(), event: event, label: label, metadata: merged, into: &out)
        }
        out.append(UInt8(ascii: "\n"))
        return out
    }

    static func writeJSON(time: Double, event: LogEvent, label: String, metadata: Logger.Metadata,
                          into out: inout [UInt8]) {
        out.append(contentsOf: #"{"time":""#.utf8)
        RFC3339.appendMilliseconds(time, into: &out)
        out.append(contentsOf: #"","level":""#.utf8)
        out.append(contentsOf: event.level.rawValue.utf8)
        out.append(contentsOf: #"","label":"#.utf8)
        JSON.writeString(label, into: &out)
        out.append(contentsOf: #","message":"#.utf8)
        JSON.writeString(event.message.description, into: &out)
        if !metadata.isEmpty {
            out.append(contentsOf: #","metadata":"#.utf8)
            JSON.object(metadata.keys.sorted().map { ($0, json(metadata[$0]!)) }).write(into: &out)
        }
        out.append(UInt8(ascii: "}"))
    }

    static func json(_ value: Logger.Metadata.Value) -> JSON {
        switch value {
        case .string(let s): .string(s)
        case .stringConvertible(let c): .string(c.description)
        case .array(let values): .array(values.map(json))
        case .dictionary(let d): .object(d.keys.sorted().map { ($0, json(d[$0]!)) })
        }
    }

    static func writeText(time: Double, event: LogEvent, label: String, metadata: Logger.Metadata,
                          into out: inout [UInt8]) {
        RFC3339.appendMilliseconds(time, into: &out)
        out.append(UInt8(ascii: " "))
        out.append(contentsOf: event.level.rawValue.utf8)
        out.append(UInt8(ascii: " "))
        out.append(contentsOf: label.utf8)
        out.append(contentsOf: ": ".utf8)
        appendSingleLine(event.message.description, into: &out)
        for key in metadata.keys.sorted() {
            out.append(UInt8(ascii: " "))
            appendSingleLine(key, into: &out)
            out.append(UInt8(ascii: "="))
            appendSingleLine(metadata[key]!.description, into: &out)
        }
    }

    /// A terminal line stays one line: a line break or another control
    /// character in a message (a file's content, a remote error) is escaped.
    static func appendSingleLine(_ text: String, into out: inout [UInt8]) {
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\n"): out.append(contentsOf: #"\n"#.utf8)
            case UInt8(ascii: "\r"): out.append(contentsOf: #"\r"#.utf8)
            case UInt8(ascii: "\t"): out.append(contentsOf: #"\t"#.utf8)
            case 0..<0x20, 0x7F:
                out.append(contentsOf: #"\x"#.utf8)
                let hex = Array("0123456789abcdef".utf8)
                out.append(hex[Int(byte >> 4)]); out.append(hex[Int(byte & 15)])
            default: out.append(byte)
            }
        }
    }
}

func wallClockSeconds() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_REALTIME, &now)
    return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
}

/// Bootstraps swift-log once per process, from a command's `run()`.
public enum IsthmusLogging {
    private static let bootstrapped = NIOLockedValueBox(false)

    /// Every `Logger` made after this writes `format` at `level` and above.
    /// A second call (a test that runs two commands in one process) changes nothing.
    public static func bootstrap(format: LogFormat, level: Logger.Level) {
        let first = bootstrapped.withLockedValue { done in
            defer { done = true }
            return !done
        }
        guard first else { return }
        LoggingSystem.bootstrap { label in
            IsthmusLogHandler(label: label, format: format, level: level)
        }
    }
}
