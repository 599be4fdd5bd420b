import Foundation
import IsthmusTestSupport

/// What a finished `isthmus` (or openssl, curl) run returned.
typealias CLIResult = ChildOutput

/// Runs the `isthmus` binary that `swift build` put beside this test bundle.
enum CLI {
    static let binary = Executables.isthmus

    /// The repository root, for the shipped `policies/`.
    static let repositoryRoot: String = {
        var parts = #filePath.split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(3)  // Tests/IsthmusCLITests/CLIRunner.swift
        return parts.joined(separator: "/")
    }()

    static func run(_ arguments: [String], stdin: String? = nil, in directory: String? = nil) async throws -> CLIResult {
        try await ChildProcess.run(binary, arguments, stdin: stdin, workingDirectory: directory)
    }

    /// Runs another program (openssl, curl) the same way.
    static func runExecutable(_ executable: String, _ arguments: [String], stdin: String? = nil,
                              in directory: String? = nil) async throws -> CLIResult {
        try await ChildProcess.run(executable, arguments, stdin: stdin, workingDirectory: directory)
    }

    /// The port at the end of `serving https://127.0.0.1:PORT ...` (or `http://` for the admin listener).
    static func port(in line: String, scheme: String = "https") -> Int? {
        guard let range = line.range(of: scheme + "://127.0.0.1:") else { return nil }
        return Int(line[range.upperBound...].prefix { $0.isNumber })
    }

    static func temporaryDirectory() throws -> String {
        let path = NSTemporaryDirectory() + "isthmus-cli-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }
}
