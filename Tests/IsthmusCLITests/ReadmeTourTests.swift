import Foundation
import IsthmusTestSupport
import Testing

/// The README's tour, run line by line as a newcomer would, so the docs cannot rot.
@Suite("README tour")
struct ReadmeTourTests {
    /// The first ```sh block after the tour's heading.
    static func tourBlock() throws -> [String] {
        let readme = try String(contentsOfFile: CLI.repositoryRoot + "/README.md", encoding: .utf8)
        let afterHeading = try #require(readme.range(of: "## A five-minute tour")).upperBound
        let open = try #require(readme.range(of: "```sh\n", range: afterHeading..<readme.endIndex))
        let close = try #require(readme.range(of: "```", range: open.upperBound..<readme.endIndex))
        return readme[open.upperBound..<close.lowerBound].split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    }

    @Test("every command of the README tour succeeds and shows what the README says")
    func tourRuns() async throws {
        var lines = try Self.tourBlock()
        // The build is what `swift test` already did; point B at the binary it built.
        #expect(lines.first == "swift build")
        #expect(lines.dropFirst().first == "B=.build/debug/isthmus")
        lines.removeFirst(2)
        let script = "set -euo pipefail\nB='\(CLI.binary)'\n" + lines.joined(separator: "\n")
        let run = try await ChildProcess.run("/bin/bash", ["-c", script], workingDirectory: CLI.repositoryRoot)
        let (stdout, stderr) = (run.stdout, run.stderr)
        #expect(run.status == 0, "stderr: \(stderr)")
        let output = stdout.split(separator: "\n").map(String.init)
        #expect(output.contains("cluster-a"), "token verify prints the peer")
        #expect(output.contains { $0.hasPrefix("policies/: 7 rules") })
        #expect(output.contains { $0.contains("\"resource\":\"services\"") && $0.contains("\"allowed\":true") })
        #expect(output.contains { $0.contains("\"resource\":\"secrets\"") && $0.contains("\"allowed\":false") })
    }
}
