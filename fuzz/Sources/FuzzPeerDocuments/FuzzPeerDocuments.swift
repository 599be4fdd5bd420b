import CFuzzerDriver
import IsthmusController
import IsthmusKubeTypes
import IsthmusTrust

/// SwiftPM links executables with `main` renamed to `<Module>_main`.
@_cdecl("FuzzPeerDocuments_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv) { data, size in
        guard let data else { return 0 }
        fuzzOne(Array(UnsafeBufferPointer(start: data, count: size)))
        return 0
    }
}

/// An error message goes into a log line and an object's status condition:
/// however long the input, it stays short.
private let maxMessageBytes = 4096

/// What a peer sends us or an operator writes for us. The first byte picks
/// the document, the rest is its body:
/// 0: the trusted peers file (Deckhouse's `remote-public-metadata.json`, with
///    the Isthmus `authnKeyPubs`); 1: a peer's public metadata; 2: a peer's
///    private metadata (Deckhouse-shaped, or with the Isthmus additions);
/// 3: an HTTP response to a metadata fetch (a status byte, a content type
///    byte, then the body).
func fuzzOne(_ input: [UInt8]) {
    guard let mode = input.first else { return }
    let body = Array(input.dropFirst())
    switch mode % 4 {
    case 0: checkPeersFile(body)
    case 1: checkPublic(body)
    case 2: checkPrivate(body)
    default: checkResponse(body)
    }
}

/// An accepted file holds only valid peers, each with at least one key and
/// none twice; its canonical encoding reads back as the same peers, and is a
/// fixed point (what the controller writes, the proxy reads unchanged).
private func checkPeersFile(_ bytes: [UInt8]) {
    let peers: TrustedPeers
    do { peers = try TrustedPeers(json: bytes) } catch {
        precondition(error.description.utf8.count <= maxMessageBytes, "a peers file error is unbounded")
        return
    }
    precondition(peers.count == peers.clusterUUIDs.count && peers.peers.count == peers.count)
    for uuid in peers.clusterUUIDs {
        guard let peer = peers[uuid] else { preconditionFailure("a listed peer cannot be looked up") }
        precondition(peer.clusterUUID == uuid && TrustedPeer.isValidClusterID(uuid), "a peer under another or an invalid UUID")
        precondition(!peer.keys.isEmpty, "a peer without a key")
        precondition(Set(peer.keys.map(\.pemRepresentation)).count == peer.keys.count, "a key listed twice")
    }
    let encoded = peers.encodedJSON()
    guard let again = try? TrustedPeers(json: encoded) else { preconditionFailure("the canonical peers file is refused") }
    precondition(again == peers && again.encodedJSON() == encoded, "the canonical peers file reads back otherwise")
    for uuid in peers.clusterUUIDs {
        precondition(again[uuid]?.keys == peers[uuid]?.keys && again[uuid]?.rootCA == peers[uuid]?.rootCA,
                     "a peer's keys or CA changed on the way through the file")
    }
}

/// An accepted public document names a valid peer whose keys the proxy would
/// trust; what the controller caches in the object's status reads back the same.
private func checkPublic(_ bytes: [UInt8]) {
    let document: PublicMetadata
    do { document = try PublicMetadata(json: bytes) } catch {
        precondition(error.description.utf8.count <= maxMessageBytes, "a public metadata error is unbounded")
        return
    }
    precondition(TrustedPeer.isValidClusterID(document.clusterUUID) && document.trustedPeer.clusterUUID == document.clusterUUID,
                 "an accepted public document names an invalid peer")
    precondition(!document.trustedPeer.keys.isEmpty, "an accepted public document has no key")
    precondition((try? PublicMetadata(value: document.json)) == document, "the cached public document reads back otherwise")
    precondition((try? PublicMetadata(json: document.json.bytes())) == document, "the public document, serialized, reads back otherwise")
    // The controller writes the peer into the peers file: the proxy must read it back with the same keys.
    guard let file = try? TrustedPeers([document.trustedPeer]),
          let read = try? TrustedPeers(json: file.encodedJSON()),
          read[document.clusterUUID]?.keys == document.trustedPeer.keys
    else { preconditionFailure("an accepted peer does not survive the peers file") }
}

/// An accepted private document gives an API host that is only a host and
/// port (nothing that could steer the URL built from it elsewhere), valid
/// gateways, subnets parsed exactly when given; the cached copy reads back the same.
private func checkPrivate(_ bytes: [UInt8]) {
    let document: PrivateMetadata
    do { document = try PrivateMetadata(json: bytes) } catch {
        precondition(error.description.utf8.count <= maxMessageBytes, "a private metadata error is unbounded")
        return
    }
    let host = document.apiHost.utf8
    precondition(!host.isEmpty && host.allSatisfy { $0 > 0x20 && $0 < 0x7F }
                 && !host.contains(where: { "/@?#\\".utf8.contains($0) }),
                 "an accepted apiHost is more than host[:port]")
    for gateway in document.ingressGateways {
        precondition((1...65535).contains(gateway.port), "a gateway port out of range")
        precondition(!gateway.address.isEmpty && gateway.address.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F }, "a gateway address with spaces or controls")
    }
    precondition((document.podSubnetCIDR == nil) == (document.podSubnets == nil)
                 && (document.serviceSubnetCIDR == nil) == (document.serviceSubnets == nil),
                 "a subnet given but not parsed, or parsed but not given")
    precondition((try? PrivateMetadata(value: document.json)) == document, "the cached private document reads back otherwise")
    precondition((try? PrivateMetadata(json: document.json.bytes())) == document, "the private document, serialized, reads back otherwise")
}

private let contentTypes: [String?] = [
    nil, "application/json", "application/json; charset=utf-8", "text/plain", "text/html", "application/problem+json",
    "", "APPLICATION/JSON", "application/octet-stream",
]
private let statuses = [200, 200, 200, 401, 403, 404, 500, 302]

/// A document is taken only from a 200 with a JSON (or unlabelled) body; every
/// other answer is a failure whose message stays short.
private func checkResponse(_ bytes: [UInt8]) {
    guard bytes.count >= 2 else { return }
    let status = statuses[Int(bytes[0]) % statuses.count]
    let contentType = contentTypes[Int(bytes[1]) % contentTypes.count]
    let body = Array(bytes.dropFirst(2))
    let media = contentType?.split(separator: ";").first.map { $0.trimmingCharacters(in: " \t").lowercased() } ?? ""
    let jsonLabelled = contentType == nil || media.isEmpty || media == "application/json" || media == "text/plain"
        || (media.hasPrefix("application/") && media.hasSuffix("+json"))
    func check<Document>(_ result: Result<Document, FetchFailure>) {
        switch result {
        case .success:
            precondition(status == 200 && jsonLabelled, "a document taken from a \(status) or a non-JSON answer")
        case .failure(let failure):
            precondition(failure.description.utf8.count <= maxMessageBytes, "a fetch failure message is unbounded")
            if status == 401 || status == 403, case .refused = failure {} else if status == 401 || status == 403 {
                preconditionFailure("a 401 or 403 is not reported as our token refused")
            }
        }
    }
    check(PeerMetadataResponse.interpretPublic(status: status, contentType: contentType, body: body))
    check(PeerMetadataResponse.interpretPrivate(status: status, contentType: contentType, body: body))
}

extension Substring {
    fileprivate func trimmingCharacters(in set: String) -> Substring {
        var s = self
        while let first = s.first, set.contains(first) { s = s.dropFirst() }
        while let last = s.last, set.contains(last) { s = s.dropLast() }
        return s
    }
}
