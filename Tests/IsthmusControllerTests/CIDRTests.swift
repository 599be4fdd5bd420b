import IsthmusController
import PropertyBased
import Testing

@Suite("CIDR parsing and overlap")
struct CIDRTests {
    struct ParseRow: Sendable, CustomTestStringConvertible {
        var text: String
        var want: String?
        var testDescription: String { text }
    }

    static let parseRows: [ParseRow] = [
        // IPv4
        .init(text: "10.111.0.0/16", want: "10.111.0.0/16"),
        .init(text: "10.111.7.9/16", want: "10.111.0.0/16"),  // host bits masked, as Go's ParseCIDR
        .init(text: "0.0.0.0/0", want: "0.0.0.0/0"),
        .init(text: "192.168.1.1/32", want: "192.168.1.1/32"),
        .init(text: "10.0.0.0/33", want: nil),
        .init(text: "10.0.0/8", want: nil),
        .init(text: "10.0.0.256/8", want: nil),
        .init(text: "010.0.0.0/8", want: nil),  // leading zero: octal to some parsers
        .init(text: "10.0.0.0/08", want: nil),
        .init(text: "10.0.0.0", want: nil),
        .init(text: "10.0.0.0/", want: nil),
        .init(text: "10.0.0.0/-1", want: nil),
        .init(text: " 10.0.0.0/8", want: nil),
        // IPv6
        .init(text: "fd00:10::/108", want: "fd00:10::/108"),
        .init(text: "FD00:0010:0000:0000:0000:0000:0000:0000/56", want: "fd00:10::/56"),
        .init(text: "::/0", want: "::/0"),
        .init(text: "::1/128", want: "::1/128"),
        .init(text: "2001:db8::1:0:0:1/64", want: "2001:db8::/64"),
        .init(text: "::ffff:10.0.0.1/128", want: "::ffff:a00:1/128"),
        .init(text: "1:0:0:2:0:0:0:3/128", want: "1:0:0:2::3/128"),  // longest zero run compressed
        .init(text: "1:2:3:4:5:6:7::/128", want: "1:2:3:4:5:6:7:0/128"),  // one zero group is not compressed
        .init(text: "1::2::3/64", want: nil),
        .init(text: "1:2:3:4:5:6:7:8:9/64", want: nil),
        .init(text: "1:2:3:4:5:6:7:8::/64", want: nil),
        .init(text: "12345::/64", want: nil),
        .init(text: "fe80::1%eth0/64", want: nil),
        .init(text: "fd00::/129", want: nil),
        .init(text: ":::/64", want: nil),
    ]

    @Test("prefixes parse as Go's net.ParseCIDR does", arguments: parseRows)
    func parses(_ row: ParseRow) {
        #expect(CIDR(row.text)?.description == row.want)
    }

    struct OverlapRow: Sendable, CustomTestStringConvertible {
        var a: String, b: String, overlaps: Bool
        var testDescription: String { "\(a) vs \(b)" }
    }

    static let overlapRows: [OverlapRow] = [
        .init(a: "10.111.0.0/16", b: "10.111.0.0/16", overlaps: true),
        .init(a: "10.111.0.0/16", b: "10.111.200.0/24", overlaps: true),
        .init(a: "10.0.0.0/8", b: "10.255.255.255/32", overlaps: true),
        .init(a: "10.111.0.0/16", b: "10.112.0.0/16", overlaps: false),
        .init(a: "10.111.0.0/17", b: "10.111.128.0/17", overlaps: false),
        .init(a: "0.0.0.0/0", b: "192.168.0.0/16", overlaps: true),
        .init(a: "fd00:10::/56", b: "fd00:10:0:ff::/64", overlaps: true),
        .init(a: "fd00:10::/56", b: "fd00:10:0:100::/64", overlaps: false),
        .init(a: "::/0", b: "2001:db8::/32", overlaps: true),
        // Families never overlap, not even through an IPv4-mapped address.
        .init(a: "0.0.0.0/0", b: "::/0", overlaps: false),
        .init(a: "10.0.0.0/8", b: "::ffff:10.0.0.0/104", overlaps: false),
    ]

    @Test("overlap matrix", arguments: overlapRows)
    func overlap(_ row: OverlapRow) throws {
        let a = try #require(CIDR(row.a)), b = try #require(CIDR(row.b))
        #expect(a.overlaps(b) == row.overlaps)
        #expect(b.overlaps(a) == row.overlaps)
    }

