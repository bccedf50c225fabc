using TcpLab.Stack.Buffers;
using TcpLab.Stack.Diagnostics;
using TcpLab.Stack.Link;
using TcpLab.Stack.Time;

namespace TcpLab.Stack.Tests.Support;

/// <summary>
/// A link whose far side is the test: it keeps a copy of every frame the stack transmits, with
/// the virtual time and cause, and lets the test inject frames as if they arrived.
/// </summary>
public sealed class RecordingLink(EventLoop loop, int mtu = 1500) : ILink
{
    private readonly PacketBufferPool _pool = PacketBufferPool.ForMtu(65535);
    private IFrameHandler? _handler;

    public LinkInfo Info { get; } = new("test0", mtu);

    public List<SentFrame> Sent { get; } = new();

    public void Attach(IFrameHandler handler) => _handler = handler;

    public void Transmit(PacketBuffer frame)
    {
        Sent.Add(new SentFrame(loop.Now, frame.Span.ToArray(), frame.Cause));
        frame.Release();
    }

    public void Inject(ReadOnlySpan<byte> frame)
    {
        PacketBuffer buffer = _pool.Rent();
        frame.CopyTo(buffer.Append(frame.Length));
        buffer.Timestamp = loop.Now;
        _handler!.OnFrame(buffer);
    }

    public readonly record struct SentFrame(Instant At, byte[] Bytes, PacketCause Cause);
}
