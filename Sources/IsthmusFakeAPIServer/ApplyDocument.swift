import IsthmusKubeTypes
import Yams

/// The body of a server-side apply: YAML (JSON is YAML too).
enum ApplyDocument {
    struct Invalid: Error {}

    static func parse(_ bytes: [UInt8]) throws -> JSON {
        if let json = try? JSON(parsing: bytes) { return json }
        guard let node = try Yams.compose(yaml: String(decoding: bytes, as: UTF8.self)) else { throw Invalid() }
        return convert(node)
    }

    static func convert(_ node: Node) -> JSON {
        switch node {
        case .mapping(let mapping):
            return .object(mapping.map { (key, value) in (key.string ?? "", convert(value)) })
        case .sequence(let sequence):
            return .array(sequence.map(convert))
        case .scalar(let scalar):
            switch node.tag.description {
            case Tag.Name.null.rawValue: return .null
            case Tag.Name.bool.rawValue: return .bool(node.bool ?? false)
            // Not a sexagesimal (`1:20`): Go's YAML reader takes it as a string, and Yams'
            // own conversion traps when one overflows (`1:2:3:4:5:6:7:8:9:10:11`).
            case Tag.Name.int.rawValue where !scalar.string.contains(":"):
                return node.int.map { .int($0) } ?? .string(scalar.string)
            case Tag.Name.float.rawValue: return node.float.map { .number(String($0)) } ?? .string(scalar.string)
            default: return .string(scalar.string)
            }
        case .alias:
            return .null
        }
    }
}
