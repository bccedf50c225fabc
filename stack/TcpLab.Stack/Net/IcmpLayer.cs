using TcpLab.Stack.Buffers;
using TcpLab.Stack.Diagnostics;
using TcpLab.Stack.Time;
using TcpLab.Stack.Wire;

namespace TcpLab.Stack.Net;

/// <summary>An echo reply that answered one of our <see cref="IcmpLayer.SendEchoRequest"/>s.</summary>
public readonly record struct EchoReply(Ipv4Address From, ushort Identifier, ushort Sequence, int DataLength, byte Ttl, Instant ReceivedAt);

/// <summary>
/// ICMPv4 (RFC 792) as net/ipv4/icmp.c does it for a host: echo requests answered, errors
/// passed to the protocol whose datagram caused them, and errors sent under the rules of
/// RFC 1122 3.2.2 with Linux's two rate limits (a host-wide token bucket, icmp_msgs_per_sec
/// and icmp_msgs_burst, and a per-destination one, icmp_ratelimit).
/// </summary>
public sealed class IcmpLayer : IIpProtocolHandler
{
    /// <summary>Most of the offending datagram an error quotes: 576 - IP header - ICMP header (icmp_send).</summary>
    private const int MaxQuoted = 576 - Ipv4Header.Length - IcmpMessage.HeaderLength;

    /// <summary>inet_peer_xrlim_allow: a destination may take 6 errors in a burst (XRLIM_BURST_FACTOR).</summary>
    private const int PeerBurst = 6;

    private readonly NetworkStack _stack;
    private readonly Dictionary<Ipv4Address, (long Tokens, Instant Last)> _peerTokens = new();
    private double _globalTokens;
    private Instant _globalLast;

    internal IcmpLayer(NetworkStack stack)
    {
        _stack = stack;
        _globalTokens = stack.Sysctls.IcmpMsgsBurst;
    }

    /// <summary>Raised on the loop for every echo reply we receive.</summary>
    public event Action<EchoReply>? EchoReplyReceived;

    public void Receive(in IpDatagram datagram)
    {
        Counters counters = _stack.Counters;
        counters.Increment(Mib.IcmpInMsgs);
        WireError error = IcmpMessage.TryParse(datagram.Payload, out IcmpMessage icmp);
        if (error != WireError.None)
        {
            counters.Reject(WireProtocol.Icmp, error);
            counters.Increment(Mib.IcmpInErrors);
            if (error == WireError.BadChecksum) counters.Increment(Mib.IcmpInCsumErrors);
            return;
        }
        switch (icmp.Type)
        {
            case IcmpType.EchoRequest:
                counters.Increment(Mib.IcmpInEchos);
                // icmp_echo_ignore_broadcasts=1 (the default) silences pings to broadcast addresses.
                if (!_stack.Sysctls.IcmpEchoIgnoreAll && !datagram.IsBroadcast) SendEchoReply(datagram, icmp);
                break;
            case IcmpType.EchoReply:
                counters.Increment(Mib.IcmpInEchoReps);
                EchoReplyReceived?.Invoke(new EchoReply(datagram.Source, icmp.Identifier, icmp.SequenceNumber,
                                                        icmp.Data.Length, datagram.Ttl, datagram.Timestamp));
                break;
            case IcmpType.DestinationUnreachable or IcmpType.TimeExceeded:
                if (icmp.Type == IcmpType.DestinationUnreachable) counters.Increment(Mib.IcmpInDestUnreachs);
                DeliverError(datagram, icmp);
                break;
            default:
                counters.Drop(DropReason.IcmpUnhandled);
                break;
        }
    }

    /// <summary>ICMP errors about ICMP errors are never sent, so none arrive here for handling.</summary>
    public void ReceiveError(in IcmpError error) { }

    /// <summary>icmp_unreach: the quoted header must be IPv4 and carry 8 bytes of transport header.</summary>
    private void DeliverError(in IpDatagram datagram, in IcmpMessage icmp)
    {
        ReadOnlySpan<byte> quoted = icmp.Data;
        if (quoted.Length < Ipv4Packet.MinHeaderLength || quoted[0] >> 4 != 4) return;
        int headerLength = (quoted[0] & 0x0F) * 4;
        if (headerLength < Ipv4Packet.MinHeaderLength || quoted.Length < headerLength + 8) return;
        var error = new IcmpError(icmp.Type, icmp.Code, datagram.Source, quoted[..headerLength],
                                  quoted[headerLength..], icmp.NextHopMtu);
        _stack.Ip.DeliverError(error);
    }

    private void SendEchoReply(in IpDatagram request, in IcmpMessage echo)
    {
        // The reply echoes identifier, sequence and data (RFC 792); DF stays clear as for
        // Linux's ICMP socket (IP_PMTUDISC_DONT), so large replies are fragmented.
        Send(request.Interface, request.Source, IcmpType.EchoReply, 0, echo.Identifier, echo.SequenceNumber,
             echo.Data, new PacketCause(CauseCode.IcmpEchoReply));
        _stack.Counters.Increment(Mib.IcmpOutEchoReps);
    }

