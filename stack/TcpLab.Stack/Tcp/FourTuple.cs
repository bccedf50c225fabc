using TcpLab.Stack.Wire;

namespace TcpLab.Stack.Tcp;

/// <summary>A connection's addresses and ports, from this host's point of view.</summary>
public readonly record struct FourTuple(Ipv4Address LocalAddress, ushort LocalPort, Ipv4Address RemoteAddress, ushort RemotePort)
{
    public override string ToString() => $"{LocalAddress}:{LocalPort} {RemoteAddress}:{RemotePort}";
}
