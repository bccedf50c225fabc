using TcpLab.Stack.Buffers;

namespace TcpLab.Stack.Link;

/// <summary>
/// Joins two links at layer 2, as a cable between two switch ports: every frame received on
/// one is transmitted on the other. The lab uses it to plug a TAP device (with the Linux kernel
/// behind it) into its wire, so a kernel host sits on the same segment as managed hosts.
/// Both links must live on the same event loop.
/// </summary>
public sealed class LinkBridge
{
    public LinkBridge(ILink first, ILink second)
    {
        First = first;
        Second = second;
        first.Attach(new Forwarder(second));
        second.Attach(new Forwarder(first));
    }

    public ILink First { get; }
    public ILink Second { get; }

    private sealed class Forwarder(ILink to) : IFrameHandler
    {
        public void OnFrame(PacketBuffer frame) => to.Transmit(frame);
    }
}
