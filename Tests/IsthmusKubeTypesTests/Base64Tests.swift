import Foundation
import IsthmusKubeTypes
import Testing

@Suite("Base64")
struct Base64Tests {
    /// RFC 4648 §10 test vectors.
    static let vectors: [(String, String)] = [
        ("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="), ("fooba", "Zm9vYmE="), ("foobar", "Zm9vYmFy"),
    ]

    @Test("standard Base64 matches the RFC 4648 vectors both ways")
    func standardVectors() {
        for (plain, encoded) in Self.vectors {
            #expect(Base64.encodeStandard(Array(plain.utf8)) == encoded)
            #expect(Base64.decodeStandard(Array(encoded.utf8)) == Array(plain.utf8))
        }
    }

    @Test("base64url is the same without padding, with - and _")
    func urlVectors() {
        for (plain, encoded) in Self.vectors {
            let unpadded = encoded.filter { $0 != "=" }
            #expect(Base64.encodeURL(Array(plain.utf8)) == unpadded)
            #expect(Base64.decodeURL(Array(unpadded.utf8)) == Array(plain.utf8))
        }
        #expect(Base64.encodeURL([0xFB, 0xFF]) == "-_8")
        #expect(Base64.decodeURL(Array("-_8".utf8)) == [0xFB, 0xFF])
    }

    @Test("base64url refuses padding, whitespace and the standard alphabet")
    func urlStrict() {
        for bad in ["Zg==", "Zm8=", "Zm 9v", "Zm9v\n", "+/8", "Z"] {
            #expect(Base64.decodeURL(Array(bad.utf8)) == nil, "\(bad)")
        }
        #expect(!Base64.isURLAlphabet(Array("ab=".utf8)))
        #expect(Base64.isURLAlphabet(Array("ab-_09".utf8)))
    }

    @Test("non-canonical trailing bits are refused, so one value has one spelling")
    func canonical() {
        // "Zg" is canonical for "f"; "Zh" carries a non-zero bit in the unused tail.
        #expect(Base64.decodeURL(Array("Zh".utf8)) == nil)
        #expect(Base64.decodeStandard(Array("Zh==".utf8)) == nil)
        #expect(Base64.decodeStandard(Array("Zm9=".utf8)) == nil)
    }

    @Test("standard Base64 refuses missing or misplaced padding")
    func standardStrict() {
        for bad in ["Zg", "Zg=", "Z===", "Zg==Zg==", "=Zg=", "Zm-v"] {
            #expect(Base64.decodeStandard(Array(bad.utf8)) == nil, "\(bad)")
        }
    }

    @Test("every byte value survives a round trip")
    func roundTrip() {
        let all = (0...255).map { UInt8($0) }
        for length in [0, 1, 2, 3, 31, 32, 33, 64, 256] {
            let bytes = Array(all.prefix(length)) + Array(all.reversed().prefix(max(0, length - 256)))
            #expect(Base64.decodeURL(Array(Base64.encodeURL(bytes).utf8)) == bytes)
            #expect(Base64.decodeStandard(Array(Base64.encodeStandard(bytes).utf8)) == bytes)
            // Foundation's encoder as an independent reference.
            let reference = Data(bytes).base64EncodedString()
            #expect(Base64.encodeStandard(bytes) == reference)
            #expect(Base64.encodeURL(bytes) == String(reference.compactMap { c -> Character? in
                c == "+" ? "-" : c == "/" ? "_" : c == "=" ? nil : c
            }))
        }
    }
}
