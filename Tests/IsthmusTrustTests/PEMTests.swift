import Testing
@testable import IsthmusTrust

@Suite("PEM blocks")
struct PEMTests {
    @Test("one block: label and DER")
    func single() throws {
        let blocks = try PEMBlock.parseAll(Fixtures.openSSLPublicKey1)
        #expect(blocks.count == 1)
        #expect(blocks[0].label == "PUBLIC KEY")
        #expect(blocks[0].der == PeerPublicKey.spkiPrefix + Fixtures.openSSLRawPublic1)
    }

    @Test("encoding is byte-identical to OpenSSL's output")
    func encoding() throws {
        let block = try #require(try PEMBlock.parseAll(Fixtures.rootCA).first)
        #expect(block.pemString == Fixtures.rootCA)
        #expect(PEMBlock(label: "X", der: []).pemString == "-----BEGIN X-----\n-----END X-----\n")
    }

    @Test("several blocks in order, with explanatory text and CRLF around them")
    func several() throws {
        let text = "key one:\r\n" + Fixtures.openSSLPublicKey1.replacingLineFeeds(with: "\r\n")
            + "\nsome text\n  " + Fixtures.openSSLPublicKey2 + "trailer"
        let blocks = try PEMBlock.parseAll(text)
        #expect(blocks.map(\.label) == ["PUBLIC KEY", "PUBLIC KEY"])
        #expect(blocks[1].der.suffix(32) == (try PeerPublicKey(pem: Fixtures.openSSLPublicKey2)).rawRepresentation[...])
    }

    @Test("a body wrapped at another width still reads")
    func rewrapped() throws {
        let body = "MCowBQYDK2VwAyEAIM6jEwUCJOOYZ/hOHiI9KGG/y7KaesCh5TALzRkjo0g="
        var wrapped = "-----BEGIN PUBLIC KEY-----\n"
        var rest = Substring(body)
        while !rest.isEmpty {
            wrapped += rest.prefix(10) + "\n"
            rest = rest.dropFirst(10)
        }
        wrapped += "-----END PUBLIC KEY-----"
        #expect(try PEMBlock.parseAll(wrapped) == PEMBlock.parseAll(Fixtures.openSSLPublicKey1))
    }

    @Test("no block is an empty list, not an error")
    func none() throws {
        #expect(try PEMBlock.parseAll("") == [])
        #expect(try PEMBlock.parseAll("just text") == [])
    }

    @Test("structural errors are named")
    func errors() {
        #expect(throws: KeyError.unterminatedPEMBlock(label: "PUBLIC KEY")) {
            try PEMBlock.parseAll("-----BEGIN PUBLIC KEY-----\nAAAA\n")
        }
        #expect(throws: KeyError.mismatchedPEMEnd(begin: "PUBLIC KEY", end: "PRIVATE KEY")) {
            try PEMBlock.parseAll("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
        }
        #expect(throws: KeyError.invalidBase64(label: "PUBLIC KEY")) {
            try PEMBlock.parseAll("-----BEGIN PUBLIC KEY-----\nAA*A\n-----END PUBLIC KEY-----\n")
        }
        #expect(throws: KeyError.pemHeadersUnsupported(label: "RSA PRIVATE KEY")) {
            try PEMBlock.parseAll(
                "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nAAAA\n-----END RSA PRIVATE KEY-----\n")
        }
        #expect(throws: KeyError.unterminatedPEMBlock(label: "A")) {
            try PEMBlock.parseAll("-----BEGIN A-----\nAAAA\n-----BEGIN B-----\nAAAA\n-----END B-----\n")
        }
    }
}

extension String {
    func replacingLineFeeds(with separator: String) -> String {
        split(separator: "\n", omittingEmptySubsequences: false).joined(separator: separator)
    }
}
