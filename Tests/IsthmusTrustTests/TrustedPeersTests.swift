import Testing
@testable import IsthmusTrust

@Suite("Trusted peers file")
struct TrustedPeersTests {
    let peer = Fixtures.peerUUID
    let other = Fixtures.otherPeerUUID

    /// A JSON string literal for `text`, escaped independently of the module.
    func quoted(_ text: String) -> String {
        var out = "\""
        for c in text.unicodeScalars {
            switch c {
            case "\n": out += "\\n"
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            default: out.unicodeScalars.append(c)
            }
        }
        return out + "\""
    }

    func entry(_ uuid: String, clusterUUID: String? = nil, authnKeyPub: String? = Fixtures.openSSLPublicKey1,
               rootCA: String? = Fixtures.rootCA, extra: String = "") -> String {
        var members: [String] = []
        members.append(#""clusterUUID":\#(quoted(clusterUUID ?? uuid))"#)
        if let authnKeyPub { members.append(#""authnKeyPub":\#(quoted(authnKeyPub))"#) }
        if let rootCA { members.append(#""rootCA":\#(quoted(rootCA))"#) }
        if !extra.isEmpty { members.append(extra) }
        return #"\#(quoted(uuid)):{\#(members.joined(separator: ","))}"#
    }

    func file(_ entries: String...) -> String { "{" + entries.joined(separator: ",") + "}" }

    func error(_ json: String) -> PeersFileError? {
        do {
            _ = try TrustedPeers(json: json)
            return nil
        } catch {
            return error
        }
    }

    // MARK: valid files

    @Test("a Deckhouse-style file loads: ED25519 PUBLIC KEY label, pretty-printed")
    func deckhouseFile() throws {
        let deckhouseKey = Fixtures.openSSLPublicKey1.replacing("PUBLIC KEY", with: "ED25519 PUBLIC KEY")
        let json = """
            {
              \(quoted(peer)): {
                "clusterUUID": \(quoted(peer)),
                "authnKeyPub": \(quoted(deckhouseKey)),
                "rootCA": \(quoted(Fixtures.rootCA))
              },
              \(entry(other, authnKeyPub: Fixtures.openSSLPublicKey2))
            }
            """
        let peers = try TrustedPeers(json: json)
        #expect(peers.count == 2)
        #expect(peers.clusterUUIDs == [peer, other].sorted())
        let first = try #require(peers[peer])
        #expect(first.clusterUUID == peer)
        #expect(first.keys == [Fixtures.key1.publicKey])
        #expect(first.rootCA == Fixtures.rootCA)
        #expect(peers[other]?.keys == [Fixtures.key2.publicKey])
        #expect(peers["nobody"] == nil)
    }

    @Test("bytes load the same as text")
    func bytes() throws {
        let json = file(entry(peer))
        #expect(try TrustedPeers(json: Array(json.utf8)) == TrustedPeers(json: json))
    }

    @Test("an empty object is an empty set")
    func empty() throws {
        let peers = try TrustedPeers(json: "{}")
        #expect(peers.isEmpty)
        #expect(peers == .empty)
        #expect(peers.encodedJSONString() == "{}")
    }

    @Test("two keys in one authnKeyPub (several PEM blocks)")
    func multiPEM() throws {
        let peers = try TrustedPeers(json: file(entry(peer, authnKeyPub: Fixtures.openSSLPublicKey1 + Fixtures.openSSLPublicKey2)))
        #expect(peers[peer]?.keys == [Fixtures.key1.publicKey, Fixtures.key2.publicKey])
    }

    @Test("two keys via the authnKeyPubs extension, duplicates collapsed")
    func authnKeyPubs() throws {
        let extra = #""authnKeyPubs":[\#(quoted(Fixtures.openSSLPublicKey2)),\#(quoted(Fixtures.openSSLPublicKey1))]"#
        let peers = try TrustedPeers(json: file(entry(peer, extra: extra)))
        #expect(peers[peer]?.keys == [Fixtures.key1.publicKey, Fixtures.key2.publicKey])
    }

    @Test("unknown members are ignored, for forward compatibility")
    func unknownMembers() throws {
        let peers = try TrustedPeers(json: file(entry(peer, extra: #""futureField":{"x":[1,2]}"#)))
        #expect(peers[peer] != nil)
    }

    // MARK: errors name the peer and the field

    @Test("each malformed field gives a message naming the peer and the field")
    func fieldErrors() {
        let cases: [(String, String)] = [
            (file(entry(peer, authnKeyPub: "no pem here")), "peer \"\(peer)\": authnKeyPub: no PEM block found"),
            (file(entry(peer, authnKeyPub: nil)), "peer \"\(peer)\": authnKeyPub: missing"),
            (file(entry(peer, rootCA: nil)), "peer \"\(peer)\": rootCA: missing"),
            (file(entry(peer, rootCA: "")), "peer \"\(peer)\": rootCA: no CERTIFICATE block found"),
            (file(entry(peer, rootCA: Fixtures.openSSLPublicKey1)), "peer \"\(peer)\": rootCA: no CERTIFICATE block found"),
            (file(entry(peer, authnKeyPub: Fixtures.rsaPublicKey)),
             "peer \"\(peer)\": authnKeyPub: key algorithm is RSA (1.2.840.113549.1.1.1); only Ed25519 (1.3.101.112) is supported"),
            (file(entry(peer, authnKeyPub: Fixtures.openSSLPublicKey1 + Fixtures.rootCA)),
             "peer \"\(peer)\": authnKeyPub: PEM block 2: PEM label is \"CERTIFICATE\", expected \"PUBLIC KEY\" or \"ED25519 PUBLIC KEY\""),
            (file(entry(peer, extra: #""authnKeyPubs":"x""#)), "peer \"\(peer)\": authnKeyPubs: expected an array, found a string"),
            (file(entry(peer, extra: #""authnKeyPubs":[\#(quoted(Fixtures.openSSLPublicKey2)),7]"#)),
             "peer \"\(peer)\": authnKeyPubs[1]: expected a string, found a number"),
            (file(entry(peer, extra: #""authnKeyPubs":["junk"]"#)), "peer \"\(peer)\": authnKeyPubs[0]: no PEM block found"),
            (file(#"\#(quoted(peer)):{"clusterUUID":1}"#), "peer \"\(peer)\": clusterUUID: expected a string, found a number"),
            (file(#"\#(quoted(peer)):[]"#), "peer \"\(peer)\": expected an object, found an array"),
            (file(entry("has space", clusterUUID: "has space")),
             "peer \"has space\": not a valid cluster ID (1-64 letters, digits, '.', '_' or '-')"),
            ("[]", "trusted peers: expected an object, found an array"),
        ]
        for (json, message) in cases {
            #expect(error(json)?.description == message)
        }
    }

    @Test("an entry whose clusterUUID differs from the key it is filed under is refused")
    func mismatch() throws {
        let failure = try #require(error(file(entry(peer, clusterUUID: other))))
        #expect(failure == PeersFileError(peer: peer, field: "clusterUUID", problem: .clusterUUIDMismatch(clusterUUID: other)))
        #expect(failure.description == "peer \"\(peer)\": clusterUUID: is \"\(other)\", but the entry is filed under another UUID")
    }

    @Test("invalid JSON is reported with a byte offset, and a repeated peer is invalid JSON")
    func invalidJSON() throws {
        let broken = try #require(error(#"{"a": }"#))
        #expect(broken.description == "trusted peers: not valid JSON: unexpected character at byte 6")
        let twice = try #require(error(file(entry(peer), entry(peer))))
        guard case .invalidJSON(let reason) = twice.problem else { Issue.record("\(twice)"); return }
        #expect(reason.contains("duplicate member name \"\(peer)\""))
    }

    @Test("one bad entry refuses the whole file")
    func allOrNothing() {
        #expect(error(file(entry(other, authnKeyPub: Fixtures.openSSLPublicKey2), entry(peer, authnKeyPub: "x"))) != nil)
    }

    // MARK: building in code

    @Test("peers built in code: duplicates and invalid IDs are refused")
    func inCode() throws {
        let one = Fixtures.peer(peer, keys: [Fixtures.key1.publicKey])
        #expect(throws: PeersFileError(peer: peer, field: nil, problem: .duplicatePeer)) { try TrustedPeers([one, one]) }
        #expect(throws: PeersFileError.self) { try TrustedPeer(clusterUUID: "", keys: [Fixtures.key1.publicKey], rootCA: Fixtures.rootCA) }
        #expect(throws: PeersFileError.self) { try TrustedPeer(clusterUUID: peer, keys: [], rootCA: Fixtures.rootCA) }
        let fromMetadata = try TrustedPeer(clusterUUID: peer, authnKeyPub: Fixtures.openSSLPublicKey1, rootCA: Fixtures.rootCA)
        #expect(fromMetadata == one)
    }

    @Test("cluster IDs: UUIDs and simple names pass, anything else does not")
    func clusterIDs() {
        for good in [peer, "cluster-a", "a", "x.y_z", String(repeating: "a", count: 64)] {
            #expect(TrustedPeer.isValidClusterID(good), "\(good)")
        }
        for bad in ["", "a b", "a/b", "ä", "a\n", String(repeating: "a", count: 65), "\"q\""] {
            #expect(!TrustedPeer.isValidClusterID(bad), "\(bad)")
        }
    }

    // MARK: encoding and fingerprint

    @Test("encoding: Deckhouse's member order, one PUBLIC KEY in authnKeyPub, further keys in authnKeyPubs")
    func encoding() throws {
        let single = Fixtures.peers([Fixtures.peer(peer, keys: [Fixtures.key1.publicKey])])
        #expect(single.encodedJSONString()
            == #"{\#(quoted(peer)):{"clusterUUID":\#(quoted(peer)),"authnKeyPub":\#(quoted(Fixtures.openSSLPublicKey1)),"rootCA":\#(quoted(Fixtures.rootCA))}}"#)

        let rotating = Fixtures.peers([
            Fixtures.peer(peer, keys: [Fixtures.key1.publicKey, Fixtures.key2.publicKey]),
            Fixtures.peer(other, keys: [Fixtures.key2.publicKey]),
        ])
        let text = rotating.encodedJSONString()
        #expect(text.contains(#""authnKeyPubs":[\#(quoted(Fixtures.openSSLPublicKey2))]"#))
        // UUIDs in byte order: "0b7e..." before "c4d5...".
        #expect(text.firstRange(of: peer)!.lowerBound < text.firstRange(of: other)!.lowerBound)
        // And it reads back to the same set.
        #expect(try TrustedPeers(json: text) == rotating)
        #expect(try TrustedPeers(json: text)[peer]?.keys == [Fixtures.key1.publicKey, Fixtures.key2.publicKey])
    }

    @Test("the fingerprint ignores spelling and changes with content")
    func fingerprint() throws {
        let a = try TrustedPeers(json: file(entry(peer), entry(other, authnKeyPub: Fixtures.openSSLPublicKey2)))
        let respelt = try TrustedPeers(json: "\n{ " + entry(other, authnKeyPub: Fixtures.openSSLPublicKey2.replacing("PUBLIC KEY", with: "ED25519 PUBLIC KEY"))
            + " ,\n " + entry(peer) + " }\n")
        #expect(a.fingerprint == respelt.fingerprint)
        #expect(a == respelt)
        #expect(a.fingerprint.description.count == 64)

        let withoutOther = try TrustedPeers(json: file(entry(peer)))
        let otherKey = try TrustedPeers(json: file(entry(peer, authnKeyPub: Fixtures.openSSLPublicKey2), entry(other, authnKeyPub: Fixtures.openSSLPublicKey2)))
        let extraKey = try TrustedPeers(json: file(entry(peer, authnKeyPub: Fixtures.openSSLPublicKey1 + Fixtures.openSSLPublicKey2), entry(other, authnKeyPub: Fixtures.openSSLPublicKey2)))
        let fingerprints = [a, withoutOther, otherKey, extraKey, .empty].map(\.fingerprint)
        #expect(Set(fingerprints).count == fingerprints.count)
    }
}
