import CFuzzerDriver
import IsthmusController
import IsthmusKubeClient

/// SwiftPM links executables with `main` renamed to `<Module>_main`.
@_cdecl("FuzzKubeconfig_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv) { data, size in
        guard let data else { return 0 }
        fuzzOne(Array(UnsafeBufferPointer(start: data, count: size)))
        return 0
    }
}

private let file = "fuzz.kubeconfig"

/// Kubeconfigs both ways: what the controller reads back from an istiod
/// remote secret (anyone who can write Secrets in the Istio namespace can
/// write it), and what the Kubernetes client reads from `--kubeconfig`.
/// - A remote-secret kubeconfig the controller accepts renders to YAML that
///   reads back to the same meaning (or the controller would rewrite the
///   Secret every round), and that the Kubernetes client reads with the same
///   server, CA and token.
/// - The client refuses a kubeconfig with an error naming this file (and,
///   past the top level, the field), or accepts one whose server is http(s).
func fuzzOne(_ input: [UInt8]) {
    let text = String(decoding: input, as: UTF8.self)
    // File fields are read from disk; device and kernel files (/dev/zero,
    // /dev/stdin, /proc/...) would only measure the machine.
    for special in ["/dev", "/proc", "/sys", "/run"] where text.contains(special) { return }

    if let remote = RemoteKubeconfig(yaml: text) {
        let rendered = remote.yaml()
        precondition(!rendered.isEmpty, "an accepted remote kubeconfig renders to nothing")
        guard let again = RemoteKubeconfig(yaml: rendered) else {
            preconditionFailure("a rendered remote kubeconfig is not read back")
        }
        precondition(again == remote, "a rendered remote kubeconfig reads back to another meaning")
        precondition(RemoteKubeconfig(yaml: again.yaml()) == again, "rendering is not stable")
        if let client = try? KubeClientConfiguration.kubeconfig(yaml: rendered, file: file, baseDirectory: "/nonexistent-fuzz-base") {
            switch client.credentials {
            case .bearerToken(let token): precondition(token == remote.token, "the client reads another token")
            case .none: precondition(remote.token.isEmpty, "the client reads no token from a rendered one")
            default: preconditionFailure("the client reads the rendered token as another credential")
            }
            if let ca = remote.caPEM, !remote.insecureSkipTLSVerify {
                precondition(client.certificateAuthorityPEM == Array(ca.utf8), "the client reads another CA")
            }
            precondition(client.insecureSkipTLSVerify == remote.insecureSkipTLSVerify, "the client reads another TLS choice")
        }
    }

    do {
        let client = try KubeClientConfiguration.kubeconfig(yaml: text, file: file, baseDirectory: "/nonexistent-fuzz-base")
        precondition(client.server.hasPrefix("https://") || client.server.hasPrefix("http://"),
                     "an accepted kubeconfig's server is not http(s): \(client.server)")
    } catch {
        precondition(error.file == file, "a kubeconfig error names another file")
        precondition(error.description.hasPrefix(file + ": "), "a kubeconfig error does not start with its file")
    }
}
