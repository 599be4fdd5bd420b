import Foundation
import IsthmusTestSupport
import Testing

/// One `$ command` of the README's `isthmus dev` section and the lines the README shows after it.
private struct TourStep {
    var command: String
    var shows: [String]
    var isWatch: Bool { command.hasSuffix(" -w") }
}

/// Every ```console block of the section, in order.
private func devTourSteps() throws -> [TourStep] {
    let readme = try String(contentsOfFile: CLI.repositoryRoot + "/README.md", encoding: .utf8)
    let start = try #require(readme.range(of: "## Isthmus in five minutes")).upperBound
    let end = readme.range(of: "\n## ", range: start..<readme.endIndex)?.lowerBound ?? readme.endIndex
    var steps: [TourStep] = []
    var inConsole = false
    for line in readme[start..<end].split(separator: "\n", omittingEmptySubsequences: false).map(String.init) {
        if line == "```console" { inConsole = true; continue }
        if line.hasPrefix("```") { inConsole = false; continue }
        guard inConsole else { continue }
        if line.hasPrefix("$ ") {
            steps.append(TourStep(command: String(line.dropFirst(2)), shows: []))
        } else if !steps.isEmpty {
            steps[steps.count - 1].shows.append(line)
        }
    }
    return steps
}

/// Whether `output` has the line the README shows, up to what changes run to run:
/// the same first two columns for a table row or a `kind/name created` line,
/// and for an error the text up to its first quote (UUIDs follow it).
private func shows(_ expected: String, in output: String) -> Bool {
    let lines = output.split(separator: "\n").map(String.init)
    if expected.hasPrefix("Error from server") {
        let stable = expected.split(separator: "\"", maxSplits: 1).first.map(String.init) ?? expected
        return lines.contains { $0.hasPrefix(stable) }
    }
    let want = expected.split(separator: " ", omittingEmptySubsequences: true).prefix(2)
    return lines.contains { $0.split(separator: " ", omittingEmptySubsequences: true).prefix(2) == want }
}

@Suite("README: the isthmus dev tour", .serialized)
struct ReadmeDevTourTests {
    @Test("every $ line of the dev section runs against isthmus dev and shows what the README shows; the peer's watch sees the owner's change")
    func devTour() async throws {
        let steps = try devTourSteps()
        #expect(steps.contains { $0.command.contains("admin.kubeconfig") && $0.command.contains("create service clusterip") })
        #expect(steps.contains { $0.isWatch && $0.command.contains("peer.kubeconfig") })
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let dev = try RunningChild(CLI.binary, ["dev", "--policies", CLI.repositoryRoot + "/policies"], workingDirectory: dir)
        defer { dev.send(SIGKILL) }
        _ = try #require(await dev.waitForLine(containing: "Ctrl-C stops everything"))
        // The banner names both kubeconfigs, as the README shows it.
        _ = try #require(await dev.waitForLine(containing: "kubectl --kubeconfig .isthmus-dev/admin.kubeconfig -n demo create service clusterip"))

        func arguments(_ command: String) throws -> [String] {
            var words = command.split(separator: " ").map(String.init)
            #expect(words.first == "kubectl", "the tour only runs kubectl: \(command)")
            words.removeFirst()
            return ["--cache-dir", dir + "/kube-cache"] + words
        }
        var watches: [(step: TourStep, child: RunningChild)] = []
        defer { for watch in watches { watch.child.send(SIGKILL) } }
        for step in steps {
            if step.isWatch {
                let child = try RunningChild(Executables.kubectl, try arguments(step.command), workingDirectory: dir)
                // Its initial list first, so what the owner does next arrives as an event.
                let firstRow = try #require(step.shows.dropFirst().first?.split(separator: " ").first.map(String.init))
                _ = await child.waitForLine(containing: firstRow, on: .stdout, deadline: .seconds(60))
                watches.append((step, child))
                continue
            }
            let run = try await ChildProcess.run(Executables.kubectl, try arguments(step.command), workingDirectory: dir)
            let output = run.stdout + run.stderr
            let failed = step.shows.first?.hasPrefix("Error from server") ?? false
            #expect((run.status == 0) != failed, "\(step.command): \(run)")
            for line in step.shows {
                #expect(shows(line, in: output), "\(step.command) does not show \"\(line)\":\n\(output)")
            }
            if !failed {
                // No row the README leaves out (the Secrets no peer is served, say).
                #expect(run.stdout.split(separator: "\n").count == step.shows.count, "\(step.command):\n\(run.stdout)")
            }
        }
        for watch in watches {
            for line in watch.step.shows {
                let word = String(line.split(separator: " ").first ?? "")
                let seen = await watch.child.waitForLine(containing: word, on: .stdout, deadline: .seconds(30))
                #expect(seen.map { shows(line, in: $0) } == true, "\(watch.step.command) never showed \"\(line)\":\n\(watch.child.output(.stdout))")
            }
        }
        dev.send(SIGINT)
        #expect(await dev.waitForExit() == 0)
    }
}
