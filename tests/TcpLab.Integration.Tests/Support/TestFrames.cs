using System.Buffers.Binary;

namespace TcpLab.Integration.Tests.Support;

/// <summary>
/// Frames built and parsed by hand, byte by byte (RFC 826 ARP, RFC 791 IPv4, RFC 768 UDP), so
/// these tests depend on nothing but the links under test and the kernel.
/// </summary>
internal static class TestFrames
{
    public const ushort EtherTypeIpv4 = 0x0800;
    public const ushort EtherTypeArp = 0x0806;
    /// <summary>IEEE 802 Local Experimental EtherType 1: no kernel answers it.</summary>
    public const ushort EtherTypeExperimental = 0x88B5;
    public const ulong BroadcastMac = 0xFFFF_FFFF_FFFF;

    public const int EthernetHeaderLength = 14;
    public const int ArpFrameLength = EthernetHeaderLength + 28;
    public const ushort ArpRequest = 1;
    public const ushort ArpReply = 2;

    public const int Ipv4HeaderLength = 20;
    public const int UdpHeaderLength = 8;
    public const int UdpChecksumOffset = 6;
    public const byte ProtocolIcmp = 1;
    public const byte ProtocolUdp = 17;

    public static void WriteEthernet(Span<byte> frame, ulong destination, ulong source, ushort etherType)
    {
        WriteMac(frame, destination);
        WriteMac(frame[6..], source);
        BinaryPrimitives.WriteUInt16BigEndian(frame[12..], etherType);
    }

    /// <summary>An ARP request from <paramref name="senderMac"/>/<paramref name="senderIp"/> asking who has <paramref name="targetIp"/>.</summary>
    public static void WriteArpRequest(Span<byte> frame, ulong senderMac, uint senderIp, uint targetIp)
    {
        WriteEthernet(frame, BroadcastMac, senderMac, EtherTypeArp);
        Span<byte> arp = frame[EthernetHeaderLength..];
        BinaryPrimitives.WriteUInt16BigEndian(arp, 1);                  // htype: Ethernet
        BinaryPrimitives.WriteUInt16BigEndian(arp[2..], EtherTypeIpv4); // ptype
        arp[4] = 6;                                                     // hlen
        arp[5] = 4;                                                     // plen
        BinaryPrimitives.WriteUInt16BigEndian(arp[6..], ArpRequest);
        WriteMac(arp[8..], senderMac);
        BinaryPrimitives.WriteUInt32BigEndian(arp[14..], senderIp);
        WriteMac(arp[18..], 0);
        BinaryPrimitives.WriteUInt32BigEndian(arp[24..], targetIp);
    }

    public static ArpPacket? ParseArp(ReadOnlySpan<byte> frame)
    {
        if (frame.Length < ArpFrameLength || EtherType(frame) != EtherTypeArp) return null;
        ReadOnlySpan<byte> arp = frame[EthernetHeaderLength..];
        if (BinaryPrimitives.ReadUInt16BigEndian(arp) != 1 || BinaryPrimitives.ReadUInt16BigEndian(arp[2..]) != EtherTypeIpv4
            || arp[4] != 6 || arp[5] != 4) return null;
        return new ArpPacket(
            EthernetDestination: ReadMac(frame),
            EthernetSource: ReadMac(frame[6..]),
            Operation: BinaryPrimitives.ReadUInt16BigEndian(arp[6..]),
            SenderMac: ReadMac(arp[8..]),
            SenderIp: BinaryPrimitives.ReadUInt32BigEndian(arp[14..]),
            TargetMac: ReadMac(arp[18..]),
            TargetIp: BinaryPrimitives.ReadUInt32BigEndian(arp[24..]));
    }

