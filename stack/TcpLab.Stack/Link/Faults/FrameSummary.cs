using TcpLab.Stack.Wire;

namespace TcpLab.Stack.Link.Faults;

/// <summary>
/// What fault rules can match on in one frame, read once through the Wire views before any rule
/// looks at it. Checksums are not verified: the stage is part of the wire and must see frames
/// that the stack would reject (a frame corrupted earlier, one whose checksum the link finishes).
/// </summary>
internal struct FrameSummary
{
    /// <summary>Tcp, Icmp or Arp; <see cref="FaultProtocol.Any"/> for anything else.</summary>
    public FaultProtocol Protocol;

    /// <summary>Source and destination are known: IPv4, or ARP's sender and target addresses.</summary>
    public bool HasAddresses;
    public Ipv4Address Source;
    public Ipv4Address Destination;

    /// <summary>The frame holds a TCP header: TCP and not a fragment past the first.</summary>
    public bool HasTcpHeader;
    public ushort SourcePort;
    public ushort DestinationPort;
    public TcpFlags TcpFlags;
    public uint Sequence;
    /// <summary>TCP data bytes in this frame.</summary>
    public int PayloadLength;

    /// <summary>Bytes after the Ethernet header (link padding included).</summary>
    public int EthernetPayloadLength;

    /// <summary>
    /// Where a random corruption flips a byte, as offsets after the Ethernet header: the IP payload
    /// of an IPv4 datagram (so IP accepts it and the transport checksum catches it), otherwise
    /// the whole Ethernet payload.
    /// </summary>
    public int CorruptibleStart;
    public int CorruptibleEnd;

    public static FrameSummary Read(ReadOnlySpan<byte> frame)
    {
        FrameSummary summary = default;
        if (EthernetFrame.TryParse(frame, out EthernetFrame ethernet) != WireError.None) return summary;
        ReadOnlySpan<byte> payload = ethernet.Payload;
        summary.EthernetPayloadLength = payload.Length;
        summary.CorruptibleEnd = payload.Length;

        if (ethernet.EtherType == EtherType.Arp)
        {
            summary.Protocol = FaultProtocol.Arp;
            if (ArpPacket.TryParse(payload, out ArpPacket arp) == WireError.None)
            {
                summary.HasAddresses = true;
                summary.Source = arp.SenderIp;
                summary.Destination = arp.TargetIp;
            }
            return summary;
        }
        if (ethernet.EtherType != EtherType.Ipv4
            || Ipv4Packet.TryParse(payload, out Ipv4Packet ip, verifyChecksum: false) != WireError.None)
            return summary;

        summary.HasAddresses = true;
        summary.Source = ip.Source;
        summary.Destination = ip.Destination;
        summary.CorruptibleStart = ip.HeaderLength;
        summary.CorruptibleEnd = ip.TotalLength;
        summary.Protocol = ip.Protocol switch
        {
            IpProtocol.Tcp => FaultProtocol.Tcp,
            IpProtocol.Icmp => FaultProtocol.Icmp,
            _ => FaultProtocol.Any,
        };
        if (summary.Protocol == FaultProtocol.Tcp && ip.FragmentOffset == 0
            && TcpSegment.TryParse(ip.Payload, out TcpSegment tcp) == WireError.None)
        {
            summary.HasTcpHeader = true;
            summary.SourcePort = tcp.SourcePort;
            summary.DestinationPort = tcp.DestinationPort;
            summary.TcpFlags = tcp.Flags;
            summary.Sequence = tcp.SequenceNumber;
            summary.PayloadLength = tcp.Payload.Length;
        }
        return summary;
    }
}
