import Foundation
import IsthmusKubeTypes

/// Decodes the protobuf request bodies kubectl's typed generators and client-go
/// send (`kubectl create namespace|configmap|secret|serviceaccount|service|deployment`,
/// `kubectl run`): the `k8s\0` magic, a `runtime.Unknown` envelope (typeMeta = 1
/// {apiVersion = 1, kind = 2}, raw = 2, contentEncoding = 3, contentType = 4),
/// and the message in `raw`, with field numbers from k8s.io/api 1.32's
/// generated.proto. Namespace, ConfigMap, Secret and ServiceAccount are read
/// here; Service, Pod, Node, Endpoints, EndpointSlice and Deployment through
/// ``ProtoSchemas``. Any other kind stays 415, naming the kind and the JSON way around.
enum ProtobufBody {
    static let magic: [UInt8] = [0x6B, 0x38, 0x73, 0x00]

    enum Failure: Error, Equatable {
        /// A kind this decoder does not know: answered 415.
        case unsupportedKind(String)
        /// A field of a known kind this decoder does not read, carrying a value
        /// (its path, the number in parentheses): answered 415, since dropping
        /// it would store less than was sent.
        case unsupportedField(String)
        case malformed(String)
    }

    static func decode(_ body: [UInt8]) throws(Failure) -> JSON {
        guard body.count >= 4, Array(body.prefix(4)) == magic else { throw .malformed("missing the k8s protobuf magic prefix") }
        var apiVersion = "", kind = ""
        var raw: ArraySlice<UInt8> = []
        var reader = Reader(body.dropFirst(4))
        while let (field, value) = try reader.next() {
            switch (field, value) {
            case (1, .bytes(let typeMeta)):
                var r = Reader(typeMeta)
                while let (f, v) = try r.next() {
                    if f == 1 { apiVersion = try v.string() }
                    if f == 2 { kind = try v.string() }
                }
            case (2, .bytes(let bytes)): raw = bytes
            case (3, .bytes(let encoding)):
                if !encoding.isEmpty { throw .malformed("unsupported contentEncoding") }
            default: break
            }
        }
        var members: [(String, JSON)] = [("kind", .string(kind)), ("apiVersion", .string(apiVersion))]
        if let schema = ProtoSchemas.schema(apiVersion: apiVersion, kind: kind) {
            guard case .object(let decoded) = try schema.decode(raw, path: "") else { throw .malformed("not a message") }
            return .object(members + decoded)
        }
        guard apiVersion == "v1" else { throw .unsupportedKind("\(apiVersion)/\(kind)") }
        switch kind {
        case "Namespace": members += try namespace(raw)
        case "ConfigMap": members += try configMap(raw)
        case "Secret": members += try secret(raw)
        case "ServiceAccount": members += try serviceAccount(raw)
        default: throw .unsupportedKind(kind)
        }
        return .object(members)
    }

    // MARK: Kinds

    static func namespace(_ raw: ArraySlice<UInt8>) throws(Failure) -> [(String, JSON)] {
        var out: [(String, JSON)] = []
        var reader = Reader(raw)
        while let (field, value) = try reader.next() {
            switch field {
            case 1: out.append(("metadata", try objectMeta(try value.message())))
            case 2:
                // NamespaceSpec: finalizers = 1.
                var finalizers: [JSON] = []
                var r = Reader(try value.message())
                while let (f, v) = try r.next() {
                    if f == 1 { finalizers.append(.string(try v.string())) }
                }
                if !finalizers.isEmpty { out.append(("spec", .object([("finalizers", .array(finalizers))]))) }
            default: break  // status is the server's
            }
        }
        return out
    }

    static func configMap(_ raw: ArraySlice<UInt8>) throws(Failure) -> [(String, JSON)] {
        var metadata: JSON = .object([])
        var data: [(String, JSON)] = [], binaryData: [(String, JSON)] = []
        var immutable: Bool?
        var reader = Reader(raw)
        while let (field, value) = try reader.next() {
            switch field {
            case 1: metadata = try objectMeta(try value.message())
            case 2: let (k, v) = try mapEntry(try value.message()); data.append((k, .string(String(decoding: v, as: UTF8.self))))
            case 3: let (k, v) = try mapEntry(try value.message()); binaryData.append((k, .string(Base64.encodeStandard(v))))
            case 4: immutable = try value.varint() != 0
            default: break
            }
        }
        var out: [(String, JSON)] = [("metadata", metadata)]
        if let immutable { out.append(("immutable", .bool(immutable))) }
        if !data.isEmpty { out.append(("data", .object(data))) }
        if !binaryData.isEmpty { out.append(("binaryData", .object(binaryData))) }
        return out
    }

