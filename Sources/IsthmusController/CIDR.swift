/// An IPv4 or IPv6 address, held as 128 bits so both families share one
/// arithmetic. IPv4 addresses use the low 32 bits and never compare equal to
/// an IPv6 address (not even `::ffff:a.b.c.d`): the seed's requirement is
/// about subnets a pod can be addressed by, and a cluster's IPv4 and IPv6
/// ranges are separate address spaces.
public struct IPAddress: Sendable, Hashable, CustomStringConvertible {
    public enum Family: Sendable, Hashable {
        case v4, v6
        /// Address width in bits.
        public var bitWidth: Int { self == .v4 ? 32 : 128 }
    }

    public let family: Family
    /// The address bits, right-aligned (IPv4 in the low 32 bits).
    public let value: UInt128

    /// From the address bits; for IPv4, bits above the low 32 are dropped.
    public init(family: Family, value: UInt128) {
        self.family = family
        self.value = family == .v4 ? value & 0xFFFF_FFFF : value
    }

    /// Parses dotted-quad IPv4 (no leading zeros, as Go 1.17+'s `net.ParseIP`,
    /// since `010` is octal to some parsers and decimal to others) or RFC 4291
    /// IPv6 text (`::` once, an optional trailing dotted quad, no zone).
    public init?(_ text: some StringProtocol) {
        let bytes = Array(text.utf8)
        if bytes.contains(UInt8(ascii: ":")) {
            guard let value = Self.parseIPv6(bytes[...]) else { return nil }
            self.init(family: .v6, value: value)
        } else {
            guard let value = Self.parseIPv4(bytes[...]) else { return nil }
            self.init(family: .v4, value: UInt128(value))
        }
    }

    static func parseIPv4(_ bytes: ArraySlice<UInt8>) -> UInt32? {
        let parts = bytes.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var value: UInt32 = 0
        for part in parts {
            guard (1...3).contains(part.count), part.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
            if part.count > 1, part.first == 0x30 { return nil }
            let octet = part.reduce(0) { $0 * 10 + UInt32($1 - 0x30) }
            guard octet <= 255 else { return nil }
            value = value << 8 | octet
        }
        return value
    }

    static func parseIPv6(_ bytes: ArraySlice<UInt8>) -> UInt128? {
        // Split around the one allowed "::".
        var head = bytes
        var tail: ArraySlice<UInt8>? = nil
        if let range = firstDoubleColon(bytes) {
            head = bytes[bytes.startIndex..<range]
            tail = bytes[(range + 2)...]
            if let tail, firstDoubleColon(tail) != nil { return nil }
        }
        func groups(_ part: ArraySlice<UInt8>, allowIPv4: Bool) -> [UInt16]? {
            if part.isEmpty { return [] }
            var out: [UInt16] = []
            let fields = part.split(separator: UInt8(ascii: ":"), omittingEmptySubsequences: false)
            for (index, field) in fields.enumerated() {
                if allowIPv4, index == fields.count - 1, field.contains(UInt8(ascii: ".")) {
                    guard let v4 = parseIPv4(field) else { return nil }
                    out.append(UInt16(v4 >> 16))
                    out.append(UInt16(v4 & 0xFFFF))
                    continue
                }
                guard (1...4).contains(field.count) else { return nil }
                var group: UInt16 = 0
                for b in field {
                    guard let digit = hexValue(b) else { return nil }
                    group = group << 4 | UInt16(digit)
                }
                out.append(group)
            }
            return out
        }
        guard let headGroups = groups(head, allowIPv4: tail == nil) else { return nil }
        var all: [UInt16]
        if let tail {
            guard let tailGroups = groups(tail, allowIPv4: true) else { return nil }
            let missing = 8 - headGroups.count - tailGroups.count
            // "::" stands for at least one zero group (RFC 4291 §2.2).
            guard missing >= 1 else { return nil }
            all = headGroups + Array(repeating: 0, count: missing) + tailGroups
        } else {
            all = headGroups
        }
        guard all.count == 8 else { return nil }
        return all.reduce(UInt128(0)) { $0 << 16 | UInt128($1) }
    }

    private static func firstDoubleColon(_ bytes: ArraySlice<UInt8>) -> Int? {
        var index = bytes.startIndex
        while index + 1 < bytes.endIndex {
            if bytes[index] == UInt8(ascii: ":"), bytes[index + 1] == UInt8(ascii: ":") { return index }
            index += 1
        }
        return nil
    }

    private static func hexValue(_ b: UInt8) -> UInt8? {
        switch b {
        case 0x30...0x39: return b - 0x30
        case 0x41...0x46: return b - 0x41 + 10
        case 0x61...0x66: return b - 0x61 + 10
        default: return nil
        }
    }

