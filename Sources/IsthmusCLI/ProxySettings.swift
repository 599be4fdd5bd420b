import Foundation
import IsthmusProxy
import Yams

/// One setting of `isthmus proxy`: its YAML field in `--config` (camelCase),
/// the flag that overrides it (the same name in kebab case) and its kind.
///
/// ``ProxyCommand/settings`` lists them all; a new setting is its `@Option`
/// (optional, so "not given" is visible) plus one line in that list.
struct ProxySetting {
    enum Kind: Equatable {
        /// Any string.
        case text
        /// A file or directory; relative to the config file when written there.
        case path
        /// `HOST:PORT`.
        case hostPort
        /// `90s`, `15m`, `1h30m` (see ``parseDurationSeconds(_:)``).
        case duration(allowsZero: Bool)
        /// `true` / `false`; the flag is `--NAME` / `--no-NAME`.
        case bool
        /// A whole number in `range` (a YAML integer, or its digits as a flag).
        case count(ClosedRange<Int>)
        /// `QPS/BURST` (e.g. `50/100`), `QPS` alone, or `off`.
        case rate
        /// `PEER=QPS/BURST,...` as a flag; in a file also a mapping `PEER: QPS/BURST`.
        case peerRates
    }

    enum Slot {
        case text(WritableKeyPath<ProxyCommand, String?>)
        case bool(WritableKeyPath<ProxyCommand, Bool?>)
    }

    let field: String
    let kind: Kind
    let slot: Slot

    static func text(_ field: String, _ keyPath: WritableKeyPath<ProxyCommand, String?>, _ kind: Kind = .text) -> ProxySetting {
        ProxySetting(field: field, kind: kind, slot: .text(keyPath))
    }

    static func duration(_ field: String, _ keyPath: WritableKeyPath<ProxyCommand, String?>, allowsZero: Bool) -> ProxySetting {
        ProxySetting(field: field, kind: .duration(allowsZero: allowsZero), slot: .text(keyPath))
    }

    static func count(_ field: String, _ keyPath: WritableKeyPath<ProxyCommand, String?>, in range: ClosedRange<Int>) -> ProxySetting {
        ProxySetting(field: field, kind: .count(range), slot: .text(keyPath))
    }

    static func rate(_ field: String, _ keyPath: WritableKeyPath<ProxyCommand, String?>) -> ProxySetting {
        ProxySetting(field: field, kind: .rate, slot: .text(keyPath))
    }

    static func peerRates(_ field: String, _ keyPath: WritableKeyPath<ProxyCommand, String?>) -> ProxySetting {
        ProxySetting(field: field, kind: .peerRates, slot: .text(keyPath))
    }

    static func bool(_ field: String, _ keyPath: WritableKeyPath<ProxyCommand, Bool?>) -> ProxySetting {
        ProxySetting(field: field, kind: .bool, slot: .bool(keyPath))
    }

    /// The command-line spelling, as ArgumentParser derives it: `upstreamCA` → `--upstream-ca`.
    var flag: String { "--" + Self.kebabCase(field) }

    static func kebabCase(_ name: String) -> String {
        let characters = Array(name)
        var out = ""
        for (i, c) in characters.enumerated() {
            if c.isUppercase, i > 0 {
                let previousIsLower = characters[i - 1].isLowercase || characters[i - 1].isNumber
                let nextIsLower = i + 1 < characters.count && characters[i + 1].isLowercase
                if previousIsLower || (characters[i - 1].isUppercase && nextIsLower) { out.append("-") }
            }
            out.append(Character(c.lowercased()))
        }
        return out
    }

    /// Why `value` is not of this setting's kind, or nil when it is.
    func problem(with value: String) -> String? {
        switch kind {
        case .text, .path, .bool:
            return nil
        case .hostPort:
            return APIServerCommand.split(value) == nil ? "must be HOST:PORT, got \"\(value)\"" : nil
        case .duration(let allowsZero):
            guard let seconds = parseDurationSeconds(value) else {
                return "must be a duration like 90s, 15m or 1h30m, got \"\(value)\""
            }
            return !allowsZero && seconds == 0 ? "must be above zero" : nil
        case .count(let range):
            guard let number = Int(value), range.contains(number) else {
                return "must be a whole number from \(range.lowerBound) to \(range.upperBound), got \"\(value)\""
            }
            return nil
        case .rate:
            guard value == "off" || RequestRate(parsing: value) != nil else {
                return "must be 'off' or requests per second and burst like 50/100 (QPS above 0, burst at least 1), got \"\(value)\""
            }
            return nil
        case .peerRates:
            if case .failure(let error) = PeerRateLimits.parseByPeer(value) { return error.problem }
            return nil
        }
    }
}

/// A value from a config file, with its place so an error can point at it.
struct ProxyFileValue: Equatable {
    enum Value: Equatable {
        case text(String)
        case bool(Bool)
    }

    var value: Value
    var line: Int
    var column: Int
}

/// `isthmus proxy --config FILE`, decoded: each known field's value and place.
/// Pure over the text, so every refusal is testable without a disk.
struct ProxyFileConfiguration: Equatable {
    /// The file as named on the command line; errors and relative paths use it.
    var path: String
    var values: [String: ProxyFileValue] = [:]

