using TcpLab.Stack.Buffers;
using TcpLab.Stack.Interop;
using TcpLab.Stack.Time;

namespace TcpLab.Stack.Link;

/// <summary>How <see cref="TapDevice"/> opens its device.</summary>
public sealed record TapOptions
{
    /// <summary>Set on the device at open (SIOCSIFMTU), so the kernel side and <see cref="LinkInfo.Mtu"/> agree.</summary>
    public int Mtu { get; init; } = 1500;

    /// <summary>
    /// Open with IFF_VNET_HDR: every frame in both directions carries a 12-byte
    /// <see cref="VirtioNetHeader"/>, which is how checksum and segmentation offloads travel.
    /// </summary>
    public bool VnetHeader { get; init; }

    /// <summary>Offloads to negotiate; needs <see cref="VnetHeader"/>.</summary>
    public LinkOffloads Offloads { get; init; }
}

/// <summary>
/// A Linux TAP device: the stack's end of a virtual Ethernet cable whose other end is a
/// network interface of the kernel. Opened non-persistent (no TUNSETPERSIST), so the device
/// disappears when the link is disposed.
/// <para>
/// With <see cref="TapOptions.VnetHeader"/> each frame carries a virtio-net header that this
/// link adds on transmit (from <see cref="PacketBuffer.Offload"/>) and removes on receive (into
/// it), so handlers always see a frame starting at its Ethernet header. The offloads travel
/// in opposite directions and are negotiated differently:
/// <list type="bullet">
/// <item><see cref="LinkOffloads.TxChecksum"/> and <see cref="LinkOffloads.TxTcpSegmentation"/>
/// (frames the stack writes with NEEDS_CSUM or a GSO size) come with IFF_VNET_HDR itself: the
/// kernel accepts them on every such TAP (drivers/net/tun.c tun_get_user calls
/// virtio_net_hdr_to_skb whatever TUNSETOFFLOAD said), and a TCPv4 superframe enters the kernel
/// as one GSO skb that its TCP receives whole, as a GRO packet.</item>
/// <item><see cref="LinkOffloads.RxOffload"/> is TUNSETOFFLOAD TUN_F_CSUM | TUN_F_TSO4, which
/// lets the kernel hand the stack frames with partial checksums and 64 KiB TCP superframes
/// (the flags describe what the reader of the TAP can take). Receive buffers must then be
/// <see cref="ReceiveBufferSize"/> bytes, about 64 KiB.</item>
/// </list>
/// The header is little-endian, which is what tun uses on little-endian hosts without TUNSETVNETLE.
/// </para>
/// </summary>
public sealed unsafe class TapDevice : FileDescriptorLink
{
    private const string CloneDevice = "/dev/net/tun";

    /// <summary>The largest IPv4 datagram, the bound on a GRO/TSO superframe's payload.</summary>
    private const int MaxIpv4Datagram = 65535;

    private readonly bool _vnetHeader;

    private TapDevice(RealTimeEventLoop loop, PacketBufferPool pool, FileDescriptor fd, LinkInfo info, bool vnetHeader)
        : base(loop, pool, fd, info)
    {
        _vnetHeader = vnetHeader;
    }

    /// <summary>
    /// Creates the TAP <paramref name="ifName"/> (a "%d" in it is filled in by the kernel; see
    /// <see cref="LinkInfo.Name"/>) in the calling thread's network namespace.
    /// </summary>
    /// <param name="pool">Buffers of at least <see cref="ReceiveBufferSize"/> bytes.</param>
    public static TapDevice Open(string ifName, TapOptions options, RealTimeEventLoop loop, PacketBufferPool pool)
    {
        Validate(ifName, options, loop, pool);
        return Create(ifName, options, loop, pool);
    }

    /// <summary>
    /// Creates the TAP inside the network namespace <paramref name="netnsPath"/>
    /// (e.g. /run/netns/NAME); the caller's threads stay where they are.
    /// </summary>
    public static TapDevice OpenInNamespace(string netnsPath, string ifName, TapOptions options, RealTimeEventLoop loop, PacketBufferPool pool)
    {
        Validate(ifName, options, loop, pool);
        return NetworkNamespaceThread.Run(netnsPath, () => Create(ifName, options, loop, pool));
    }

    /// <summary>
    /// The pool buffer size that receives every frame whole: default headroom, the virtio-net
    /// header if any, an Ethernet header with a VLAN tag, the MTU (a 64 KiB superframe with
    /// <see cref="LinkOffloads.RxOffload"/>), and one spare byte (see <see cref="Receive"/>).
    /// </summary>
    public static int ReceiveBufferSize(TapOptions options) =>
        PacketBuffer.DefaultHeadroom
        + (options.VnetHeader ? VirtioNetHeader.Size : 0)
        + EthernetHeaderWithVlanTag
        + (options.Offloads.HasFlag(LinkOffloads.RxOffload) ? MaxIpv4Datagram : options.Mtu)
        + 1;

