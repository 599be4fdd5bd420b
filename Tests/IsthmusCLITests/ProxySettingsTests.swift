import Foundation
@testable import IsthmusCLI
import IsthmusProxy
import Testing

@Suite("isthmus proxy --config: decoding and merging")
struct ProxySettingsTests {
    private func decode(_ yaml: String, path: String = "/etc/isthmus/proxy.yaml") throws -> ProxyFileConfiguration {
        try ProxyFileConfiguration(yaml: yaml, path: path)
    }

    /// The one-line refusal the command prints, for a file that is refused.
    private func refusal(_ yaml: String) -> String? {
        do {
            _ = try ProxyFileConfiguration(yaml: yaml, path: "proxy.yaml")
            return nil
        } catch {
            return "\(error.field): \(error.problem)"
        }
    }

    @Test("the commented example decodes, documents every setting, and each setting is a real flag")
    func example() throws {
        let path = CLI.repositoryRoot + "/examples/proxy.yaml"
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let file = try decode(text, path: path)
        #expect(file.values["maxWatch"]?.value == .text("30m"))
        #expect(file.values["clusterUUID"]?.value == .text("0b4e3f66-7a2d-4e55-8f0c-5d1e9b7c3a22"))
        let help = ProxyCommand.helpMessage()
        for setting in ProxyCommand.settings {
            #expect(help.contains(setting.flag + " ") || help.contains(setting.flag + "/--no-"),
                    "\(setting.flag) is not a flag of isthmus proxy")
            // writeCA is a dev convenience, not a deployment setting.
            if setting.field != "writeCA" {
                #expect(text.contains("\n\(setting.field): ") || text.contains("# \(setting.field): "),
                        "examples/proxy.yaml does not show \(setting.field)")
            }
        }
    }

    @Test("flag spellings follow ArgumentParser's kebab case", arguments: [
        ("listen", "--listen"), ("upstreamCA", "--upstream-ca"), ("clusterUUID", "--cluster-uuid"),
        ("upstreamHeaderTimeout", "--upstream-header-timeout"), ("plainHTTP", "--plain-http"), ("tlsCert", "--tls-cert"),
    ])
    func kebab(_ field: String, _ flag: String) {
        #expect(ProxySetting.text(field, \.listen).flag == flag)
    }

    @Test("refusals name the file, line, column and field", arguments: [
        ("lisen: 0.0.0.0:8443\n", "proxy.yaml:1:1: lisen: unknown field; known fields are listen, "),
        ("peers: p.json\nmaxWatch: 30\n", "proxy.yaml:2:11: maxWatch: expected a string like 90s, 15m or 1h30m (a bare number has no unit), got 30"),
        ("maxWatch: 30x\n", "proxy.yaml:1:11: maxWatch: must be a duration like 90s, 15m or 1h30m, got \"30x\""),
        ("maxWatch: 0s\n", "proxy.yaml:1:11: maxWatch: must be above zero"),
        ("listen: nowhere\n", "proxy.yaml:1:9: listen: must be HOST:PORT, got \"nowhere\""),
        ("peers: [a, b]\n", "proxy.yaml:1:8: peers: expected a string, not a list"),
        ("clusterUUID: true\n", "proxy.yaml:1:14: clusterUUID: expected a string, got true"),
        ("- listen\n", "proxy.yaml:1:1: expected a mapping of settings (field: value)"),
        ("listen: [\n", "proxy.yaml:2:1: invalid YAML: "),
        ("peers: a\npeers: b\n", "proxy.yaml:1:1: peers: given more than once"),
        ("rateLimit: 0\n", "proxy.yaml:1:12: rateLimit: must be 'off' or requests per second and burst like 50/100"),
        ("rateLimit: 5/0\n", "proxy.yaml:1:12: rateLimit: must be 'off' or requests per second and burst like 50/100"),
        ("peerRateLimits:\n  a: 5/10\n  b: fast\n", "proxy.yaml:3:6: peerRateLimits.b: must be requests per second and burst like 50/100"),
        ("peerRateLimits: [a]\n", "proxy.yaml:1:17: peerRateLimits: expected a string, not a list"),
        ("peerRateLimits: a\n", "proxy.yaml:1:17: peerRateLimits: expected PEER=QPS/BURST entries separated by commas, got \"a\""),
        ("maxRequestsInFlight: 0\n", "proxy.yaml:1:22: maxRequestsInFlight: must be a whole number from 1 to 100000"),
        ("maxQueueWait: 0s\n", "proxy.yaml:1:15: maxQueueWait: must be above zero"),
    ])
    func refusals(_ yaml: String, _ expected: String) {
        let line = refusal(yaml)
        #expect(line?.hasPrefix(expected) == true, "\(line ?? "accepted")")
        #expect(line?.contains("\n") == false)
    }

    @Test("quoted values are strings; an empty file sets nothing")
    func scalars() throws {
        #expect(try decode("clusterUUID: \"1234\"\n").values["clusterUUID"]?.value == .text("1234"))
        #expect(try decode("# only a comment\n").values.isEmpty)
    }

    @Test("relative paths are relative to the file; absolute ones are kept")
    func paths() throws {
        let file = try decode("peers: peers.json\npolicies: /srv/policies\nupstream: https://k8s:6443\n",
                              path: "/etc/isthmus/proxy.yaml")
        #expect(file.values["peers"]?.value == .text("/etc/isthmus/peers.json"))
        #expect(file.values["policies"]?.value == .text("/srv/policies"))
        #expect(file.values["upstream"]?.value == .text("https://k8s:6443"))
    }

    @Test("a flag overrides the file; the file fills what the flags leave out")
    func merge() throws {
        var command = try ProxyCommand.parse(["--max-watch", "5m", "--peers", "/flag/peers.json"])
        let file = try decode("maxWatch: 1h\npeers: /file/peers.json\nclusterUUID: abc-1\ntokenLeeway: 2m\n",
                              path: "p.yaml")
        let origins = command.merge(file)
        #expect(command.maxWatch == "5m")
        #expect(command.peers == "/flag/peers.json")
        #expect(command.clusterUUID == "abc-1")
        #expect(command.tokenLeeway == "2m")
        #expect(origins == ["clusterUUID": "p.yaml:3:14: clusterUUID", "tokenLeeway": "p.yaml:4:14: tokenLeeway"])
    }

    @Test("the fairness limits: a rate bare or quoted, per-peer rates as a mapping or the flag's list, all applied")
    func fairness() throws {
        let file = try decode("rateLimit: off\npeerRateLimits:\n  a: 5/10\n  b: 1\nmaxQueuedPerPeer: 0\n")
        #expect(file.values["rateLimit"]?.value == .text("off"))
        #expect(file.values["peerRateLimits"]?.value == .text("a=5/10,b=1"))
        #expect(try decode("rateLimit: 50\n").values["rateLimit"]?.value == .text("50"))
        let token = FileManager.default.temporaryDirectory.appendingPathComponent("isthmus-token-\(UUID().uuidString)")
        try "t\n".write(to: token, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: token) }
        let configuration = try ProxyCommand.parse([
            "--peers", "p", "--cluster-uuid", "c", "--token-file", token.path, "--upstream-ca", token.path, "--rate-limit", "20/40", "--peer-rate-limits", "a=5/10,b=1",
            "--max-requests-in-flight", "16", "--max-queued-per-peer", "0", "--max-queue-wait", "2s",
        ]).makeConfiguration()
        #expect(configuration.shortRequestLimits.maxInFlight == 16 && configuration.shortRequestLimits.maxQueuedPerPeer == 0)
        #expect(configuration.shortRequestLimits.maxQueueWait == .seconds(2))
        #expect(configuration.rateLimits == PeerRateLimits(everyPeer: RequestRate(perSecond: 20, burst: 40),
                                                           byPeer: ["a": RequestRate(perSecond: 5, burst: 10), "b": RequestRate(perSecond: 1, burst: 1)]))
        // By default: 64 in flight, 64 queued per peer, 5 s, no rate limit.
        let defaults = try ProxyCommand.parse(["--peers", "p", "--cluster-uuid", "c", "--token-file", token.path, "--upstream-ca", token.path]).makeConfiguration()
        #expect(defaults.shortRequestLimits == ShortRequestLimits() && defaults.rateLimits.isOff)
        let bad = try ProxyCommand.parse(["--peers", "p", "--cluster-uuid", "c", "--peer-rate-limits", "a=5/10,a=1"])
        #expect(throws: ProxyConfigurationError(field: "--peer-rate-limits", problem: "peer a is given more than once")) {
            try bad.checkSettings(origins: [:])
        }
    }

    @Test("a bad flag value is named by its flag")
    func flagRefusal() throws {
        let command = try ProxyCommand.parse(["--max-watch", "30", "--peers", "p", "--cluster-uuid", "c"])
        #expect(throws: ProxyConfigurationError(field: "--max-watch",
                                                problem: "must be a duration like 90s, 15m or 1h30m, got \"30\"")) {
            try command.checkSettings(origins: [:])
        }
        let missing = try ProxyCommand.parse(["--cluster-uuid", "c"])
        #expect(throws: ProxyConfigurationError(field: "--peers", problem: "required (the flag, or `peers:` in --config)")) {
            try missing.makeConfiguration()
        }
    }
}
