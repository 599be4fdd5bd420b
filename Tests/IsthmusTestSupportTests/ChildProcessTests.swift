import Foundation
import IsthmusTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("ChildProcess and RunningChild", .serialized)
struct ChildProcessTests {
    @Test("stdin, stdout, stderr and the exit status round-trip")
    func roundTrip() async throws {
        let output = try await ChildProcess.run("/bin/sh", ["-c", "cat; echo oops >&2; exit 3"], stdin: "hello\n")
        #expect(output.status == 3)
        #expect(output.stdout == "hello\n")
        #expect(output.stderr == "oops\n")
    }

    @Test("a child filling both pipes far past their buffers does not deadlock")
    func largeOutputOnBothPipes() async throws {
        // 1 MiB to stderr first, then 1 MiB to stdout: a reader that waited for
        // stdout's end before reading stderr would leave the child blocked.
        // (No `&`/`wait`: the runner's children inherit a blocked SIGCHLD.)
        let script = "head -c 1048576 /dev/zero | tr '\\0' e >&2; head -c 1048576 /dev/zero | tr '\\0' o"
        let output = try await ChildProcess.run("/bin/sh", ["-c", script], timeout: .seconds(120))
        #expect(output.status == 0)
        #expect(output.stdout.utf8.count == 1_048_576 && output.stdout.allSatisfy { $0 == "o" })
        #expect(output.stderr.utf8.count == 1_048_576 && output.stderr.allSatisfy { $0 == "e" })
    }

    @Test("environment entries and the working directory reach the child")
    func environmentAndDirectory() async throws {
        let output = try await ChildProcess.run("/bin/sh", ["-c", "echo $ISTHMUS_TEST_VALUE; pwd"],
                                                environment: ["ISTHMUS_TEST_VALUE": "seen"], workingDirectory: "/tmp")
        #expect(output.stdout == "seen\n/tmp\n")
    }

    @Test("a child past its timeout is terminated and reported")
    func timeout() async throws {
        let start = ContinuousClock.now
        await #expect(throws: ChildProcessTimedOut.self) {
            _ = try await ChildProcess.run("/bin/sh", ["-c", "echo started; exec sleep 600"], timeout: .milliseconds(500))
        }
        // SIGTERM, or SIGKILL 5 s later, ends `sleep` far below its 600 s.
        #expect(ContinuousClock.now - start < .seconds(60))
    }

    @Test("a running child's lines can be awaited, and a signal ends it")
    func runningChild() async throws {
        let child = try RunningChild("/bin/sh", ["-c", "echo ready on stderr >&2; echo listening 1234; exec sleep 600"])
        let line = await child.waitForLine(containing: "listening", on: .stdout, deadline: .seconds(60))
        #expect(line == "listening 1234")
        #expect(await child.waitForLine(containing: "ready", deadline: .seconds(60)) == "ready on stderr")
        #expect(child.isRunning)
        // SIGKILL: the test runner's children inherit a mask blocking SIGTERM,
        // which only programs that unblock it (isthmus) receive.
        child.send(SIGKILL)
        let status = await child.waitForExit()
        #expect(status == SIGKILL)
        #expect(!child.isRunning)
    }

    @Test("waiting for a line a finished child never wrote returns nil at once")
    func lineNeverWritten() async throws {
        let child = try RunningChild("/bin/sh", ["-c", "echo something else"])
        let start = ContinuousClock.now
        #expect(await child.waitForLine(containing: "never", deadline: .seconds(300)) == nil)
        #expect(ContinuousClock.now - start < .seconds(60))
        #expect(child.lines == ["something else"])
    }

    @Test("a released RunningChild kills its process")
    func releasedChildIsKilled() async throws {
        var child: RunningChild? = try RunningChild("/bin/sh", ["-c", "exec sleep 600"])
        let pid = try #require(child?.processIdentifier)
        child = nil
        _ = child
        await eventually("the released child is gone", deadline: .seconds(30)) {
            // Reaped by Foundation once dead: then kill(pid, 0) fails.
            kill(pid, 0) != 0
        }
    }

    @Test("eventually returns whether the condition held")
    func eventuallyResult() async {
        var calls = 0
        let held = await eventually("the third call", deadline: .seconds(30)) {
            calls += 1
            return calls == 3
        }
        #expect(held)
        #expect(calls == 3)
    }

    @Test("timeUntil measures from the given start, nil past the deadline")
    func timeUntilMeasures() async {
        let start = ContinuousClock.now
        let elapsed = await timeUntil(from: start, deadline: .seconds(30)) { ContinuousClock.now - start > .milliseconds(50) }
        #expect(elapsed.map { $0 >= .milliseconds(50) } == true)
        #expect(await timeUntil(from: start, deadline: .milliseconds(100)) { false } == nil)
    }
}