    /// Decodes `text`, refusing (with the first problem, located) YAML errors,
    /// a top level that is not a mapping, unknown fields and values of the wrong kind.
    init(yaml text: String, path: String, settings: [ProxySetting] = ProxyCommand.settings) throws(ProxyConfigurationError) {
        self.path = path
        func failure(_ line: Int, _ column: Int, _ field: String?, _ problem: String) -> ProxyConfigurationError {
            ProxyConfigurationError(field: "\(path):\(line):\(column)" + (field.map { ": \($0)" } ?? ""), problem: problem)
        }
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            switch error {
            case .scanner(_, let message, let mark, _), .parser(_, let message, let mark, _),
                .composer(_, let message, let mark, _):
                throw failure(mark.line, mark.column, nil, "invalid YAML: \(message)")
            case .duplicatedKeysInMapping(let duplicates, let context):
                throw failure(context.mark.line, context.mark.column, duplicates.sorted().first,
                              "given more than once")
            default:
                throw failure(1, 1, nil, "invalid YAML: \(error)")
            }
        } catch {
            throw failure(1, 1, nil, "invalid YAML: \(error)")
        }
        // An empty file (or only comments) sets nothing.
        guard let root else { return }
        guard let mapping = root.mapping else {
            throw failure(root.mark?.line ?? 1, root.mark?.column ?? 1, nil,
                          "expected a mapping of settings (field: value)")
        }
        let byField = Dictionary(settings.map { ($0.field, $0) }, uniquingKeysWith: { a, _ in a })
        for (key, node) in mapping {
            let line = node.mark?.line ?? 0, column = node.mark?.column ?? 0
            guard let name = key.string, let setting = byField[name] else {
                throw failure(key.mark?.line ?? 0, key.mark?.column ?? 0, key.string ?? "?",
                              "unknown field; known fields are \(settings.map(\.field).joined(separator: ", "))")
            }
            let resolved = node.scalar == nil ? nil : Resolver.default.resolveTag(of: node)
            let quoted = node.scalar.map { $0.style != .plain && $0.style != .any } ?? false
            if case .bool = setting.kind {
                guard let bool = node.bool, resolved == .bool, !quoted else {
                    throw failure(line, column, name, "expected true or false")
                }
                values[name] = ProxyFileValue(value: .bool(bool), line: line, column: column)
                continue
            }
            if setting.kind == .peerRates, let peers = node.mapping {
                // PEER: QPS/BURST, one per line: the same entries as the flag's PEER=QPS/BURST list.
                var entries: [String] = []
                for (peerKey, rateNode) in peers {
                    let at = (rateNode.mark?.line ?? line, rateNode.mark?.column ?? column)
                    guard let peer = peerKey.string, !peer.isEmpty, !peer.contains(","), !peer.contains("="),
                          let rate = rateNode.scalar?.string else {
                        throw failure(at.0, at.1, name, "expected a mapping of peer names to QPS/BURST like 50/100")
                    }
                    guard RequestRate(parsing: rate) != nil else {
                        throw failure(at.0, at.1, "\(name).\(peer)",
                                      "must be requests per second and burst like 50/100 (QPS above 0, burst at least 1), got \"\(rate)\"")
                    }
                    entries.append("\(peer)=\(rate)")
                }
                values[name] = ProxyFileValue(value: .text(entries.joined(separator: ",")), line: line, column: column)
                continue
            }
            guard let scalar = node.scalar else {
                throw failure(line, column, name, "expected a string, not a \(node.sequence != nil ? "list" : "mapping")")
            }
            let isCount = if case .count = setting.kind { true } else { false }
            // A rate may be written bare: 50, 0.5, off (YAML reads those as a number or a bool).
            guard quoted || resolved == .str || (isCount && resolved == .int) || setting.kind == .rate else {
                let hint = if case .duration = setting.kind { " like 90s, 15m or 1h30m (a bare number has no unit)" } else { "" }
                throw failure(line, column, name, "expected a string\(hint), got \(scalar.string)")
            }
            if let problem = setting.problem(with: scalar.string) {
                throw failure(line, column, name, problem)
            }
            var text = scalar.string
            if setting.kind == .path, !text.hasPrefix("/") {
                text = ((path as NSString).deletingLastPathComponent as NSString).appendingPathComponent(text)
            }
            values[name] = ProxyFileValue(value: .text(text), line: line, column: column)
        }
    }
}

extension ProxyCommand {
    /// Fills every setting not given on the command line from `file`, and
    /// returns where each value came from (field → label for errors).
    mutating func merge(_ file: ProxyFileConfiguration) -> [String: String] {
        var origins: [String: String] = [:]
        for setting in Self.settings {
            guard let entry = file.values[setting.field] else { continue }
            let label = "\(file.path):\(entry.line):\(entry.column): \(setting.field)"
            switch (setting.slot, entry.value) {
            case (.text(let keyPath), .text(let value)) where self[keyPath: keyPath] == nil:
                self[keyPath: keyPath] = value
                origins[setting.field] = label
            case (.bool(let keyPath), .bool(let value)) where self[keyPath: keyPath] == nil:
                self[keyPath: keyPath] = value
                origins[setting.field] = label
            default:
                continue
            }
        }
        return origins
    }

    /// Checks every set value against its kind, naming the flag or the file
    /// place it came from.
    func checkSettings(origins: [String: String]) throws(ProxyConfigurationError) {
        for setting in Self.settings {
            guard case .text(let keyPath) = setting.slot, let value = self[keyPath: keyPath],
                  let problem = setting.problem(with: value) else { continue }
            throw ProxyConfigurationError(field: origins[setting.field] ?? setting.flag, problem: problem)
        }
    }
}
