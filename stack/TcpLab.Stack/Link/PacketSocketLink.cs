using TcpLab.Stack.Buffers;
using TcpLab.Stack.Interop;
using TcpLab.Stack.Time;

namespace TcpLab.Stack.Link;

/// <summary>
/// An existing network interface (typically one end of a veth pair) used as a raw Ethernet
/// port through an AF_PACKET SOCK_RAW socket, for when the stack's peer is not the local kernel
/// but something on the far side of that interface.
/// <para>
/// The interface joins promiscuous mode for as long as the link is open (PACKET_MR_PROMISC; the
/// kernel drops the membership when the socket closes), since the stack answers for its own MAC
/// rather than the interface's. PACKET_IGNORE_OUTGOING keeps the link from reading back its own
/// transmissions.
/// </para>
/// <para>
/// The socket sees frames as the interface received them, offloads included: a kernel peer over
/// veth sends TCP with partial checksums and, with TSO/GSO on, superframes larger than the MTU
/// (counted as <see cref="FileDescriptorLink.RxTruncated"/>). Turn those offloads off on the
/// peer (ethtool -K PEER tx off tso off gso off) or use a <see cref="TapDevice"/> with a
/// virtio-net header instead. The kernel of the interface's own namespace also sees every frame,
/// so leave the interface without addresses there.
/// </para>
/// </summary>
public sealed unsafe class PacketSocketLink : FileDescriptorLink
{
    private PacketSocketLink(RealTimeEventLoop loop, PacketBufferPool pool, FileDescriptor fd, LinkInfo info)
        : base(loop, pool, fd, info) { }

    /// <summary>Binds to <paramref name="ifName"/> in the calling thread's network namespace.</summary>
    /// <param name="pool">Buffers of at least <see cref="ReceiveBufferSize"/>(the interface's MTU) bytes.</param>
    public static PacketSocketLink Open(string ifName, RealTimeEventLoop loop, PacketBufferPool pool)
    {
        Validate(ifName, loop, pool);
        return Create(ifName, loop, pool);
    }

    /// <summary>Binds to <paramref name="ifName"/> inside the network namespace <paramref name="netnsPath"/>.</summary>
    public static PacketSocketLink OpenInNamespace(string netnsPath, string ifName, RealTimeEventLoop loop, PacketBufferPool pool)
    {
        Validate(ifName, loop, pool);
        return NetworkNamespaceThread.Run(netnsPath, () => Create(ifName, loop, pool));
    }

    /// <summary>
    /// The pool buffer size that receives every frame of an interface with this MTU whole:
    /// default headroom, an Ethernet header with a VLAN tag, and the MTU. (No spare byte as for a
    /// TAP: MSG_TRUNC reports a frame's real length.)
    /// </summary>
    public static int ReceiveBufferSize(int mtu) => PacketBuffer.DefaultHeadroom + EthernetHeaderWithVlanTag + mtu;

    private static void Validate(string ifName, RealTimeEventLoop loop, PacketBufferPool pool)
    {
        NetDeviceName.Validate(ifName);
        ArgumentNullException.ThrowIfNull(loop);
        ArgumentNullException.ThrowIfNull(pool);
    }

    private static PacketSocketLink Create(string ifName, RealTimeEventLoop loop, PacketBufferPool pool)
    {
        // Protocol 0: receive nothing until bind names the interface, so no frame of another
        // interface slips in first (packet(7)).
        FileDescriptor fd = LibC.Socket(LibC.AF_PACKET, LibC.SOCK_RAW | LibC.SOCK_NONBLOCK | LibC.SOCK_CLOEXEC, 0);
        if (fd.IsInvalid) throw SystemError.LastAsException("socket AF_PACKET");
        try
        {
            int index = (int)LibC.IfNameToIndex(ifName);
            if (index == 0) throw SystemError.LastAsException($"if_nametoindex {ifName}");

            int on = 1;
            if (LibC.SetSockOpt(fd, LibC.SOL_PACKET, LibC.PACKET_IGNORE_OUTGOING, &on, sizeof(int)) < 0)
                throw SystemError.LastAsException($"PACKET_IGNORE_OUTGOING {ifName}");

            var address = new SockAddrLl
            {
                Family = LibC.AF_PACKET,
                Protocol = LibC.HostToNetwork(LibC.ETH_P_ALL),
                InterfaceIndex = index,
            };
            if (LibC.Bind(fd, &address, (uint)sizeof(SockAddrLl)) < 0) throw SystemError.LastAsException($"bind AF_PACKET {ifName}");

            var promiscuous = new PacketMreq { InterfaceIndex = index, Type = LibC.PACKET_MR_PROMISC };
            if (LibC.SetSockOpt(fd, LibC.SOL_PACKET, LibC.PACKET_ADD_MEMBERSHIP, &promiscuous, (uint)sizeof(PacketMreq)) < 0)
                throw SystemError.LastAsException($"PACKET_ADD_MEMBERSHIP PACKET_MR_PROMISC {ifName}");

            int mtu = NetDeviceControl.GetMtu(ifName);
            EnsureBuffersFit(pool, ReceiveBufferSize(mtu), $"{ifName} with MTU {mtu}");
            return new PacketSocketLink(loop, pool, fd, new LinkInfo(ifName, mtu));
        }
        catch
        {
            fd.Dispose();
            throw;
        }
    }

    // MSG_TRUNC: return the frame's real length even when it did not fit (packet(7)).
    private protected override nint Receive(FileDescriptor fd, byte* buffer, int capacity) =>
        LibC.Recv(fd, buffer, (nuint)capacity, LibC.MSG_TRUNC);
}