    /// <summary>Sends an echo request with <paramref name="dataLength"/> bytes of pattern data (like ping -s).</summary>
    public bool SendEchoRequest(Ipv4Address destination, ushort identifier, ushort sequence, int dataLength = 56)
    {
        if (!_stack.Ip.TryRoute(destination, out NetworkInterface networkInterface, out _)) return false;
        byte[] data = new byte[dataLength];
        for (int i = 0; i < data.Length; i++) data[i] = (byte)(0x10 + i); // ping's default fill after the timestamp
        Send(networkInterface, destination, IcmpType.EchoRequest, 0, identifier, sequence, data, new PacketCause(CauseCode.IcmpEchoRequest));
        _stack.Counters.Increment(Mib.IcmpOutEchos);
        return true;
    }

    /// <summary>
    /// Sends an error about <paramref name="original"/> unless RFC 1122 3.2.2 forbids it (it
    /// was an ICMP error, a broadcast, a non-first fragment, from a martian source) or a rate
    /// limit says no.
    /// </summary>
    internal void SendErrorFor(in IpDatagram original, IcmpType type, byte code)
    {
        if (original.IsBroadcast) return;
        Span<byte> quoted = stackalloc byte[Math.Min(original.Header.Length + original.Payload.Length, MaxQuoted)];
        original.Header.CopyTo(quoted);
        original.Payload[..(quoted.Length - original.Header.Length)].CopyTo(quoted[original.Header.Length..]);
        SendError(type, code, original.Interface, quoted, original.Header.Length);
    }

    /// <summary>icmp_send: an error quoting <paramref name="quoted"/> (an IP header of <paramref name="headerLength"/> bytes and what followed it).</summary>
    internal void SendError(IcmpType type, byte code, NetworkInterface networkInterface, ReadOnlySpan<byte> quoted, int headerLength)
    {
        var source = Ipv4Address.Read(quoted[12..]);
        var protocol = (IpProtocol)quoted[9];
        int fragmentOffset = (quoted[6] & 0x1F) << 8 | quoted[7];
        if (source.IsAny || source.IsBroadcast || source.IsMulticast || fragmentOffset != 0) return;
        if (protocol == IpProtocol.Icmp && quoted.Length > headerLength
            && (IcmpType)quoted[headerLength] is not (IcmpType.EchoRequest or IcmpType.EchoReply)) return;
        if (!AllowError(source)) return;

        CauseCode cause = (type, (UnreachableCode)code) switch
        {
            (IcmpType.DestinationUnreachable, UnreachableCode.Port) => CauseCode.IcmpPortUnreachable,
            (IcmpType.DestinationUnreachable, _) => CauseCode.IcmpProtocolUnreachable,
            _ => CauseCode.IcmpReassemblyTimeExceeded,
        };
        Send(networkInterface, source, type, code, 0, 0, quoted, new PacketCause(cause));
        _stack.Counters.Increment(Mib.IcmpOutErrors);
        if (type == IcmpType.DestinationUnreachable) _stack.Counters.Increment(Mib.IcmpOutDestUnreachs);
    }

    private void Send(NetworkInterface networkInterface, Ipv4Address destination, IcmpType type, byte code,
                      ushort restHigh, ushort restLow, ReadOnlySpan<byte> data, PacketCause cause)
    {
        int length = IcmpMessage.HeaderLength + data.Length;
        // An echo reply to a reassembled ping may exceed one frame; IP fragments it from this buffer.
        PacketBuffer message = length + PacketBuffer.DefaultHeadroom + 64 <= networkInterface.Pool.BufferSize
            ? networkInterface.Pool.Rent()
            : PacketBufferPool.Unpooled(length + PacketBuffer.DefaultHeadroom);
        Span<byte> bytes = message.Append(length);
        data.CopyTo(bytes[IcmpMessage.HeaderLength..]);
        IcmpMessage.WriteHeader(bytes, type, code, restHigh, restLow);
        message.Cause = cause;
        _stack.Counters.Increment(Mib.IcmpOutMsgs);
        var header = new Ipv4Header(networkInterface.Address.Address, destination, IpProtocol.Icmp, length,
                                    Ttl: (byte)_stack.Sysctls.IpDefaultTtl, DontFragment: false);
        _stack.Ip.Send(message, header);
    }

    /// <summary>icmp_global_allow and icmpv4_xrlim_allow together.</summary>
    private bool AllowError(Ipv4Address destination)
    {
        Instant now = _stack.Loop.Now;
        var sysctls = _stack.Sysctls;
        _globalTokens = Math.Min(sysctls.IcmpMsgsBurst, _globalTokens + (now - _globalLast).TotalSeconds * sysctls.IcmpMsgsPerSec);
        _globalLast = now;
        if (_globalTokens < 1) return false;

        long timeout = sysctls.IcmpRateLimit.Ticks;
        if (timeout > 0)
        {
            // Each destination earns a token per elapsed tick up to PeerBurst errors' worth.
            (long tokens, Instant last) = _peerTokens.TryGetValue(destination, out var state) ? state : (PeerBurst * timeout, now);
            tokens = Math.Min(PeerBurst * timeout, tokens + (now - last).Ticks);
            if (tokens < timeout) return false;
            if (_peerTokens.Count > 1024 && !_peerTokens.ContainsKey(destination)) _peerTokens.Clear();
            _peerTokens[destination] = (tokens - timeout, now);
        }
        _globalTokens -= 1;
        return true;
    }
}