    static func secret(_ raw: ArraySlice<UInt8>) throws(Failure) -> [(String, JSON)] {
        var metadata: JSON = .object([])
        var data: [(String, JSON)] = [], stringData: [(String, JSON)] = []
        var type: String?
        var immutable: Bool?
        var reader = Reader(raw)
        while let (field, value) = try reader.next() {
            switch field {
            case 1: metadata = try objectMeta(try value.message())
            case 2: let (k, v) = try mapEntry(try value.message()); data.append((k, .string(Base64.encodeStandard(v))))
            case 3: type = try value.string()
            case 4: let (k, v) = try mapEntry(try value.message()); stringData.append((k, .string(String(decoding: v, as: UTF8.self))))
            case 5: immutable = try value.varint() != 0
            default: break
            }
        }
        var out: [(String, JSON)] = [("metadata", metadata)]
        if let immutable { out.append(("immutable", .bool(immutable))) }
        if !data.isEmpty { out.append(("data", .object(data))) }
        if !stringData.isEmpty { out.append(("stringData", .object(stringData))) }
        if let type, !type.isEmpty { out.append(("type", .string(type))) }
        return out
    }

    static func serviceAccount(_ raw: ArraySlice<UInt8>) throws(Failure) -> [(String, JSON)] {
        var metadata: JSON = .object([])
        var secrets: [JSON] = [], pullSecrets: [JSON] = []
        var automount: Bool?
        var reader = Reader(raw)
        while let (field, value) = try reader.next() {
            switch field {
            case 1: metadata = try objectMeta(try value.message())
            case 2:
                // ObjectReference: kind 1, namespace 2, name 3, uid 4, apiVersion 5, resourceVersion 6, fieldPath 7.
                secrets.append(try strings(try value.message(), [1: "kind", 2: "namespace", 3: "name", 4: "uid", 5: "apiVersion", 6: "resourceVersion", 7: "fieldPath"]))
            case 3: pullSecrets.append(try strings(try value.message(), [1: "name"]))  // LocalObjectReference
            case 4: automount = try value.varint() != 0
            default: break
            }
        }
        var out: [(String, JSON)] = [("metadata", metadata)]
        if !secrets.isEmpty { out.append(("secrets", .array(secrets))) }
        if !pullSecrets.isEmpty { out.append(("imagePullSecrets", .array(pullSecrets))) }
        if let automount { out.append(("automountServiceAccountToken", .bool(automount))) }
        return out
    }

    /// ObjectMeta as a client sends it: name 1, generateName 2, namespace 3, uid 5,
    /// resourceVersion 6, labels 11, annotations 12, ownerReferences 13, finalizers 14.
    /// Server-owned fields (selfLink, generation, timestamps, managedFields) are dropped.
    static func objectMeta(_ raw: ArraySlice<UInt8>) throws(Failure) -> JSON {
        var out: [(String, JSON)] = []
        var labels: [(String, JSON)] = [], annotations: [(String, JSON)] = []
        var owners: [JSON] = [], finalizers: [JSON] = []
        var reader = Reader(raw)
        while let (field, value) = try reader.next() {
            switch field {
            case 1, 2, 3, 5, 6:
                let text = try value.string()
                let names = [1: "name", 2: "generateName", 3: "namespace", 5: "uid", 6: "resourceVersion"]
                if !text.isEmpty, let name = names[field] { out.append((name, .string(text))) }
            case 11: let (k, v) = try mapEntry(try value.message()); labels.append((k, .string(String(decoding: v, as: UTF8.self))))
            case 12: let (k, v) = try mapEntry(try value.message()); annotations.append((k, .string(String(decoding: v, as: UTF8.self))))
            case 13:
                // OwnerReference: kind 1, name 3, uid 4, apiVersion 5, controller 6, blockOwnerDeletion 7.
                var owner: [(String, JSON)] = []
                var r = Reader(try value.message())
                while let (f, v) = try r.next() {
                    let names = [5: "apiVersion", 1: "kind", 3: "name", 4: "uid"]
                    if let name = names[f] { owner.append((name, .string(try v.string()))) }
                    if f == 6 { owner.append(("controller", .bool(try v.varint() != 0))) }
                    if f == 7 { owner.append(("blockOwnerDeletion", .bool(try v.varint() != 0))) }
                }
                owners.append(.object(owner))
            case 14: finalizers.append(.string(try value.string()))
            default: break
            }
        }
        if !labels.isEmpty { out.append(("labels", .object(labels))) }
        if !annotations.isEmpty { out.append(("annotations", .object(annotations))) }
        if !owners.isEmpty { out.append(("ownerReferences", .array(owners))) }
        if !finalizers.isEmpty { out.append(("finalizers", .array(finalizers))) }
        return .object(out)
    }

