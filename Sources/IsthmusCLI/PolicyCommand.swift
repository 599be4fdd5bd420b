import ArgumentParser
import IsthmusPolicy
import IsthmusRequestInfo

struct PolicyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "policy",
        abstract: "Check allowlist policy files and explain decisions.",
        subcommands: [Check.self, Explain.self])

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Load every policy file in a directory as the proxy would; print each problem.",
            discussion: "Exits 0 when the directory loads, 1 with one line per problem (file:line:column: field: message) otherwise.")

        @Argument(help: "The policy directory (*.yaml and *.yml files, not recursive).")
        var directory: String

        func run() async throws {
            do {
                let set = try PolicySet.load(directory: directory)
                print("\(directory): \(set.rules.count) rules in \(set.files.count) files: \(set.files.joined(separator: ", "))")
            } catch {
                printError(error.description)
                throw ExitCode.failure
            }
        }
    }

    struct Explain: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show how the proxy would parse and decide one request.",
            discussion: """
                Prints one JSON object: the request attributes as the API server's RequestInfo \
                derives them, whether the proxy allows the request, which rule did, what is \
                never served whatever the policy (`protected`) and the target forwarded upstream. \
                Exits 0 whether allowed or denied, 1 when the policies do not load, and 2 \
                when the request target would be refused before authorization (with the reason).

                Example: isthmus policy explain --policies policies/ GET '/api/v1/services?watch=1'
                """)

        @Option(help: "The policy directory.")
        var policies: String

        @Option(help: "The calling peer's cluster UUID (rules limited to peers match only with it).")
        var peer: String?

        @Option(help: "The namespace Isthmus runs in, whose objects are never served (default isthmus-system).")
        var isthmusNamespace: String = ProtectedObjects.defaultIsthmusNamespace

        @Argument(help: "The HTTP method, e.g. GET.")
        var method: String

        @Argument(help: "The request target: path and query, e.g. /api/v1/namespaces/default/services.")
        var target: String

        func run() async throws {
            let set: PolicySet
            do {
                set = try PolicySet.load(directory: policies)
            } catch {
                printError(error.description)
                throw ExitCode.failure
            }
            let request: RequestAttributes
            do {
                request = try RequestAttributes(method: method, target: target)
            } catch {
                printError("refused before authorization: \(error.description)")
                throw ExitCode(2)
            }
            print(explanation(of: request, decision: set.decide(request, peer: peer),
                              protected: ProtectedObjects(isthmusNamespace: isthmusNamespace)).serialized)
        }
    }
}

/// The `policy explain` document; its keys are documented in docs and README.
/// Decided as the proxy decides: protected objects first, then the policy.
func explanation(of request: RequestAttributes, decision: PolicyDecision, protected: ProtectedObjects) -> JSONValue {
    let rule: JSONValue = decision.rule.map {
        .object([("file", .string($0.file)), ("index", .int($0.index)), ("line", .int($0.line))])
    } ?? .null
    var allowed = decision.allowed
    var reason = decision.reason
    var forwardTarget = request.forwardTarget
    let protection: JSONValue
    switch protected.decide(request) {
    case .unrestricted:
        protection = .null
    case .refuse(let why):
        allowed = false
        reason = protected.message(why)
        protection = .object([("decision", .string("refused")), ("reason", .string(why.rawValue))])
    case .narrow(let narrowing):
        forwardTarget = narrowing.target(for: request)
        protection = .object([
            ("decision", .string("narrowed")),
            ("fieldSelector", .string(narrowing.fieldRequirements.joined(separator: ","))),
            ("labelSelector", .string(narrowing.labelRequirements.joined(separator: ","))),
        ])
    case .checkSecretFirst:
        protection = .object([("decision", .string("checkObject")),
                              ("reason", .string("served only if the Secret is no remote secret, ServiceAccount token or Helm release"))])
    }
    return .object([
        ("isResourceRequest", .bool(request.isResourceRequest)),
        ("verb", .string(request.verb.rawValue)),
        ("apiGroup", .string(request.apiGroup)),
        ("apiVersion", .string(request.apiVersion)),
        ("namespace", .string(request.namespace)),
        ("resource", .string(request.resource)),
        ("subresource", .string(request.subresource)),
        ("name", .string(request.name)),
        ("path", .string(request.path)),
        ("allowed", .bool(allowed)),
        ("rule", allowed ? rule : .null),
        ("reason", .string(reason)),
        ("protected", protection),
        ("forwardTarget", allowed ? .string(forwardTarget) : .null),
    ])
}
