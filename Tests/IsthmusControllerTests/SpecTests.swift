import IsthmusController
import IsthmusKubeTypes
import Testing

@Suite("IstioMulticluster spec")
struct SpecTests {
    @Test("the seed's spec.metadataEndpoint form is accepted")
    func legacyForm() throws {
        let object = try IstioMulticluster(json: Fixtures.parse("""
            {"apiVersion":"deckhouse.io/v1alpha1","kind":"IstioMulticluster","metadata":{"name":"cluster-a","generation":3},
             "spec":{"metadataEndpoint":"https://istio.k8s-a.example.com/metadata/"}}
            """))
        let spec = try object.spec.get()
        #expect(object.name == "cluster-a" && object.generation == 3)
        #expect(spec.endpoint.publicURL == "https://istio.k8s-a.example.com/metadata/public/public.json")
        #expect(spec.endpoint.privateURL == "https://istio.k8s-a.example.com/metadata/private/multicluster.json")
        #expect(spec.ca == nil && !spec.insecureSkipVerify && spec.enableIngressGateway)
    }

    @Test("the spec.metadata.{endpoint, ca, insecureSkipVerify} form is accepted")
    func nestedForm() throws {
        let spec = try IstioMulticlusterSpec(json: .object([
            ("metadata", .object([
                ("endpoint", .string("https://istio.k8s-b.example.com:8443/metadata")),
                ("ca", .string(Fixtures.rootCA_B)), ("insecureSkipVerify", .bool(true)),
            ])),
            ("enableIngressGateway", .bool(false)),
        ]))
        #expect(spec.endpoint.publicURL == "https://istio.k8s-b.example.com:8443/metadata/public/public.json")
        #expect(spec.ca == Fixtures.rootCA_B && spec.insecureSkipVerify && !spec.enableIngressGateway)
    }

    @Test("both forms naming the same endpoint are fine; different endpoints are refused")
    func bothForms() throws {
        let same = try IstioMulticlusterSpec(json: Fixtures.parse("""
            {"metadataEndpoint":"https://a.example.com/metadata/","metadata":{"endpoint":"https://a.example.com/metadata"}}
            """))
        #expect(same.endpoint.base == "https://a.example.com/metadata")
        #expect(throws: SpecError.self) {
            try IstioMulticlusterSpec(json: Fixtures.parse("""
                {"metadataEndpoint":"https://a.example.com/metadata/","metadata":{"endpoint":"https://b.example.com/metadata"}}
                """))
        }
    }

    @Test("file:// endpoints read a directory")
    func fileEndpoint() throws {
        let spec = try IstioMulticlusterSpec(json: Fixtures.parse(#"{"metadataEndpoint":"file:///var/lib/peers/a/"}"#))
        #expect(spec.endpoint.scheme == .file)
        #expect(spec.endpoint.filePath == "/var/lib/peers/a")
        #expect(spec.endpoint.publicURL == "file:///var/lib/peers/a/public/public.json")
    }

    struct BadRow: Sendable, CustomTestStringConvertible {
        var spec: String
        var field: String
        var says: String
        var testDescription: String { spec }
    }

    static let badRows: [BadRow] = [
        .init(spec: #"{}"#, field: "spec.metadata.endpoint", says: "required"),
        .init(spec: #"{"metadataEndpoint":""}"#, field: "spec.metadataEndpoint", says: "empty"),
        .init(spec: #"{"metadataEndpoint":42}"#, field: "spec.metadataEndpoint", says: "must be a string, found a number"),
        .init(spec: #"{"metadataEndpoint":"ftp://a.example.com/"}"#, field: "spec.metadataEndpoint", says: "https://"),
        .init(spec: #"{"metadataEndpoint":"http://a.example.com/metadata"}"#, field: "spec.metadataEndpoint", says: "loopback"),
        .init(spec: #"{"metadataEndpoint":"https://user:pw@a.example.com/"}"#, field: "spec.metadataEndpoint", says: "credentials"),
        .init(spec: #"{"metadataEndpoint":"https:///metadata"}"#, field: "spec.metadataEndpoint", says: "no host"),
        .init(spec: #"{"metadataEndpoint":"https://a.example.com/m?x=1"}"#, field: "spec.metadataEndpoint", says: "query"),
        .init(spec: #"{"metadataEndpoint":"file://relative/dir"}"#, field: "spec.metadataEndpoint", says: "absolute path"),
        .init(spec: #"{"metadata":"https://a.example.com/"}"#, field: "spec.metadata", says: "must be an object"),
        .init(spec: #"{"metadata":{"endpoint":"https://a.example.com/","ca":"not pem"}}"#, field: "spec.metadata.ca", says: "CERTIFICATE"),
        .init(spec: #"{"metadata":{"endpoint":"https://a.example.com/","insecureSkipVerify":"yes"}}"#,
              field: "spec.metadata.insecureSkipVerify", says: "true or false"),
        .init(spec: #"{"metadataEndpoint":"https://a.example.com/","enableIngressGateway":1}"#,
              field: "spec.enableIngressGateway", says: "true or false"),
    ]

    @Test("an invalid spec names the field", arguments: badRows)
    func invalid(_ row: BadRow) {
        do {
            _ = try IstioMulticlusterSpec(json: Fixtures.parse(row.spec))
            Issue.record("accepted \(row.spec)")
        } catch {
            #expect(error.field == row.field)
            #expect(error.description.hasPrefix(row.field + ": "))
            #expect(error.description.contains(row.says), "\(error.description)")
        }
    }

    /// Found by fuzzing (FuzzIstioMulticluster): the refusal quoted the whole
    /// endpoint, so one long spec value made a status message of any size.
    @Test("a refused endpoint is quoted cut short and escaped in the message")
    func boundedMessage() throws {
        let spec = JSON.object([("metadataEndpoint", .string("ftp://" + String(repeating: "a", count: 6000)))])
        #expect(throws: SpecError.self) { try IstioMulticlusterSpec(json: spec) }
        do { _ = try IstioMulticlusterSpec(json: spec) } catch {
            #expect(error.description.utf8.count < 400, "\(error.description.utf8.count) bytes")
            #expect(error.description.contains(#"found "ftp://aaa"#) && error.description.hasSuffix("…\""))
        }
    }

    @Test("http:// is accepted for loopback, for local development")
    func loopbackHTTP() throws {
        let endpoint = try MetadataEndpoint(parsing: "http://127.0.0.1:8081/metadata", field: "f")
        #expect(endpoint.scheme == .http)
        #expect(try MetadataEndpoint(parsing: "http://[::1]:8081/", field: "f").base == "http://[::1]:8081")
    }

    @Test("an object with a bad spec still parses, carrying the error for its status")
    func badSpecObject() throws {
        let object = try IstioMulticluster(json: Fixtures.multiclusterJSON(name: "x", spec: .object([])))
        guard case .failure(let error) = object.spec else {
            Issue.record("expected a spec error")
            return
        }
        #expect(error.field == "spec.metadata.endpoint")
    }
}
