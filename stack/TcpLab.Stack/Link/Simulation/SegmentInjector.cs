using TcpLab.Stack.Buffers;
using TcpLab.Stack.Wire;

namespace TcpLab.Stack.Link.Simulation;

/// <summary>
/// An extra port on the simulated wire that sends hand-made TCP segments with any source address,
/// like a raw socket would: invalid flag combinations, blind resets, replayed SYNs, floods from
/// spoofed addresses. It can also stand in for the spoofed addresses: it answers ARP for them (as
/// a router answers for the networks behind it) and swallows whatever is sent to them, so the
/// answers go out on the wire and meet silence, never an error.
/// </summary>
public sealed class SegmentInjector : IFrameHandler
{
    private static readonly MacAddress OwnMac = MacAddress.Parse("02:00:00:00:00:fe");
    private readonly SimulatedPort _port;
    private readonly PacketBufferPool _pool = PacketBufferPool.ForMtu(1500);
    private readonly List<Func<Ipv4Address, bool>> _standIns = new();

    public SegmentInjector(SimulatedWire wire)
    {
        _port = wire.CreatePort("injector");
        _port.Attach(this);
    }

    /// <summary>Frames sent to the addresses it stands in for (e.g. SYN-ACKs to spoofed sources), counted and dropped.</summary>
    public long FramesReceived { get; private set; }

    /// <summary>Answer ARP for every address of <paramref name="range"/>; frames sent to them are dropped.</summary>
    public void StandInFor(Ipv4Cidr range) => StandInFor(range.Contains);

    /// <summary>Answer ARP for every address <paramref name="claims"/> accepts; frames sent to them are dropped.</summary>
    public void StandInFor(Func<Ipv4Address, bool> claims) => _standIns.Add(claims);

    public void OnFrame(PacketBuffer frame)
    {
        try
        {
            if (EthernetFrame.TryParse(frame.Span, out EthernetFrame ethernet) != WireError.None) return;
            if (ethernet.Destination == OwnMac) FramesReceived++;
            else if (ethernet.EtherType == EtherType.Arp && ArpPacket.TryParse(ethernet.Payload, out ArpPacket arp) == WireError.None
                     && arp.Operation == ArpOperation.Request && _standIns.Exists(claims => claims(arp.TargetIp)))
                AnswerArp(arp);
        }
        finally
        {
            frame.Release();
        }
    }

    private void AnswerArp(ArpPacket request)
    {
        PacketBuffer reply = _pool.Rent();
        new ArpPacket(ArpOperation.Reply, OwnMac, request.TargetIp, request.SenderMac, request.SenderIp).Write(reply.Append(ArpPacket.Length));
        EthernetFrame.WriteHeader(reply.Prepend(EthernetFrame.HeaderLength), request.SenderMac, OwnMac, EtherType.Arp);
        _port.Transmit(reply);
    }

    /// <summary>Sends <paramref name="header"/> and <paramref name="payload"/> from <paramref name="source"/> to the host with <paramref name="destinationMac"/>.</summary>
    public void Send(Ipv4Address source, Ipv4Address destination, MacAddress destinationMac, in TcpHeader header, ReadOnlySpan<byte> payload = default)
    {
        PacketBuffer frame = _pool.Rent();
        payload.CopyTo(frame.Append(payload.Length));
        header.Write(frame.Prepend(header.Length));
        TcpHeader.WriteChecksum(frame.Span, source, destination);
        new Ipv4Header(source, destination, IpProtocol.Tcp, frame.Length).Write(frame.Prepend(Ipv4Header.Length));
        EthernetFrame.WriteHeader(frame.Prepend(EthernetFrame.HeaderLength), destinationMac, OwnMac, EtherType.Ipv4);
        _port.Transmit(frame);
    }
}
