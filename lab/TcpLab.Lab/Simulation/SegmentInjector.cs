using TcpLab.Stack.Buffers;
using TcpLab.Stack.Link;
using TcpLab.Stack.Link.Simulation;
using TcpLab.Stack.Wire;

namespace TcpLab.Lab.Simulation;

/// <summary>
/// An extra port on the simulated wire that sends hand-made TCP segments with any source address,
/// like a raw socket would: invalid flag combinations, blind resets. Answers are ignored.
/// </summary>
public sealed class SegmentInjector : IFrameHandler
{
    private static readonly MacAddress OwnMac = MacAddress.Parse("02:00:00:00:00:fe");
    private readonly SimulatedPort _port;
    private readonly PacketBufferPool _pool = PacketBufferPool.ForMtu(1500);

    public SegmentInjector(SimulatedWire wire)
    {
        _port = wire.CreatePort("injector");
        _port.Attach(this);
    }

    public void OnFrame(PacketBuffer frame) => frame.Release();

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