    @Test("a dual-stack list parses, and overlaps are reported pairwise")
    func dualStackList() throws {
        let ours = try CIDRList.parse("10.111.0.0/16, fd00:10::/56").get()
        let theirs = try CIDRList.parse("10.112.0.0/16,fd00:10:0:20::/64").get()
        let pairs = ours.overlaps(with: theirs)
        #expect(pairs.map { "\($0.0) \($0.1)" } == ["fd00:10::/56 fd00:10:0:20::/64"])
        #expect(ours.description == "10.111.0.0/16,fd00:10::/56")
        #expect(CIDRList.parse("10.0.0.0/8,,fd00::/8") == .failure(CIDRListError(item: "")))
        #expect(CIDRList.parse("10.0.0.0/8,bogus") == .failure(CIDRListError(item: "bogus")))
    }

    // MARK: properties

    static let v4Prefix = zip(Gen.uint32(), Gen.int(in: 0...32))
        .map { CIDR(network: IPAddress(family: .v4, value: UInt128($0)), prefixLength: $1)! }
    static let v6Prefix = zip(Gen.uint64(), Gen.uint64(), Gen.int(in: 0...128))
        .map { CIDR(network: IPAddress(family: .v6, value: UInt128($0) << 64 | UInt128($1)), prefixLength: $2)! }
    /// Prefixes clustered in one small region, so overlaps are common.
    static let nearbyV6Prefix = zip(Gen.uint8(), Gen.int(in: 112...128))
        .map { CIDR(network: IPAddress(family: .v6, value: 0xfd00 << 112 | UInt128($0)), prefixLength: $1)! }
    static let nearbyV4Prefix = zip(Gen.uint8(), Gen.int(in: 24...32))
        .map { CIDR(network: IPAddress(family: .v4, value: 0x0A00_0000 | UInt128($0)), prefixLength: $1)! }

    /// Oracle: intervals [first, last] intersect.
    static func intervalsIntersect(_ a: CIDR, _ b: CIDR) -> Bool {
        a.family == b.family && max(a.network.value, b.network.value) <= min(a.lastAddress.value, b.lastAddress.value)
    }

    @Test("formatting and parsing a prefix round-trips")
    func roundTrips() async {
        await propertyCheck(count: 500, input: Self.v4Prefix) { cidr in
            #expect(CIDR(cidr.description) == cidr)
        }
        await propertyCheck(count: 500, input: Self.v6Prefix) { cidr in
            #expect(CIDR(cidr.description) == cidr)
        }
    }

    @Test("uncompressed, zero-padded IPv6 text parses to the same address")
    func uncompressedIPv6() async {
        await propertyCheck(count: 500, input: Self.v6Prefix) { cidr in
            let full = (0..<8).map { i -> String in
                let group = String(UInt16(truncatingIfNeeded: cidr.network.value >> UInt128(112 - 16 * i)), radix: 16, uppercase: true)
                return String(repeating: "0", count: 4 - group.count) + group
            }.joined(separator: ":")
            #expect(CIDR("\(full)/\(cidr.prefixLength)") == cidr)
        }
    }

    @Test("overlap agrees with interval intersection, and is symmetric")
    func overlapMatchesIntervals() async {
        await propertyCheck(count: 1000, input: zip(Self.nearbyV4Prefix, Self.nearbyV4Prefix)) { a, b in
            #expect(a.overlaps(b) == Self.intervalsIntersect(a, b))
            #expect(a.overlaps(b) == b.overlaps(a))
        }
        await propertyCheck(count: 1000, input: zip(Self.nearbyV6Prefix, Self.nearbyV6Prefix)) { a, b in
            #expect(a.overlaps(b) == Self.intervalsIntersect(a, b))
        }
        await propertyCheck(count: 500, input: zip(Self.v4Prefix, Self.v6Prefix)) { a, b in
            #expect(!a.overlaps(b) && !b.overlaps(a))
        }
    }

    @Test("a prefix contains its first and last address and nothing just outside")
    func containsBounds() async {
        await propertyCheck(count: 500, input: Self.v4Prefix) { cidr in
            #expect(cidr.contains(cidr.network) && cidr.contains(cidr.lastAddress))
            if cidr.lastAddress.value < 0xFFFF_FFFF {
                #expect(!cidr.contains(IPAddress(family: .v4, value: cidr.lastAddress.value + 1)))
            }
            if cidr.network.value > 0 {
                #expect(!cidr.contains(IPAddress(family: .v4, value: cidr.network.value - 1)))
            }
        }
    }
}
