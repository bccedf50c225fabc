using TcpLab.Stack.Buffers;
using TcpLab.Stack.Time;
using TcpLab.Stack.Wire;

namespace TcpLab.Stack.Net;

/// <summary>
/// A received IPv4 datagram addressed to this host, as handed to a transport protocol: the
/// header fields it needs and the payload, valid only for the duration of the call (copy what
/// you keep). Reassembled datagrams arrive the same way.
/// </summary>
public readonly ref struct IpDatagram
{
    public IpDatagram(NetworkInterface networkInterface, ReadOnlySpan<byte> header, ReadOnlySpan<byte> payload, Instant timestamp,
                      in OffloadInfo offload = default)
    {
        Interface = networkInterface;
        Header = header;
        Payload = payload;
        Timestamp = timestamp;
        Offload = offload;
    }

    public NetworkInterface Interface { get; }
    /// <summary>The IP header as received (options included), for quoting in ICMP errors.</summary>
    public ReadOnlySpan<byte> Header { get; }
    public ReadOnlySpan<byte> Payload { get; }
    public Instant Timestamp { get; }
    /// <summary>What the link said about the frame: a checksum the kernel verified or never filled in, a GRO superframe.</summary>
    public OffloadInfo Offload { get; }

    /// <summary>
    /// The transport checksum need not be checked: the kernel verified it (DATA_VALID), or the
    /// data never left the host and the checksum was left partial (NEEDS_CSUM, CHECKSUM_PARTIAL).
    /// </summary>
    public bool ChecksumTrusted => Offload.ChecksumVerified || Offload.NeedsChecksum;

    public Ipv4Address Source => Ipv4Address.Read(Header[12..]);
    public Ipv4Address Destination => Ipv4Address.Read(Header[16..]);
    public IpProtocol Protocol => (IpProtocol)Header[9];
    public byte Ttl => Header[8];
    public byte TypeOfService => Header[1];
    /// <summary>Sent to a broadcast address rather than to our own (never answered with errors).</summary>
    public bool IsBroadcast => Destination != Interface.Address.Address;
}

/// <summary>
/// An ICMP error (destination unreachable, time exceeded) about a datagram this host sent,
/// handed to the protocol that sent it, as Linux's icmp_unreach() calls tcp_v4_err().
/// </summary>
public readonly ref struct IcmpError
{
    public IcmpError(IcmpType type, byte code, Ipv4Address reporter, ReadOnlySpan<byte> originalHeader, ReadOnlySpan<byte> originalTransport, ushort nextHopMtu)
    {
        Type = type;
        Code = code;
        Reporter = reporter;
        OriginalHeader = originalHeader;
        OriginalTransport = originalTransport;
        NextHopMtu = nextHopMtu;
    }

    public IcmpType Type { get; }
    public byte Code { get; }
    /// <summary>Who sent the error (our own address when ARP resolution failed locally).</summary>
    public Ipv4Address Reporter { get; }
    public ReadOnlySpan<byte> OriginalHeader { get; }
    /// <summary>At least the first 8 bytes of the original transport header (ports and sequence number).</summary>
    public ReadOnlySpan<byte> OriginalTransport { get; }
    public ushort NextHopMtu { get; }

    public Ipv4Address OriginalSource => Ipv4Address.Read(OriginalHeader[12..]);
    public Ipv4Address OriginalDestination => Ipv4Address.Read(OriginalHeader[16..]);
    public IpProtocol OriginalProtocol => (IpProtocol)OriginalHeader[9];

    /// <summary>The errno Linux maps this error to (icmp_err_convert in net/ipv4/icmp.c).</summary>
    public Errno ToErrno() => Type switch
    {
        IcmpType.DestinationUnreachable => (UnreachableCode)Code switch
        {
            UnreachableCode.Network => Errno.ENETUNREACH,
            UnreachableCode.Host => Errno.EHOSTUNREACH,
            UnreachableCode.Protocol => Errno.ENOPROTOOPT,
            UnreachableCode.Port => Errno.ECONNREFUSED,
            UnreachableCode.FragmentationNeeded => Errno.EMSGSIZE,
            _ => Errno.EHOSTUNREACH,
        },
        _ => Errno.EHOSTUNREACH,
    };
}

/// <summary>A transport protocol on top of IPv4 (TCP here).</summary>
public interface IIpProtocolHandler
{
    void Receive(in IpDatagram datagram);

    void ReceiveError(in IcmpError error);
}
