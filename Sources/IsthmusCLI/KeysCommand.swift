import ArgumentParser
import Foundation
import IsthmusTrust

struct KeysCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys",
        abstract: "Manage this cluster's Ed25519 signing key pair.",
        subcommands: [Generate.self])

    struct Generate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Generate a key pair: DIR/private.pem (PKCS#8, mode 0600) and DIR/public.pem (PKIX).",
            discussion: """
                The public key is what peers put in their trusted peers file (authnKeyPub); \
                the private key signs the tokens this cluster presents to its peers. An \
                existing key is never overwritten: delete it first if you mean to rotate.
                """)

        @Option(help: "The directory to write the key pair to (created when missing, mode 0700).")
        var out: String

        func run() async throws {
            let privatePath = (out as NSString).appendingPathComponent("private.pem")
            let publicPath = (out as NSString).appendingPathComponent("public.pem")
            let manager = FileManager.default
            for path in [privatePath, publicPath] where manager.fileExists(atPath: path) {
                printError("\(path) already exists; refusing to overwrite a key")
                throw ExitCode.failure
            }
            do {
                try manager.createDirectory(atPath: out, withIntermediateDirectories: true,
                                            attributes: [.posixPermissions: 0o700])
            } catch {
                printError("cannot create \(out): \((error as NSError).localizedDescription)")
                throw ExitCode.failure
            }
            let pair = SigningKeyPair()
            do {
                // The private key is created 0600 from the start, never readable by others even briefly.
                try writeFile(privatePath, contents: pair.pemRepresentation, mode: 0o600)
                try writeFile(publicPath, contents: pair.publicKey.pemRepresentation, mode: 0o644)
            } catch {
                printError("\(error)")
                throw ExitCode.failure
            }
            printError("wrote \(privatePath) (0600) and \(publicPath)")
        }
    }
}

struct FileWriteError: Error, CustomStringConvertible {
    var path: String
    var errno: Int32
    var description: String { "cannot write \(path): \(String(cString: strerror(errno)))" }
}

/// Creates `path` exclusively with `mode` and writes `contents`: O_EXCL so an
/// existing file (or a planted symlink) is never written through.
func writeFile(_ path: String, contents: String, mode: mode_t) throws {
    let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
    guard fd >= 0 else { throw FileWriteError(path: path, errno: errno) }
    defer { close(fd) }
    _ = fchmod(fd, mode)  // the umask may have narrowed it; set exactly what was asked
    let bytes = Array(contents.utf8)
    var offset = 0
    while offset < bytes.count {
        let written = bytes[offset...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        guard written > 0 else { throw FileWriteError(path: path, errno: errno) }
        offset += written
    }
}