    /// <summary>
    /// An Ethernet + IPv4 + UDP frame whose UDP checksum field holds the pseudo-header sum
    /// (folded, not complemented): the "partial" checksum a sender leaves for the device to
    /// finish when it sets VIRTIO_NET_HDR_F_NEEDS_CSUM. Returns the frame length.
    /// </summary>
    public static int WriteUdpWithPartialChecksum(Span<byte> frame, TestNetwork net, ushort sourcePort, ushort destinationPort, ReadOnlySpan<byte> payload)
    {
        WriteEthernet(frame, net.KernelMac, net.StackMac, EtherTypeIpv4);
        int udpLength = UdpHeaderLength + payload.Length;
        Span<byte> ip = frame.Slice(EthernetHeaderLength, Ipv4HeaderLength);
        ip.Clear();
        ip[0] = 0x45;                                                    // version 4, 5 words
        BinaryPrimitives.WriteUInt16BigEndian(ip[2..], (ushort)(Ipv4HeaderLength + udpLength));
        BinaryPrimitives.WriteUInt16BigEndian(ip[6..], 0x4000);          // DF
        ip[8] = 64;                                                      // TTL
        ip[9] = ProtocolUdp;
        BinaryPrimitives.WriteUInt32BigEndian(ip[12..], net.StackIp);
        BinaryPrimitives.WriteUInt32BigEndian(ip[16..], net.KernelIp);
        BinaryPrimitives.WriteUInt16BigEndian(ip[10..], (ushort)~Fold(Sum(ip)));

        Span<byte> udp = frame.Slice(EthernetHeaderLength + Ipv4HeaderLength, udpLength);
        BinaryPrimitives.WriteUInt16BigEndian(udp, sourcePort);
        BinaryPrimitives.WriteUInt16BigEndian(udp[2..], destinationPort);
        BinaryPrimitives.WriteUInt16BigEndian(udp[4..], (ushort)udpLength);
        payload.CopyTo(udp[UdpHeaderLength..]);
        ulong pseudoHeader = (net.StackIp >> 16) + (net.StackIp & 0xFFFF) + (net.KernelIp >> 16) + (net.KernelIp & 0xFFFF)
            + ProtocolUdp + (ulong)udpLength;
        BinaryPrimitives.WriteUInt16BigEndian(udp[UdpChecksumOffset..], Fold(pseudoHeader));
        return EthernetHeaderLength + Ipv4HeaderLength + udpLength;
    }

    /// <summary>True when the UDP checksum of the frame verifies (RFC 768: sum over pseudo-header and datagram is 0xFFFF).</summary>
    public static bool UdpChecksumVerifies(ReadOnlySpan<byte> frame)
    {
        ReadOnlySpan<byte> ip = frame.Slice(EthernetHeaderLength, Ipv4HeaderLength);
        ReadOnlySpan<byte> udp = frame[(EthernetHeaderLength + Ipv4HeaderLength)..];
        int udpLength = BinaryPrimitives.ReadUInt16BigEndian(udp[4..]);
        ulong sum = Sum(ip.Slice(12, 8)) + ProtocolUdp + (ulong)udpLength + Sum(udp[..udpLength]);
        return Fold(sum) == 0xFFFF;
    }

    public static ushort EtherType(ReadOnlySpan<byte> frame) => BinaryPrimitives.ReadUInt16BigEndian(frame[12..]);
    public static ulong Destination(ReadOnlySpan<byte> frame) => ReadMac(frame);
    public static ulong Source(ReadOnlySpan<byte> frame) => ReadMac(frame[6..]);

    /// <summary>The IPv4 protocol number, or -1 for a frame that is not IPv4.</summary>
    public static int IpProtocol(ReadOnlySpan<byte> frame) =>
        frame.Length >= EthernetHeaderLength + Ipv4HeaderLength && EtherType(frame) == EtherTypeIpv4 ? frame[EthernetHeaderLength + 9] : -1;

    public static ushort UdpDestinationPort(ReadOnlySpan<byte> frame) =>
        BinaryPrimitives.ReadUInt16BigEndian(frame[(EthernetHeaderLength + Ipv4HeaderLength + 2)..]);

    private static ulong Sum(ReadOnlySpan<byte> bytes)
    {
        ulong sum = 0;
        for (int i = 0; i + 1 < bytes.Length; i += 2) sum += BinaryPrimitives.ReadUInt16BigEndian(bytes[i..]);
        if ((bytes.Length & 1) != 0) sum += (ulong)bytes[^1] << 8;
        return sum;
    }

    private static ushort Fold(ulong sum)
    {
        while (sum > 0xFFFF) sum = (sum & 0xFFFF) + (sum >> 16);
        return (ushort)sum;
    }

    private static void WriteMac(Span<byte> destination, ulong mac)
    {
        BinaryPrimitives.WriteUInt16BigEndian(destination, (ushort)(mac >> 32));
        BinaryPrimitives.WriteUInt32BigEndian(destination[2..], (uint)mac);
    }

    private static ulong ReadMac(ReadOnlySpan<byte> source) =>
        ((ulong)BinaryPrimitives.ReadUInt16BigEndian(source) << 32) | BinaryPrimitives.ReadUInt32BigEndian(source[2..]);
}

internal sealed record ArpPacket(
    ulong EthernetDestination, ulong EthernetSource, ushort Operation,
    ulong SenderMac, uint SenderIp, ulong TargetMac, uint TargetIp);
