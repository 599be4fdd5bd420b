import ArgumentParser

/// The `isthmus` command: every process and operator helper of Isthmus.
public struct IsthmusCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "isthmus",
        abstract: "Safe discovery between Istio control planes in separate Kubernetes clusters.",
        discussion: """
            Isthmus puts an authenticating, read-only proxy in front of the Kubernetes API \
            server so a peer cluster's istiod can read exactly what the allowlist in \
            policies/ permits, with tokens signed by keys the clusters exchanged.
            """,
        version: isthmusVersion,
        subcommands: [KeysCommand.self, TokenCommand.self, PeersCommand.self, PolicyCommand.self, APIServerCommand.self, ProxyCommand.self, MetadataCommand.self, ControllerCommand.self, DevCommand.self]
    )

    public init() {}
}

/// Set at release time; `isthmus --version` prints it.
public let isthmusVersion = "0.1.0"

extension IsthmusCommand {
    /// The program's entry point. Spelled out because, called from another
    /// module's top-level code, `main()` resolves to ParsableCommand's
    /// synchronous overload, which refuses async subcommands.
    public static func runAsMain() async {
        do {
            var command = try await asyncParseAsRoot()
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }
}
