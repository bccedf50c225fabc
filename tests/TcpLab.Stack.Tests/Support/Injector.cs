using TcpLab.Stack.Link.Simulation;
using TcpLab.Stack.Wire;

namespace TcpLab.Stack.Tests.Support;

/// <summary>
/// The lab's <see cref="SegmentInjector"/> as a third host on a <see cref="TwoHosts"/> wire, which
/// addresses the two hosts by IP: a replayed SYN, a blind RST, a segment with invalid flags, a
/// flood of spoofed SYNs.
/// </summary>
public sealed class Injector(TwoHosts net)
{
    private readonly SegmentInjector _injector = new(net.Wire);

    /// <summary>Frames sent to the addresses it stands in for, counted and dropped.</summary>
    public long FramesReceived => _injector.FramesReceived;

    /// <summary>Answer ARP for the addresses <paramref name="claims"/> accepts, so that answers to spoofed sources reach it and die here.</summary>
    public void StandInFor(Func<Ipv4Address, bool> claims) => _injector.StandInFor(claims);

    /// <summary>Sends a segment from <paramref name="source"/> to the client or the server, <paramref name="destination"/>.</summary>
    public void Send(Ipv4Address source, Ipv4Address destination, TcpHeader header, ReadOnlySpan<byte> payload = default) =>
        _injector.Send(source, destination, TwoHosts.MacOf(destination), header, payload);
}
