import ArgumentParser
import IsthmusLogging
import Logging

extension LogFormat: ExpressibleByArgument {}
extension Logger.Level: @retroactive ExpressibleByArgument {}

/// `--log-format` and `--log-level`, shared by the long-running commands.
/// Their events go to standard error through swift-log; the proxy's access
/// and audit logs are separate streams (`--access-log`, `--audit-log`).
struct LoggingOptions: ParsableArguments {
    @Option(help: "json (one object per line) or text; default text when standard error is a terminal, json otherwise.")
    var logFormat: LogFormat?

    @Option(help: "The least severe level written: trace, debug, info, notice, warning, error or critical.")
    var logLevel: Logger.Level = .info

    /// Call first in `run()`: every `Logger` made afterwards uses these settings.
    func bootstrap() {
        IsthmusLogging.bootstrap(format: logFormat ?? .automatic, level: logLevel)
    }
}
