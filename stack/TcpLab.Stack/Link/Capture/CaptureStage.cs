using TcpLab.Stack.Buffers;
using TcpLab.Stack.Time;

namespace TcpLab.Stack.Link.Capture;

/// <summary>
/// A tap on a link, where tcpdump would sit: wraps an inner <see cref="ILink"/> and records every
/// frame crossing it, outbound (<see cref="Transmit"/>) and inbound (<see cref="OnFrame"/>), into
/// an <see cref="ICaptureSink"/> stamped with the loop's clock, its direction, and the frame's
/// <see cref="PacketBuffer.Cause"/> as the packet comment. Frames pass on unchanged, with their
/// ownership.
/// <para>
/// Frames are recorded as handed over: a frame whose checksum the link is to finish
/// (<see cref="OffloadInfo.NeedsChecksum"/>) shows an unfinished checksum, as tcpdump shows on
/// a Linux host with checksum offload.
/// </para>
/// </summary>
public sealed class CaptureStage : ILink, IFrameHandler
{
    private readonly EventLoop _loop;
    private readonly ILink _inner;
    private readonly ICaptureSink _sink;
    private readonly int _interfaceId;
    private IFrameHandler? _handler;

    /// <summary>Declares the link to <paramref name="sink"/> as an interface and attaches to <paramref name="inner"/>.</summary>
    /// <param name="interfaceName">Name in the capture; the inner link's name if null.</param>
    public CaptureStage(EventLoop loop, ILink inner, ICaptureSink sink, string? interfaceName = null)
    {
        _loop = loop;
        _inner = inner;
        _sink = sink;
        _interfaceId = sink.AddInterface(interfaceName ?? inner.Info.Name);
        // A capture shows wire segments, as the lab's analyses expect: no TSO superframes through it.
        Info = inner.Info.WithoutTcpSegmentation();
        inner.Attach(this);
    }

    public LinkInfo Info { get; }

    /// <summary>The id of this link's interface in the sink.</summary>
    public int InterfaceId => _interfaceId;

    public void Attach(IFrameHandler handler) => _handler = handler;

    public void Transmit(PacketBuffer frame)
    {
        Record(frame, PacketDirection.Outbound);
        _inner.Transmit(frame);
    }

    public void OnFrame(PacketBuffer frame)
    {
        Record(frame, PacketDirection.Inbound);
        if (_handler is null) frame.Release();
        else _handler.OnFrame(frame);
    }

    private void Record(PacketBuffer frame, PacketDirection direction)
    {
        // The cause is worded only for frames that have one; that string is the only allocation here.
        // A GRO superframe (received; TCP sends none through a capture, see Info) is recorded as it crossed the TAP, one frame of several segments,
        // and its comment says so (on the Linux side of the TAP it is so many MSS-sized segments).
        string? comment = frame.Offload.Gso != GsoKind.None
            ? $"GSO superframe, gso_size {frame.Offload.GsoSize}" + (frame.Cause.IsNone ? "" : $"; {frame.Cause}")
            : frame.Cause.IsNone ? null : frame.Cause.ToString();
        _sink.Record(_interfaceId, CaptureTime.UnixNanoseconds(_loop, _loop.Now), direction, frame.Span, comment);
    }
}
