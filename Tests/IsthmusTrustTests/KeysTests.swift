import Crypto
import Testing
@testable import IsthmusTrust

@Suite("Ed25519 keys as PEM")
struct KeysTests {
    // MARK: private keys

    @Test("an OpenSSL private key loads to the seed OpenSSL printed, and writes back byte for byte")
    func openSSLPrivateKey() throws {
        let key = try SigningKeyPair(pem: Fixtures.openSSLPrivateKey1)
        #expect(Array(key.pkcs8DER.suffix(32)) == Fixtures.openSSLSeed1)
        #expect(key.publicKey.rawRepresentation == Fixtures.openSSLRawPublic1)
        #expect(key.pemRepresentation == Fixtures.openSSLPrivateKey1)
    }

    @Test("PKCS#8 is the 48-byte form Go and OpenSSL write")
    func pkcs8Form() throws {
        let key = SigningKeyPair()
        let der = key.pkcs8DER
        #expect(der.count == 48)
        #expect(Array(der.prefix(16)) == Fixtures.hex("302e020100300506032b657004220420"))
        let reloaded = try SigningKeyPair(pem: key.pemRepresentation)
        #expect(reloaded.publicKey == key.publicKey)
        #expect(reloaded.pkcs8DER == der)
    }

    @Test("the Deckhouse label ED25519 PRIVATE KEY is accepted")
    func deckhouseLabel() throws {
        let relabelled = Fixtures.openSSLPrivateKey1.replacing("PRIVATE KEY", with: "ED25519 PRIVATE KEY")
        #expect(relabelled.hasPrefix("-----BEGIN ED25519 PRIVATE KEY-----"))
        let key = try SigningKeyPair(pem: relabelled)
        #expect(key.publicKey.rawRepresentation == Fixtures.openSSLRawPublic1)
    }

    @Test("the RFC 8410 v2 form with an attribute and the embedded public key loads")
    func v2Form() throws {
        let key = try SigningKeyPair(pem: Fixtures.rfc8410V2PrivateKey)
        #expect(key.publicKey.rawRepresentation == Fixtures.rfc8410V2RawPublic)
        // Written back in the plain v1 form.
        #expect(key.pkcs8DER.count == 48)
    }

    @Test("a v2 key whose embedded public key does not match its seed is refused")
    func v2Mismatch() {
        var der = Fixtures.hex("3051020101300506032b657004220420") + Fixtures.openSSLSeed1
        der += [0x81, 0x21, 0x00] + Fixtures.hex(String(repeating: "ab", count: 32))
        #expect(throws: KeyError.publicKeyMismatch) { try SigningKeyPair(pkcs8DER: der) }
        // The matching public key is fine.
        var good = Fixtures.hex("3051020101300506032b657004220420") + Fixtures.openSSLSeed1
        good += [0x81, 0x21, 0x00] + Fixtures.openSSLRawPublic1
        #expect((try? SigningKeyPair(pkcs8DER: good)) != nil)
    }

    @Test("a v1 key carrying a public key is refused (RFC 5958)")
    func v1WithPublicKey() {
        var der = Fixtures.hex("3051020100300506032b657004220420") + Fixtures.openSSLSeed1
        der += [0x81, 0x21, 0x00] + Fixtures.openSSLRawPublic1
        #expect(throws: KeyError.self) { try SigningKeyPair(pkcs8DER: der) }
    }

