using System.Buffers.Binary;
using TcpLab.Stack.Link.Capture;
using TcpLab.Stack.Wire;

namespace TcpLab.Lab.Trace;

/// <summary>
/// Finds the IPv4 datagram in a captured frame, whatever link layer the capture file declares:
/// Ethernet, raw IP, BSD loopback (DLT_NULL), or Linux cooked v1 and v2 (tcpdump -i any).
/// </summary>
public static class LinkLayer
{
    /// <summary>Linux cooked v1: packet type, address type and length, 8 address bytes, then the protocol.</summary>
    private const int CookedV1HeaderLength = 16;

    /// <summary>Linux cooked v2: the protocol first, then interface index, types and address.</summary>
    private const int CookedV2HeaderLength = 20;

    /// <summary>DLT_NULL: the address family in the capturing host's byte order.</summary>
    private const int NullHeaderLength = 4;
    private const uint AddressFamilyInet = 2;

    /// <summary>The IPv4 datagram the frame carries; false for anything else (ARP, IPv6, a runt).</summary>
    public static bool TryGetIpv4(LinkType linkType, ReadOnlySpan<byte> frame, out ReadOnlySpan<byte> datagram)
    {
        datagram = default;
        switch (linkType)
        {
            case LinkType.Ethernet when frame.Length >= EthernetFrame.HeaderLength
                && (EtherType)BinaryPrimitives.ReadUInt16BigEndian(frame[12..]) == EtherType.Ipv4:
                datagram = frame[EthernetFrame.HeaderLength..];
                return true;
            case LinkType.Raw when frame.Length > 0 && frame[0] >> 4 == 4:
                datagram = frame;
                return true;
            case LinkType.Null when frame.Length >= NullHeaderLength
                && (BinaryPrimitives.ReadUInt32LittleEndian(frame) == AddressFamilyInet || BinaryPrimitives.ReadUInt32BigEndian(frame) == AddressFamilyInet):
                datagram = frame[NullHeaderLength..];
                return true;
            case LinkType.LinuxCooked when frame.Length >= CookedV1HeaderLength
                && (EtherType)BinaryPrimitives.ReadUInt16BigEndian(frame[14..]) == EtherType.Ipv4:
                datagram = frame[CookedV1HeaderLength..];
                return true;
            case LinkType.LinuxCookedV2 when frame.Length >= CookedV2HeaderLength
                && (EtherType)BinaryPrimitives.ReadUInt16BigEndian(frame) == EtherType.Ipv4:
                datagram = frame[CookedV2HeaderLength..];
                return true;
            default:
                return false;
        }
    }
}