    private static void Validate(string ifName, TapOptions options, RealTimeEventLoop loop, PacketBufferPool pool)
    {
        ArgumentNullException.ThrowIfNull(ifName);
        NetDeviceName.Validate(ifName.Replace("%d", "0"));
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(loop);
        ArgumentNullException.ThrowIfNull(pool);
        if (options.Mtu is < 68 or > MaxIpv4Datagram) throw new ArgumentOutOfRangeException(nameof(options), $"MTU {options.Mtu} is outside 68..{MaxIpv4Datagram}");
        if (options.Offloads != LinkOffloads.None && !options.VnetHeader)
            throw new ArgumentException("offloads travel in the virtio-net header: set VnetHeader too", nameof(options));
        if (options.Offloads.HasFlag(LinkOffloads.TxTcpSegmentation) && !options.Offloads.HasFlag(LinkOffloads.TxChecksum))
            throw new ArgumentException("TxTcpSegmentation needs TxChecksum: a superframe's checksum is partial", nameof(options));
        EnsureBuffersFit(pool, ReceiveBufferSize(options), $"a TAP with {options}");
    }

    private static TapDevice Create(string ifName, TapOptions options, RealTimeEventLoop loop, PacketBufferPool pool)
    {
        FileDescriptor fd = LibC.Open(CloneDevice, LibC.O_RDWR | LibC.O_NONBLOCK | LibC.O_CLOEXEC);
        if (fd.IsInvalid) throw SystemError.LastAsException($"open {CloneDevice}");
        try
        {
            IfReq request = IfReq.ForName(ifName);
            // IFF_NO_PI: frames come without the 4-byte struct tun_pi in front.
            request.Flags = (short)(LibC.IFF_TAP | LibC.IFF_NO_PI | (options.VnetHeader ? LibC.IFF_VNET_HDR : 0));
            if (LibC.Ioctl(fd, LibC.TUNSETIFF, (nint)(&request)) < 0) throw SystemError.LastAsException($"TUNSETIFF {ifName}");
            string name = request.GetName();

            if (options.VnetHeader)
            {
                int headerSize = VirtioNetHeader.Size;
                if (LibC.Ioctl(fd, LibC.TUNSETVNETHDRSZ, (nint)(&headerSize)) < 0)
                    throw SystemError.LastAsException($"TUNSETVNETHDRSZ {headerSize} {name}");
                uint receiveOffloads = options.Offloads.HasFlag(LinkOffloads.RxOffload) ? LibC.TUN_F_CSUM | LibC.TUN_F_TSO4 : 0;
                if (LibC.Ioctl(fd, LibC.TUNSETOFFLOAD, (nint)receiveOffloads) < 0)
                    throw SystemError.LastAsException($"TUNSETOFFLOAD 0x{receiveOffloads:x} {name}");
            }
            NetDeviceControl.SetMtu(name, options.Mtu);

            // Everything asked for is granted once the ioctls above succeeded.
            var info = new LinkInfo(name, options.Mtu, options.VnetHeader ? options.Offloads : LinkOffloads.None);
            return new TapDevice(loop, pool, fd, info, options.VnetHeader);
        }
        catch
        {
            fd.Dispose();
            throw;
        }
    }

    private protected override nint Receive(FileDescriptor fd, byte* buffer, int capacity)
    {
        nint length = LibC.Read(fd, buffer, (nuint)capacity);
        // tun_put_user copies what fits and returns the length copied, not the frame's: a read
        // that fills the buffer may have cut a longer frame short. ReceiveBufferSize keeps one
        // byte spare so that a frame within the MTU never fills it.
        return length == capacity ? capacity + 1 : length;
    }

    private protected override bool TryRemoveLinkHeader(PacketBuffer frame)
    {
        if (!_vnetHeader) return true;
        if (frame.Length < VirtioNetHeader.Size || !VirtioNetHeader.TryRead(frame.Span, out frame.Offload)) return false;
        frame.TrimFront(VirtioNetHeader.Size);
        return true;
    }

    private protected override bool TryAddLinkHeader(PacketBuffer frame, out int headerLength)
    {
        headerLength = _vnetHeader ? VirtioNetHeader.Size : 0;
        if (headerLength == 0) return true;
        if (frame.Headroom < headerLength) return false;
        VirtioNetHeader.Write(frame.Prepend(headerLength), frame.Offload);
        return true;
    }
}
