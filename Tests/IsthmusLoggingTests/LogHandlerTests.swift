import Foundation
import IsthmusKubeTypes
@testable import IsthmusLogging
import Logging
import Testing

@Suite("Log handlers: JSON lines and terminal text")
struct LogHandlerTests {
    static let time = 1_796_310_928.999  // 2026-12-03T15:15:28.999Z

    static func handler(_ format: LogFormat, level: Logger.Level = .info,
                        sink: LogLineSink = .standardError) -> IsthmusLogHandler {
        var handler = IsthmusLogHandler(label: "isthmus.proxy", format: format, level: level, metadataProvider: nil,
                                        sink: sink, clock: { Self.time })
        handler[metadataKey: "cluster"] = "a"
        handler[metadataKey: "source"] = "handler"
        return handler
    }

    static func event(_ message: Logger.Message, level: Logger.Level = .warning,
                      metadata: Logger.Metadata? = nil, error: (any Error)? = nil) -> LogEvent {
        LogEvent(level: level, message: message, error: error, metadata: metadata, source: nil,
                 file: #fileID, function: #function, line: #line)
    }

    struct Refused: Error, CustomStringConvertible { var description: String { "peers file: not JSON" } }

    @Test("a JSON line is one object: time, level, label, message, then metadata (the event's over the handler's)")
    func jsonLine() throws {
        let line = Self.handler(.json).line(for: Self.event(
            "reload of \"peers\" refused\nkeeping <the previous one>", metadata: ["source": "peers", "count": .array(["1", "2"])],
            error: Refused()))
        #expect(line.last == UInt8(ascii: "\n"))
        #expect(line.dropLast().allSatisfy { $0 != UInt8(ascii: "\n") }, "one line")
        let text = String(decoding: line.dropLast(), as: UTF8.self)
        #expect(text.hasPrefix(#"{"time":"2026-12-03T15:15:28.999Z","level":"warning","label":"isthmus.proxy","message":"#), "\(text)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line)) as? [String: Any])
        #expect(object["message"] as? String == "reload of \"peers\" refused\nkeeping <the previous one>")
        let metadata = try #require(object["metadata"] as? [String: Any])
        #expect(metadata["cluster"] as? String == "a")
        #expect(metadata["source"] as? String == "peers")
        #expect(metadata["count"] as? [String] == ["1", "2"])
        #expect(metadata["error"] as? String == "peers file: not JSON")
    }

    @Test("a JSON line without metadata has no metadata member")
    func jsonWithoutMetadata() throws {
        let handler = IsthmusLogHandler(label: "isthmus.metadata", format: .json, level: .info, metadataProvider: nil,
                                        sink: .standardError, clock: { Self.time })
        let text = String(decoding: handler.line(for: Self.event("serving", level: .info)), as: UTF8.self)
        #expect(text == #"{"time":"2026-12-03T15:15:28.999Z","level":"info","label":"isthmus.metadata","message":"serving"}"# + "\n")
    }

    @Test("a text line is TIME LEVEL LABEL: MESSAGE key=value, sorted, and stays one line")
    func textLine() {
        let line = Self.handler(.text).line(for: Self.event("refused\nby\u{1b}[31m policy", metadata: ["path": "/api/v1"]))
        #expect(String(decoding: line, as: UTF8.self)
                == #"2026-12-03T15:15:28.999Z warning isthmus.proxy: refused\nby\x1b[31m policy cluster=a path=/api/v1 source=handler"# + "\n")
    }

    @Test("a Logger writes whole lines at its level and above, through the sink")
    func levelsThroughAPipe() throws {
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        defer { close(fds[0]) }
        let sink = LogLineSink(descriptor: fds[1])
        let handler = Self.handler(.json, level: .notice, sink: sink)
        let logger = Logger(label: "isthmus.proxy", factory: { _ in handler })
        logger.info("not written")
        logger.notice("written", metadata: ["n": "1"])
        logger.error("written too")
        close(fds[1])
        let output = FileHandle(fileDescriptor: fds[0]).readDataToEndOfFile()
        let lines = String(decoding: output, as: UTF8.self).split(separator: "\n")
        #expect(lines.count == 2, "\(lines)")
        let levels = try lines.map { try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])["level"] as? String }
        #expect(levels == ["notice", "error"])
    }

    @Test("RFC 3339 with milliseconds, truncated, from the civil calendar")
    func timestamps() {
        func text(_ seconds: Double) -> String {
            var out: [UInt8] = []
            RFC3339.appendMilliseconds(seconds, into: &out)
            return String(decoding: out, as: UTF8.self)
        }
        #expect(text(0) == "1970-01-01T00:00:00.000Z")
        #expect(text(951_782_400.5) == "2000-02-29T00:00:00.500Z")
        #expect(text(Self.time) == "2026-12-03T15:15:28.999Z")
        #expect(text(4_102_444_799.0015) == "2099-12-31T23:59:59.001Z")
        #expect(RFC3339.string(unixSeconds: 1_796_310_928) == "2026-12-03T15:15:28Z")
    }
}