    /// Dotted quad, or RFC 5952 canonical IPv6 (lowercase, longest run of two
    /// or more zero groups as `::`, the first such run on a tie).
    public var description: String {
        switch family {
        case .v4:
            let v = UInt32(truncatingIfNeeded: value)
            return "\(v >> 24).\(v >> 16 & 0xFF).\(v >> 8 & 0xFF).\(v & 0xFF)"
        case .v6:
            let groups = (0..<8).map { UInt16(truncatingIfNeeded: value >> UInt128(112 - 16 * $0)) }
            var bestStart = -1, bestLength = 0, runStart = -1
            for i in 0...8 {
                if i < 8, groups[i] == 0 {
                    if runStart < 0 { runStart = i }
                } else if runStart >= 0 {
                    if i - runStart > bestLength { bestStart = runStart; bestLength = i - runStart }
                    runStart = -1
                }
            }
            func hex(_ range: Range<Int>) -> String {
                groups[range].map { String($0, radix: 16) }.joined(separator: ":")
            }
            guard bestLength >= 2 else { return hex(0..<8) }
            return hex(0..<bestStart) + "::" + hex((bestStart + bestLength)..<8)
        }
    }
}

/// An address prefix such as `10.111.0.0/16` or `fd00:10::/108`.
///
/// Parsed like Go's `net.ParseCIDR`, which is what produced the values a
/// Kubernetes cluster was configured with: host bits may be set and are
/// masked off (`10.1.2.3/16` is `10.1.0.0/16`).
public struct CIDR: Sendable, Hashable, CustomStringConvertible {
    /// The first address of the prefix (host bits zero).
    public let network: IPAddress
    /// The number of leading network bits.
    public let prefixLength: Int

    public var family: IPAddress.Family { network.family }

    /// Nil when the length exceeds the family's width; host bits are masked off.
    public init?(network: IPAddress, prefixLength: Int) {
        guard (0...network.family.bitWidth).contains(prefixLength) else { return nil }
        self.network = IPAddress(family: network.family, value: network.value & Self.mask(network.family, prefixLength))
        self.prefixLength = prefixLength
    }

    /// From `address/length`; nil for anything else (no spaces, no leading zeros in the length).
    public init?(_ text: some StringProtocol) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2, let address = IPAddress(parts[0]) else { return nil }
        let digits = parts[1].utf8
        guard (1...3).contains(digits.count), digits.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
            digits.count == 1 || digits.first != 0x30, let length = Int(parts[1])
        else { return nil }
        self.init(network: address, prefixLength: length)
    }

    /// The netmask bits within the family's width.
    static func mask(_ family: IPAddress.Family, _ length: Int) -> UInt128 {
        let width = family.bitWidth
        let all: UInt128 = family == .v4 ? 0xFFFF_FFFF : .max
        if length == 0 { return 0 }
        return (all >> UInt128(width - length)) << UInt128(width - length)
    }

    /// The last address of the prefix.
    public var lastAddress: IPAddress {
        let hostBits: UInt128 = Self.mask(family, prefixLength) ^ (family == .v4 ? 0xFFFF_FFFF : .max)
        return IPAddress(family: family, value: network.value | hostBits)
    }

    /// Whether `address` (of the same family) lies in the prefix.
    public func contains(_ address: IPAddress) -> Bool {
        address.family == family && address.value & Self.mask(family, prefixLength) == network.value
    }

    /// Two prefixes overlap exactly when one contains the other, because
    /// prefixes are aligned blocks: compare both at the shorter length.
    public func overlaps(_ other: CIDR) -> Bool {
        guard family == other.family else { return false }
        let shorter = min(prefixLength, other.prefixLength)
        let mask = Self.mask(family, shorter)
        return network.value & mask == other.network.value & mask
    }

    public var description: String { "\(network)/\(prefixLength)" }
}

/// A comma-separated list of prefixes, as Kubernetes writes dual-stack
/// subnets (`10.111.0.0/16,fd00:10::/56`).
public struct CIDRList: Sendable, Hashable, CustomStringConvertible {
    public let prefixes: [CIDR]

    /// From already parsed prefixes, in order.
    public init(_ prefixes: [CIDR]) { self.prefixes = prefixes }

    /// Parses the list; spaces around items are ignored, empty items are not.
    /// Returns the offending item on failure so the message can quote it.
    public static func parse(_ text: String) -> Result<CIDRList, CIDRListError> {
        var prefixes: [CIDR] = []
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            let trimmed = item.trimmingASCIISpaces()
            guard let cidr = CIDR(trimmed) else { return .failure(CIDRListError(item: String(trimmed))) }
            prefixes.append(cidr)
        }
        return .success(CIDRList(prefixes))
    }

    /// Every pair (ours, theirs) that overlaps, in list order.
    public func overlaps(with other: CIDRList) -> [(CIDR, CIDR)] {
        var out: [(CIDR, CIDR)] = []
        for a in prefixes { for b in other.prefixes where a.overlaps(b) { out.append((a, b)) } }
        return out
    }

    public var description: String { prefixes.map(\.description).joined(separator: ",") }
}

/// A list item that is not an address prefix.
public struct CIDRListError: Error, Sendable, Hashable, CustomStringConvertible {
    public let item: String
    public init(item: String) { self.item = item }
    public var description: String { "\(MessageText.quoted(item)) is not an IPv4 or IPv6 prefix like 10.111.0.0/16 or fd00::/108" }
}

extension Substring {
    func trimmingASCIISpaces() -> Substring {
        var s = self
        while s.first == " " || s.first == "\t" { s = s.dropFirst() }
        while s.last == " " || s.last == "\t" { s = s.dropLast() }
        return s
    }
}
