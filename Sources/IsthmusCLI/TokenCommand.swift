import ArgumentParser
import Foundation
import IsthmusTrust

struct TokenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token",
        abstract: "Mint and verify the EdDSA JWTs clusters present to each other.",
        subcommands: [Mint.self, Verify.self])

    struct Mint: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Mint a token signed with this cluster's private key; prints it on stdout.",
            discussion: """
                Claims: iss (default d8-istio), sub = this cluster's UUID, aud = the peer's UUID, \
                scope, nbf = now, exp = now + ttl. Byte-compatible with Deckhouse's istio module.

                Example: isthmus token mint --key keys/private.pem --subject $SELF --audience $PEER --scope api --ttl 1h
                """)

        @Option(help: "This cluster's private key (PKCS#8 PEM).")
        var key: String
        @Option(help: "This cluster's UUID (the caller), the `sub` claim.")
        var subject: String
        @Option(help: "The peer's cluster UUID (the callee), the `aud` claim.")
        var audience: String
        @Option(help: "api, private-multicluster or private-federation.")
        var scope: TokenScope
        @Option(help: "Lifetime, e.g. 60s, 15m, 1h30m, 7d.")
        var ttl: String
        @Option(help: "The `iss` claim.")
        var issuer: String = TokenClaims.deckhouseIssuer
        @Option(help: "A `kid` header, to tell keys apart during rotation.")
        var keyID: String?

        func validate() throws {
            for (name, value) in [("--subject", subject), ("--audience", audience)] where !TrustedPeer.isValidClusterID(value) {
                throw ValidationError("\(name): \"\(value)\" is not a cluster UUID")
            }
            guard let seconds = parseDurationSeconds(ttl), seconds > 0 else {
                throw ValidationError("--ttl: \"\(ttl)\" is not a duration such as 90s, 15m, 1h30m or 7d")
            }
        }

        func run() async throws {
            let pair = try loadSigningKey(key)
            let now = Int64(Date().timeIntervalSince1970)
            let claims = TokenClaims(issuer: issuer, subject: subject, audience: audience, scope: scope,
                                     now: now, lifetime: parseDurationSeconds(ttl) ?? 0)  // validated above
            print(IsthmusTrust.mint(claims, with: pair, keyID: keyID))
        }
    }

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Verify a token as the proxy and metadata service do.",
            discussion: """
                Prints the calling peer's UUID and exits 0 when the token is valid; prints the \
                reason and exits 1 otherwise. The token is read from stdin when not given, so it \
                need not appear in the shell history or process list.
                """)

        @Option(help: "The trusted peers file (JSON keyed by peer cluster UUID).")
        var peers: String
        @Option(help: "This cluster's UUID; the token's `aud` must equal it.")
        var audience: String
        @Option(help: "The scope the token must carry: api, private-multicluster or private-federation.")
        var scope: TokenScope
        @Option(help: "Clock skew tolerated on nbf and exp.")
        var leeway: String = "60s"
        @Option(help: "Token issuers (iss) accepted, comma-separated.")
        var issuers: String = TokenClaims.deckhouseIssuer
        @Argument(help: "The token (default: read from stdin).")
        var token: String?

        func validate() throws {
            guard parseDurationSeconds(leeway) != nil || leeway == "0" else {
                throw ValidationError("--leeway: \"\(leeway)\" is not a duration such as 0s, 30s or 2m")
            }
            guard parseIssuers(issuers) != nil else {
                throw ValidationError("--issuers must list at least one issuer, comma-separated, got '\(issuers)'")
            }
        }

        func run() async throws {
            guard let trusted = try loadTrustedPeers(peers) else {
                printError("cannot read the trusted peers file \(peers)")
                throw ExitCode.failure
            }
            let raw = (token ?? String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self))
                .trimmingCharacters(in: .whitespacesAndNewlines)
            let verifier = TokenVerifier(localClusterUUID: audience, peers: trusted,
                                         leeway: .seconds(parseDurationSeconds(leeway) ?? 0),
                                         acceptedIssuers: parseIssuers(issuers) ?? TokenVerifier.defaultAcceptedIssuers)
            do {
                let verified = try verifier.verify(BearerToken(raw), scope: scope, now: Int64(Date().timeIntervalSince1970))
                print(verified.peer)
            } catch {
                printError("token refused: \(error)")
                throw ExitCode.failure
            }
        }
    }
}

extension TokenScope: ExpressibleByArgument {}

/// Reads a trusted peers file; nil when there is no such file. A file that does
/// not parse exits, naming the file and the field.
func loadTrustedPeers(_ path: String) throws -> TrustedPeers? {
    guard let data = FileManager.default.contents(atPath: path) else { return nil }
    do {
        return try TrustedPeers(json: [UInt8](data))
    } catch {
        printError("\(path): \(error)")
        throw ExitCode.failure
    }
}

/// Reads a private key file; errors name the file, never its contents.
func loadSigningKey(_ path: String) throws -> SigningKeyPair {
    guard let data = FileManager.default.contents(atPath: path) else {
        printError("cannot read the private key \(path)")
        throw ExitCode.failure
    }
    do {
        return try SigningKeyPair(pem: String(decoding: data, as: UTF8.self))
    } catch {
        printError("\(path): \(error)")
        throw ExitCode.failure
    }
}
