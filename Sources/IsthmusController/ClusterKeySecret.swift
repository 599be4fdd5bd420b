import IsthmusTrust

/// The Secret holding this cluster's Ed25519 key pair (`private.pem`,
/// PKCS#8; `public.pem`, PKIX), as the chart and `isthmus keys` name them.
///
/// The controller creates it when it is missing and otherwise only reads
/// it: a Secret that exists but does not hold a usable key is an error to
/// report, never a reason to generate over it, because every peer trusts
/// the key it holds.
public enum ClusterKeySecret {
    public static let defaultName = "isthmus-cluster-key"
    public static let privateKeyField = "private.pem"
    public static let publicKeyField = "public.pem"

    /// What to do with the key Secret.
    public enum Decision: Sendable {
        /// The Secret holds a valid key pair: sign with it.
        case use(SigningKeyPair)
        /// No Secret: create this one, then sign with its key.
        case create(SecretObject, SigningKeyPair)
    }

    /// Why an existing key Secret cannot be used. Names the Secret and the
    /// field; never contains key material (``KeyError`` descriptions hold
    /// only labels and lengths).
    public struct Problem: Error, Sendable, Hashable, CustomStringConvertible {
        public let secret: String
        public let field: String
        public let problem: String
        public var description: String { "Secret \(secret): data.\(field): \(problem)" }
    }

    /// - Parameter generate: the key source for a new Secret (injectable
    ///   so tests can fix it).
    public static func decide(existing: SecretObject?, namespace: String, name: String = defaultName,
                              generate: () -> SigningKeyPair = { SigningKeyPair() }) throws(Problem) -> Decision {
        guard let existing else {
            let key = generate()
            let secret = SecretObject(
                namespace: namespace, name: name,
                labels: [ControllerLabels.managedBy: ControllerLabels.managedByValue],
                data: [privateKeyField: Array(key.pemRepresentation.utf8), publicKeyField: Array(key.publicKey.pemRepresentation.utf8)])
            return .create(secret, key)
        }
        let secretName = "\(existing.namespace)/\(existing.name)"
        guard let privateBytes = existing.data[privateKeyField] else {
            throw Problem(secret: secretName, field: privateKeyField, problem: "missing; the Secret exists, so it is not replaced")
        }
        let key: SigningKeyPair
        do { key = try SigningKeyPair(pem: String(decoding: privateBytes, as: UTF8.self)) } catch {
            throw Problem(secret: secretName, field: privateKeyField, problem: error.description)
        }
        if let publicBytes = existing.data[publicKeyField] {
            let published: PeerPublicKey
            do { published = try PeerPublicKey(pem: String(decoding: publicBytes, as: UTF8.self)) } catch {
                throw Problem(secret: secretName, field: publicKeyField, problem: error.description)
            }
            guard published == key.publicKey else {
                throw Problem(secret: secretName, field: publicKeyField,
                              problem: "is \(published.fingerprint), not the public half of private.pem (\(key.publicKey.fingerprint))")
            }
        }
        return .use(key)
    }
}
