using TcpLab.Stack.Buffers;
using TcpLab.Stack.Link;
using TcpLab.Stack.Link.Simulation;
using TcpLab.Stack.Wire;

namespace TcpLab.Lab.Simulation;

/// <summary>
/// An extra port on the simulated wire that sends hand-made TCP segments with any source address,
/// like a raw socket would: invalid flag combinations, blind resets, floods from spoofed
/// addresses. It can also stand in for the spoofed addresses: it answers ARP for them (as a
/// router answers for the networks behind it) and swallows whatever is sent to them, so the
/// answers go out on the wire and meet silence, never an error.
/// </summary>
public sealed class SegmentInjector : IFrameHandler
{
    private static readonly MacAddress OwnMac = MacAddress.Parse("02:00:00:00:00:fe");
    private readonly SimulatedPort _port;
    private readonly PacketBufferPool _pool = PacketBufferPool.ForMtu(1500);
    private readonly List<Ipv4Cidr> _silentHosts = new();

    public SegmentInjector(SimulatedWire wire)
    {
        _port = wire.CreatePort("injector");
        _port.Attach(this);
    }

    /// <summary>Answer ARP for every address of <paramref name="range"/>; frames sent to them are dropped.</summary>
    public void StandInFor(Ipv4Cidr range) => _silentHosts.Add(range);

    public void OnFrame(PacketBuffer frame)
    {
        try
        {
            if (EthernetFrame.TryParse(frame.Span, out EthernetFrame ethernet) == WireError.None && ethernet.EtherType == EtherType.Arp
                && ArpPacket.TryParse(ethernet.Payload, out ArpPacket arp) == WireError.None && arp.Operation == ArpOperation.Request
                && _silentHosts.Exists(r => r.Contains(arp.TargetIp)))
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
        new ArpPacket(ArpOperation.Reply, OwnMac, request.TargetIp, request.SenderMac, request.SenderIp).Write(reply.Prepend(ArpPacket.Length));
        EthernetFrame.WriteHeader(reply.Prepend(EthernetFrame.HeaderLength), request.SenderMac, OwnMac, EtherType.Arp);
        _port.Transmit(reply);
    }

    public void Send(Ipv4Address source, Ipv4Address destination, MacAddress destinationMac, in TcpHeader header)
    {
        PacketBuffer frame = _pool.Rent();
        header.Write(frame.Prepend(header.Length));
        TcpHeader.WriteChecksum(frame.Span, source, destination);
        new Ipv4Header(source, destination, IpProtocol.Tcp, frame.Length).Write(frame.Prepend(Ipv4Header.Length));
        EthernetFrame.WriteHeader(frame.Prepend(EthernetFrame.HeaderLength), destinationMac, OwnMac, EtherType.Ipv4);
        _port.Transmit(frame);
    }
}
