using TcpLab.Stack.Buffers;

namespace TcpLab.Stack.Link;

/// <summary>
/// An Ethernet link as the network layer sees it: frames go down through
/// <see cref="Transmit"/> and come up through the attached <see cref="IFrameHandler"/>.
/// TAP devices, AF_PACKET sockets and ports of the simulated wire are links; so are the stages
/// that wrap one (capture, fault injection), which is how they compose.
/// <para>
/// Both directions move ownership of the <see cref="PacketBuffer"/>: the link releases a
/// transmitted frame when it is done with it, and the handler releases a received one.
/// All calls happen on the link's event loop.
/// </para>
/// </summary>
public interface ILink
{
    LinkInfo Info { get; }

    /// <summary>Sends one frame (starting at its Ethernet header). Takes ownership of it.</summary>
    void Transmit(PacketBuffer frame);

    /// <summary>Sets where received frames go; there is one handler per link.</summary>
    void Attach(IFrameHandler handler);
}

public interface IFrameHandler
{
    /// <summary>One received frame, starting at its Ethernet header. Takes ownership of it.</summary>
    void OnFrame(PacketBuffer frame);
}

/// <param name="Name">Device name for messages and captures ("tap0", "sim:client").</param>
/// <param name="Mtu">Largest IP datagram the link carries in one frame (1500 on Ethernet).</param>
/// <param name="Offloads">What the link finishes or splits for the stack (see <see cref="OffloadInfo"/>).</param>
public sealed record LinkInfo(string Name, int Mtu, LinkOffloads Offloads = LinkOffloads.None)
{
    /// <summary>
    /// This link as a stage that must see every wire segment sees it: without
    /// <see cref="LinkOffloads.TxTcpSegmentation"/>, so TCP sends no superframes through it.
    /// </summary>
    public LinkInfo WithoutTcpSegmentation() =>
        (Offloads & LinkOffloads.TxTcpSegmentation) == 0 ? this : this with { Offloads = Offloads & ~LinkOffloads.TxTcpSegmentation };
}

/// <summary>
/// Offloads a link can perform, as negotiated with TUNSETOFFLOAD on a TAP opened with
/// IFF_VNET_HDR. A link without them gets fully built, checksummed, MTU-sized frames.
/// </summary>
[Flags]
public enum LinkOffloads
{
    None = 0,
    /// <summary>Frames may go out with <see cref="OffloadInfo.NeedsChecksum"/> (TUN_F_CSUM).</summary>
    TxChecksum = 1,
    /// <summary>
    /// TCP superframes up to 64 KiB may go out with a GSO size (VIRTIO_NET_HDR_GSO_TCPV4), which
    /// the link splits into segments of at most the MTU; needs <see cref="TxChecksum"/> too, as a
    /// superframe's checksum is always partial. Capture and fault stages with rules hide it
    /// (<see cref="LinkInfo.WithoutTcpSegmentation"/>) so that they see per-segment frames.
    /// </summary>
    TxTcpSegmentation = 2,
    /// <summary>Received frames may carry <see cref="OffloadInfo.ChecksumVerified"/> or be GRO superframes.</summary>
    RxOffload = 4,
}
