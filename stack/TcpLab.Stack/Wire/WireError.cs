namespace TcpLab.Stack.Wire;

/// <summary>
/// Why a parser refused bytes. Parsers return one of these instead of throwing; the network
/// layer counts it per <see cref="WireProtocol"/> (see Diagnostics.Counters.Reject).
/// </summary>
public enum WireError : byte
{
    None = 0,
    /// <summary>Shorter than the fixed header, or than a length field says.</summary>
    Truncated,
    /// <summary>IPv4 version field is not 4.</summary>
    BadVersion,
    /// <summary>IPv4 IHL below 5 or past the datagram.</summary>
    BadHeaderLength,
    /// <summary>
    /// IPv4 total length below the header length. (Above the bytes received is <see cref="Truncated"/>,
    /// as Linux counts it apart: InTruncatedPkts, not InHdrErrors.)
    /// </summary>
    BadTotalLength,
    /// <summary>Header (IPv4) or message (ICMP, TCP with the pseudo-header) checksum is wrong.</summary>
    BadChecksum,
    /// <summary>TCP data offset below 5 words, or past the end of the segment.</summary>
    BadDataOffset,
    /// <summary>TCP option with length 0 or 1, or running past the option space.</summary>
    BadOptionLength,
    /// <summary>ARP hardware/protocol type or address length not Ethernet/IPv4.</summary>
    Unsupported,
    /// <summary>A field holds a value the protocol forbids (e.g. ARP opcode 0, source MAC multicast).</summary>
    BadField,
}

/// <summary>The protocol whose parser rejected a frame, for counting.</summary>
public enum WireProtocol : byte
{
    Ethernet,
    Arp,
    Ipv4,
    Icmp,
    Tcp,
}