    @Test("private keys of other algorithms are refused by name")
    func otherPrivateAlgorithms() {
        #expect(throws: KeyError.unsupportedAlgorithm("X25519 (1.3.101.110)")) {
            try SigningKeyPair(pem: Fixtures.x25519PrivateKey)
        }
        #expect(throws: KeyError.unsupportedAlgorithm("EC (ECDSA/ECDH, e.g. P-256) (1.2.840.10045.2.1)")) {
            try SigningKeyPair(pem: Fixtures.p256PrivateKey)
        }
    }

    @Test("wrong labels, several blocks, encrypted keys and garbage are refused")
    func privateKeyErrors() {
        #expect(throws: KeyError.noPEMBlock) { try SigningKeyPair(pem: "not a key") }
        #expect(throws: KeyError.unexpectedLabel("PUBLIC KEY", expected: SigningKeyPair.acceptedPEMLabels)) {
            try SigningKeyPair(pem: Fixtures.openSSLPublicKey1)
        }
        #expect(throws: KeyError.multiplePEMBlocks(count: 2)) {
            try SigningKeyPair(pem: Fixtures.openSSLPrivateKey1 + Fixtures.openSSLPrivateKey2)
        }
        let encrypted = "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"
        #expect(throws: KeyError.self) { try SigningKeyPair(pem: encrypted) }
        let garbage = "-----BEGIN PRIVATE KEY-----\nAAECAwQF\n-----END PRIVATE KEY-----\n"
        #expect(throws: KeyError.malformedDER("not a DER PKCS#8 private key")) { try SigningKeyPair(pem: garbage) }
        #expect(throws: KeyError.invalidKeyLength(31)) { try SigningKeyPair(seed: [UInt8](repeating: 1, count: 31)) }
        // Trailing bytes after the DER are not silently ignored.
        let trailing = Array((try! PEMBlock.parseAll(Fixtures.openSSLPrivateKey1))[0].der) + [0]
        #expect(throws: KeyError.self) { try SigningKeyPair(pkcs8DER: trailing) }
    }

    @Test("the encrypted-key message tells the operator what to do")
    func encryptedMessage() {
        let error = KeyError.unexpectedLabel("ENCRYPTED PRIVATE KEY", expected: SigningKeyPair.acceptedPEMLabels)
        #expect(error.description.contains("encrypted private keys are not supported"))
    }

    @Test("a key pair never prints its key material")
    func redacted() {
        let key = Fixtures.key1
        #expect(key.description == "<redacted>")
        #expect(String(describing: key) == "<redacted>")
        #expect(String(reflecting: key) == "<redacted>")
        #expect("\(key)" == "<redacted>")
        var dumped = ""
        dump(key, to: &dumped)
        let pemBody = Fixtures.openSSLPrivateKey1.split(separator: "\n")[1]
        #expect(!dumped.contains(pemBody))
        #expect(!dumped.contains("67b9f064"))
        #expect(Mirror(reflecting: key).children.isEmpty)
    }

    // MARK: public keys

    @Test("an OpenSSL public key loads and writes back byte for byte")
    func openSSLPublicKey() throws {
        let key = try PeerPublicKey(pem: Fixtures.openSSLPublicKey1)
        #expect(key.rawRepresentation == Fixtures.openSSLRawPublic1)
        #expect(key.pemRepresentation == Fixtures.openSSLPublicKey1)
        #expect(key == Fixtures.key1.publicKey)
        #expect(key.spkiDER.count == 44)
    }

    @Test("both public labels are accepted: PUBLIC KEY and ED25519 PUBLIC KEY")
    func publicLabels() throws {
        let deckhouse = Fixtures.openSSLPublicKey1.replacing("PUBLIC KEY", with: "ED25519 PUBLIC KEY")
        #expect(try PeerPublicKey(pem: deckhouse) == PeerPublicKey(pem: Fixtures.openSSLPublicKey1))
        // Always written as PUBLIC KEY.
        #expect(try PeerPublicKey(pem: deckhouse).pemRepresentation == Fixtures.openSSLPublicKey1)
    }

    @Test("several blocks parse in order, for key rotation")
    func several() throws {
        let keys = try PeerPublicKey.parseAll(pem: Fixtures.openSSLPublicKey1 + Fixtures.openSSLPublicKey2)
        #expect(keys == [Fixtures.key1.publicKey, Fixtures.key2.publicKey])
        #expect(throws: KeyError.multiplePEMBlocks(count: 2)) {
            try PeerPublicKey(pem: Fixtures.openSSLPublicKey1 + Fixtures.openSSLPublicKey2)
        }
    }

    @Test("a bad block among several is reported with its position")
    func badBlockPosition() {
        #expect(throws: KeyError.inBlock(2, .unsupportedAlgorithm("RSA (1.2.840.113549.1.1.1)"))) {
            try PeerPublicKey.parseAll(pem: Fixtures.openSSLPublicKey1 + Fixtures.rsaPublicKey)
        }
        #expect(throws: KeyError.inBlock(1, .unexpectedLabel("CERTIFICATE", expected: PeerPublicKey.acceptedPEMLabels))) {
            try PeerPublicKey.parseAll(pem: Fixtures.rootCA + Fixtures.openSSLPublicKey1)
        }
    }

    @Test("public keys of other algorithms are refused with a clear message", arguments: [
        (Fixtures.rsaPublicKey, "RSA (1.2.840.113549.1.1.1)"),
        (Fixtures.p256PublicKey, "EC (ECDSA/ECDH, e.g. P-256) (1.2.840.10045.2.1)"),
        (Fixtures.ed448PublicKey, "Ed448 (1.3.101.113)"),
        (Fixtures.x25519PublicKey, "X25519 (1.3.101.110)"),
    ])
    func otherPublicAlgorithms(pem: String, name: String) {
        #expect(throws: KeyError.unsupportedAlgorithm(name)) { try PeerPublicKey(pem: pem) }
        #expect(KeyError.unsupportedAlgorithm(name).description
            == "key algorithm is \(name); only Ed25519 (1.3.101.112) is supported")
    }

    @Test("Ed25519 with AlgorithmIdentifier parameters is refused (RFC 8410 §3)")
    func parameters() {
        // SEQUENCE { SEQUENCE { OID 1.3.101.112, NULL }, BIT STRING (32 bytes) }
        let der = Fixtures.hex("302c300706032b65700500032100") + Fixtures.openSSLRawPublic1
        #expect(throws: KeyError.algorithmParametersPresent) { try PeerPublicKey(spkiDER: der) }
    }

    @Test("garbage, truncation and wrong lengths are refused")
    func publicGarbage() {
        #expect(throws: KeyError.noPEMBlock) { try PeerPublicKey(pem: "") }
        #expect(throws: KeyError.self) { try PeerPublicKey(spkiDER: [0x30, 0x03, 0x02, 0x01, 0x00]) }
        #expect(throws: KeyError.self) { try PeerPublicKey(spkiDER: PeerPublicKey.spkiPrefix + [1, 2, 3]) }
        #expect(throws: KeyError.invalidKeyLength(31)) {
            try PeerPublicKey(spkiDER: Fixtures.hex("3029300506032b6570032000") + [UInt8](repeating: 7, count: 31))
        }
        #expect(throws: KeyError.invalidKeyLength(33)) { try PeerPublicKey(rawRepresentation: [UInt8](repeating: 7, count: 33)) }
        let garbage = "-----BEGIN PUBLIC KEY-----\nAAECAwQF\n-----END PUBLIC KEY-----\n"
        #expect(throws: KeyError.malformedDER("not a DER SubjectPublicKeyInfo")) { try PeerPublicKey(pem: garbage) }
    }

    @Test("error descriptions never contain key material")
    func errorsAreClean() {
        let errors: [KeyError] = [
            .noPEMBlock, .multiplePEMBlocks(count: 2), .unterminatedPEMBlock(label: "PRIVATE KEY"),
            .mismatchedPEMEnd(begin: "A", end: "B"), .pemHeadersUnsupported(label: "RSA PRIVATE KEY"),
            .invalidBase64(label: "PRIVATE KEY"), .unexpectedLabel("CERTIFICATE", expected: ["PUBLIC KEY"]),
            .malformedDER("x"), .unsupportedAlgorithm("RSA"), .algorithmParametersPresent, .invalidKeyLength(3),
            .unsupportedVersion(2), .publicKeyMismatch, .inBlock(2, .noPEMBlock),
        ]
        for error in errors {
            #expect(!error.description.isEmpty)
            #expect(!error.description.contains("MC4CAQAw"))
        }
        #expect(KeyError.inBlock(2, .noPEMBlock).description == "PEM block 2: no PEM block found")
    }

    @Test("the public key fingerprint is stable and short")
    func fingerprint() throws {
        let key = try PeerPublicKey(pem: Fixtures.openSSLPublicKey1)
        #expect(key.fingerprint.hasPrefix("ed25519:"))
        #expect(key.fingerprint.count == "ed25519:".count + 16)
        #expect(key.fingerprint == Fixtures.key1.publicKey.fingerprint)
        #expect(key.fingerprint != Fixtures.key2.publicKey.fingerprint)
    }

    @Test("a signature made by swift-crypto verifies with the loaded public key")
    func signatureInterop() throws {
        let message = Array("hello".utf8)
        let signature = Fixtures.sign(message, seed: Fixtures.key1)
        let key = try PeerPublicKey(pem: Fixtures.openSSLPublicKey1)
        #expect(key.isValidSignature(signature, for: message[...]))
        #expect(!Fixtures.key2.publicKey.isValidSignature(signature, for: message[...]))
    }
}