    /// A map entry: key = 1, value = 2.
    static func mapEntry(_ raw: ArraySlice<UInt8>) throws(Failure) -> (String, ArraySlice<UInt8>) {
        var key = ""
        var value: ArraySlice<UInt8> = []
        var reader = Reader(raw)
        while let (field, v) = try reader.next() {
            if field == 1 { key = try v.string() }
            if field == 2 { value = try v.message() }
        }
        return (key, value)
    }

    /// A message of string fields, named by number; empty strings omitted.
    static func strings(_ raw: ArraySlice<UInt8>, _ names: [Int: String]) throws(Failure) -> JSON {
        var out: [(String, JSON)] = []
        var reader = Reader(raw)
        while let (field, value) = try reader.next() {
            if let name = names[field] {
                let text = try value.string()
                if !text.isEmpty { out.append((name, .string(text))) }
            }
        }
        return .object(out)
    }

    // MARK: Wire format

    enum Value {
        case varint(UInt64)
        case bytes(ArraySlice<UInt8>)
        case fixed

        func string() throws(Failure) -> String {
            guard case .bytes(let b) = self else { throw .malformed("expected a length-delimited field") }
            return String(decoding: b, as: UTF8.self)
        }
        func message() throws(Failure) -> ArraySlice<UInt8> {
            guard case .bytes(let b) = self else { throw .malformed("expected a length-delimited field") }
            return b
        }
        func varint() throws(Failure) -> UInt64 {
            guard case .varint(let v) = self else { throw .malformed("expected a varint field") }
            return v
        }
    }

    /// Protobuf wire reader: varint, 64-bit, length-delimited and 32-bit fields.
    struct Reader {
        var bytes: ArraySlice<UInt8>
        init(_ bytes: ArraySlice<UInt8>) { self.bytes = bytes }

        mutating func readVarint() throws(Failure) -> UInt64 {
            var result: UInt64 = 0
            var shift: UInt64 = 0
            while let byte = bytes.popFirst() {
                guard shift < 64 else { throw .malformed("varint too long") }
                result |= UInt64(byte & 0x7F) << shift
                if byte & 0x80 == 0 { return result }
                shift += 7
            }
            throw .malformed("truncated varint")
        }

        mutating func next() throws(Failure) -> (Int, Value)? {
            if bytes.isEmpty { return nil }
            let tag = try readVarint()
            let field = Int(tag >> 3)
            guard field > 0 else { throw .malformed("field number 0") }
            switch tag & 7 {
            case 0: return (field, .varint(try readVarint()))
            case 1:
                guard bytes.count >= 8 else { throw .malformed("truncated fixed64") }
                bytes = bytes.dropFirst(8)
                return (field, .fixed)
            case 2:
                let length = try readVarint()
                guard length <= UInt64(bytes.count) else { throw .malformed("truncated length-delimited field") }
                let value = bytes.prefix(Int(length))
                bytes = bytes.dropFirst(Int(length))
                return (field, .bytes(value))
            case 5:
                guard bytes.count >= 4 else { throw .malformed("truncated fixed32") }
                bytes = bytes.dropFirst(4)
                return (field, .fixed)
            default:
                throw .malformed("unsupported wire type \(tag & 7)")
            }
        }
    }
}
