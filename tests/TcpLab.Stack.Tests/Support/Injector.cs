using TcpLab.Stack.Buffers;
using TcpLab.Stack.Link;
using TcpLab.Stack.Link.Simulation;
using TcpLab.Stack.Wire;

namespace TcpLab.Stack.Tests.Support;

/// <summary>
/// A third host on the simulated wire that sends hand-made TCP segments with any source
/// address: a replayed SYN, a blind RST, a segment with invalid flags, a flood of spoofed SYNs.
/// It can claim addresses in ARP, so that answers to spoofed sources reach it and die here.
/// </summary>
public sealed class Injector : IFrameHandler
{
    private static readonly MacAddress OwnMac = MacAddress.Parse("02:00:00:00:00:99");
    private readonly SimulatedPort _port;
    private readonly PacketBufferPool _pool = PacketBufferPool.ForMtu(1500);

    public Injector(TwoHosts net)
    {
        _port = net.Wire.CreatePort("injector");
        _port.Attach(this);
    }

    /// <summary>Addresses this host answers ARP requests for (none by default).</summary>
    public Func<Ipv4Address, bool> ClaimsAddress { get; set; } = _ => false;

    /// <summary>Frames addressed to this host's MAC (e.g. SYN-ACKs to spoofed sources), counted and dropped.</summary>
    public long FramesReceived { get; private set; }

    public void OnFrame(PacketBuffer frame)
    {
        if (EthernetFrame.TryParse(frame.Span, out EthernetFrame eth) == WireError.None)
        {
            if (eth.Destination == OwnMac) FramesReceived++;
            else if (eth.EtherType == EtherType.Arp && ArpPacket.TryParse(eth.Payload, out ArpPacket arp) == WireError.None
                     && arp.Operation == ArpOperation.Request && ClaimsAddress(arp.TargetIp))
                ReplyArp(arp);
        }
        frame.Release();
    }

    private void ReplyArp(ArpPacket request)
    {
        PacketBuffer reply = _pool.Rent();
        new ArpPacket(ArpOperation.Reply, OwnMac, request.TargetIp, request.SenderMac, request.SenderIp).Write(reply.Append(ArpPacket.Length));
        EthernetFrame.WriteHeader(reply.Prepend(EthernetFrame.HeaderLength), request.SenderMac, OwnMac, EtherType.Arp);
        _port.Transmit(reply);
    }

    /// <summary>Sends a segment from <paramref name="source"/> to the host with <paramref name="destination"/> (MAC ...:01 for the client, ...:02 for the server).</summary>
    public void Send(Ipv4Address source, Ipv4Address destination, TcpHeader header, ReadOnlySpan<byte> payload = default)
    {
        MacAddress destinationMac = MacAddress.Parse(destination == TwoHosts.ClientIp ? "02:00:00:00:00:01" : "02:00:00:00:00:02");
        PacketBuffer frame = _pool.Rent();
        payload.CopyTo(frame.Append(payload.Length));
        header.Write(frame.Prepend(header.Length));
        TcpHeader.WriteChecksum(frame.Span, source, destination);
        new Ipv4Header(source, destination, IpProtocol.Tcp, frame.Length).Write(frame.Prepend(Ipv4Header.Length));
        EthernetFrame.WriteHeader(frame.Prepend(EthernetFrame.HeaderLength), destinationMac, OwnMac, EtherType.Ipv4);
        _port.Transmit(frame);
    }
}
