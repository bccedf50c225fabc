using TcpLab.Stack.Buffers;
using TcpLab.Stack.Link;
using TcpLab.Stack.Wire;

namespace TcpLab.Stack.Tests.Support;

/// <summary>
/// A test double between a stack and its link that silently drops frames a predicate picks,
/// in either direction: the simplest way to say "every SYN from the client is lost".
/// </summary>
public sealed class FilterLink(ILink inner) : ILink, IFrameHandler
{
    private IFrameHandler? _handler;

    /// <summary>Frames leaving the stack; return true to drop.</summary>
    public Func<FrameView, bool> DropOutgoing { get; set; } = _ => false;
    /// <summary>Frames arriving for the stack; return true to drop.</summary>
    public Func<FrameView, bool> DropIncoming { get; set; } = _ => false;

    public LinkInfo Info => inner.Info;

    public void Attach(IFrameHandler handler)
    {
        _handler = handler;
        inner.Attach(this);
    }

    public void Transmit(PacketBuffer frame)
    {
        if (DropOutgoing(FrameView.Of(frame.Span))) frame.Release();
        else inner.Transmit(frame);
    }

    public void OnFrame(PacketBuffer frame)
    {
        if (DropIncoming(FrameView.Of(frame.Span))) frame.Release();
        else _handler!.OnFrame(frame);
    }
}

/// <summary>The TCP facts of a frame a filter decides on (Flags None for non-TCP frames).</summary>
public readonly record struct FrameView(bool IsTcp, TcpFlags Flags, int PayloadLength, uint Seq = 0, uint Ack = 0)
{
    public bool Is(TcpFlags exact) => IsTcp && Flags == exact;
    public bool Has(TcpFlags flag) => IsTcp && (Flags & flag) == flag;

    public static FrameView Of(ReadOnlySpan<byte> frame)
    {
        if (EthernetFrame.TryParse(frame, out EthernetFrame eth) != WireError.None || eth.EtherType != EtherType.Ipv4
            || Ipv4Packet.TryParse(eth.Payload, out Ipv4Packet ip, verifyChecksum: false) != WireError.None || ip.Protocol != IpProtocol.Tcp
            || TcpSegment.TryParse(ip.Payload, out TcpSegment tcp) != WireError.None)
            return default;
        return new FrameView(true, tcp.Flags, tcp.Payload.Length, tcp.SequenceNumber, tcp.AcknowledgmentNumber);
    }
}
