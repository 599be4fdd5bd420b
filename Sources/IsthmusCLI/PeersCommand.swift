import ArgumentParser
import Foundation
import IsthmusTrust

struct PeersCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "peers",
        abstract: "Edit a trusted peers file by hand (the controller maintains it in a cluster).",
        subcommands: [Add.self])

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add a peer cluster's public key and root CA to a trusted peers file.",
            discussion: """
                Creates the file when missing. The file is replaced atomically (written \
                beside it, then renamed), so a proxy reloading it never reads half a file.
                """)

        @Option(help: "The trusted peers file (JSON keyed by peer cluster UUID).")
        var file: String
        @Option(help: "The peer's cluster UUID.")
        var clusterUUID: String
        @Option(help: "The peer's public key file (PEM; several blocks during rotation).")
        var publicKey: String
        @Option(help: "The peer's Istio root CA certificate (PEM).")
        var rootCA: String
        @Flag(help: "Replace the peer's entry when it is already there.")
        var replace = false

        func run() async throws {
            var peers = try loadTrustedPeers(file)?.peers ?? []
            if peers.contains(where: { $0.clusterUUID == clusterUUID }) {
                guard replace else {
                    printError("\(file): peer \"\(clusterUUID)\" is already trusted; pass --replace to update it")
                    throw ExitCode.failure
                }
                peers.removeAll { $0.clusterUUID == clusterUUID }
            }
            let updated: TrustedPeers
            do {
                let peer = try TrustedPeer(clusterUUID: clusterUUID, authnKeyPub: readText(publicKey), rootCA: readText(rootCA))
                updated = try TrustedPeers(peers + [peer])
            } catch let error as PeersFileError {
                printError("\(error)")
                throw ExitCode.failure
            }
            let temporary = file + ".tmp-\(getpid())"
            do {
                try writeFile(temporary, contents: updated.encodedJSONString(), mode: 0o644)
                guard rename(temporary, file) == 0 else { throw FileWriteError(path: file, errno: errno) }
            } catch {
                unlink(temporary)
                printError("\(error)")
                throw ExitCode.failure
            }
            printError("\(file): \(updated.count) trusted peers: \(updated.clusterUUIDs.joined(separator: ", "))")
        }
    }
}

/// Reads a small text file, or exits naming it.
func readText(_ path: String) throws -> String {
    guard let data = FileManager.default.contents(atPath: path) else {
        printError("cannot read \(path)")
        throw ExitCode.failure
    }
    return String(decoding: data, as: UTF8.self)
}
