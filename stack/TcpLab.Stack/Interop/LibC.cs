using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;

namespace TcpLab.Stack.Interop;

/// <summary>
/// Every libc function the project calls, declared once each, with the kernel's constants and
/// structures. This file is the whole platform boundary: swapping in Tmds.LibC later replaces
/// it and nothing else. Functions return -1 and set errno on failure (read it with
/// <see cref="SystemError.Last"/>); functions that create a descriptor return a
/// <see cref="FileDescriptor"/> that is invalid on failure.
/// <para>
/// Descriptors go in as <see cref="FileDescriptor"/>, which the marshaller passes as a
/// pointer-sized integer holding a reference for the call; the x86_64 and arm64 calling
/// conventions pass an int in the low half of that same register. They must not come back
/// that way: a C <c>int</c> return leaves the upper half of the register undefined, so the
/// functions that create descriptors return <c>int</c> and are wrapped here.
/// </para>
/// <para>Constants are the x86_64 Linux values (asm-generic where the architectures agree).</para>
/// </summary>
public static unsafe partial class LibC
{
    private const string Library = "libc";

    // ---- fcntl.h / unistd.h ----

    public const int O_RDONLY = 0x0;
    public const int O_RDWR = 0x2;
    public const int O_NONBLOCK = 0x800;
    public const int O_CLOEXEC = 0x80000;

    /// <summary>open(2) without O_CREAT, so the variadic mode argument is never read.</summary>
    public static FileDescriptor Open(string path, int flags) => new(OpenRaw(path, flags));

    [LibraryImport(Library, EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int OpenRaw(string path, int flags);

    [LibraryImport(Library, EntryPoint = "close", SetLastError = true)]
    public static partial int Close(int fd);

    [LibraryImport(Library, EntryPoint = "read", SetLastError = true)]
    public static partial nint Read(FileDescriptor fd, byte* buffer, nuint count);

    [LibraryImport(Library, EntryPoint = "write", SetLastError = true)]
    public static partial nint Write(FileDescriptor fd, byte* buffer, nuint count);

    /// <summary>
    /// ioctl(2). The third argument is either a pointer cast to nint or a plain value
    /// (TUNSETOFFLOAD takes its flags by value, TUNSETIFF a struct ifreq pointer).
    /// </summary>
    [LibraryImport(Library, EntryPoint = "ioctl", SetLastError = true)]
    public static partial int Ioctl(FileDescriptor fd, nuint request, nint argument);

    // ---- sched.h ----

    public const int CLONE_NEWNET = 0x40000000;

    /// <summary>setns(2): moves the calling thread (not the process) into a namespace.</summary>
    [LibraryImport(Library, EntryPoint = "setns", SetLastError = true)]
    public static partial int Setns(FileDescriptor namespaceFd, int namespaceType);

    // ---- sys/epoll.h, sys/eventfd.h ----

    public const int EPOLL_CLOEXEC = O_CLOEXEC;
    public const int EPOLL_CTL_ADD = 1;
    public const int EPOLL_CTL_DEL = 2;
    public const uint EPOLLIN = 0x001;

    public const int EFD_NONBLOCK = O_NONBLOCK;
    public const int EFD_CLOEXEC = O_CLOEXEC;

    public static FileDescriptor EpollCreate1(int flags) => new(EpollCreate1Raw(flags));

    [LibraryImport(Library, EntryPoint = "epoll_create1", SetLastError = true)]
    private static partial int EpollCreate1Raw(int flags);

    [LibraryImport(Library, EntryPoint = "epoll_ctl", SetLastError = true)]
    public static partial int EpollCtl(FileDescriptor epoll, int operation, FileDescriptor fd, EpollEvent* @event);

    [LibraryImport(Library, EntryPoint = "epoll_wait", SetLastError = true)]
    public static partial int EpollWait(FileDescriptor epoll, EpollEvent* events, int maxEvents, int timeoutMilliseconds);

    /// <summary>epoll_pwait2(2), Linux 5.11 and glibc 2.35: a timespec timeout, null to wait forever.</summary>
    [LibraryImport(Library, EntryPoint = "epoll_pwait2", SetLastError = true)]
    public static partial int EpollPwait2(FileDescriptor epoll, EpollEvent* events, int maxEvents, Timespec* timeout, void* signalMask);

    public static FileDescriptor EventFd(uint initialValue, int flags) => new(EventFdRaw(initialValue, flags));

    [LibraryImport(Library, EntryPoint = "eventfd", SetLastError = true)]
    private static partial int EventFdRaw(uint initialValue, int flags);

    // ---- sys/socket.h, linux/if_packet.h, linux/if_ether.h ----

    public const int AF_INET = 2;
    public const int AF_PACKET = 17;
    public const int SOCK_DGRAM = 2;
    public const int SOCK_RAW = 3;
    public const int SOCK_NONBLOCK = O_NONBLOCK;
    public const int SOCK_CLOEXEC = O_CLOEXEC;
    public const int MSG_TRUNC = 0x20;

    public const int SOL_PACKET = 263;
    public const int PACKET_ADD_MEMBERSHIP = 1;
    public const int PACKET_MR_PROMISC = 1;
    public const int PACKET_IGNORE_OUTGOING = 23;

    public const ushort ETH_P_ALL = 0x0003;

    public static FileDescriptor Socket(int domain, int type, int protocol) => new(SocketRaw(domain, type, protocol));

    [LibraryImport(Library, EntryPoint = "socket", SetLastError = true)]
    private static partial int SocketRaw(int domain, int type, int protocol);

    [LibraryImport(Library, EntryPoint = "bind", SetLastError = true)]
    public static partial int Bind(FileDescriptor socket, void* address, uint addressLength);

    [LibraryImport(Library, EntryPoint = "setsockopt", SetLastError = true)]
    public static partial int SetSockOpt(FileDescriptor socket, int level, int option, void* value, uint valueLength);

    [LibraryImport(Library, EntryPoint = "recv", SetLastError = true)]
    public static partial nint Recv(FileDescriptor socket, byte* buffer, nuint length, int flags);

    [LibraryImport(Library, EntryPoint = "send", SetLastError = true)]
    public static partial nint Send(FileDescriptor socket, byte* buffer, nuint length, int flags);

    public const int MSG_DONTWAIT = 0x40;
    /// <summary>include/linux/socket.h: sendto() on an unconnected TCP socket connects, with the data in the SYN if TCP Fast Open allows.</summary>
    public const int MSG_FASTOPEN = 0x20000000;

    [LibraryImport(Library, EntryPoint = "sendto", SetLastError = true)]
    public static partial nint SendTo(FileDescriptor socket, byte* buffer, nuint length, int flags, void* address, uint addressLength);

    [LibraryImport(Library, EntryPoint = "getsockname", SetLastError = true)]
    public static partial int GetSockName(FileDescriptor socket, void* address, uint* addressLength);

    // ---- linux/netlink.h, linux/sock_diag.h, linux/inet_diag.h ----

    public const int AF_NETLINK = 16;
    public const int NETLINK_SOCK_DIAG = 4;
    public const ushort NLM_F_REQUEST = 0x1;
    public const ushort NLM_F_DUMP = 0x300;     // NLM_F_ROOT | NLM_F_MATCH
    public const ushort NLMSG_ERROR = 2;
    public const ushort NLMSG_DONE = 3;
    public const ushort SOCK_DIAG_BY_FAMILY = 20;
    public const int NlMsgHeaderLength = 16;          // struct nlmsghdr
    public const int InetDiagRequestLength = 56;      // struct inet_diag_req_v2
    public const int InetDiagMessageLength = 72;      // struct inet_diag_msg

    // ---- net/if.h, linux/sockios.h ----

    public const int IFNAMSIZ = 16;
    public const nuint SIOCGIFMTU = 0x8921;
    public const nuint SIOCSIFMTU = 0x8922;

    /// <summary>if_nametoindex(3) in the calling thread's network namespace; 0 on failure.</summary>
    [LibraryImport(Library, EntryPoint = "if_nametoindex", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial uint IfNameToIndex(string name);

    // ---- linux/if_tun.h ----

    /// <summary>_IOW('T', 202, int)</summary>
    public const nuint TUNSETIFF = 0x400454ca;
    /// <summary>_IOW('T', 208, unsigned int)</summary>
    public const nuint TUNSETOFFLOAD = 0x400454d0;
    /// <summary>_IOW('T', 216, int)</summary>
    public const nuint TUNSETVNETHDRSZ = 0x400454d8;

    public const short IFF_TAP = 0x0002;
    public const short IFF_NO_PI = 0x1000;
    public const short IFF_VNET_HDR = 0x4000;

    /// <summary>"You can hand me unchecksummed packets" (the kernel may give user space partial checksums).</summary>
    public const uint TUN_F_CSUM = 0x01;
    /// <summary>"I can handle TSO for IPv4 packets" (the kernel may give user space TCP superframes).</summary>
    public const uint TUN_F_TSO4 = 0x02;

    /// <summary>htons(3).</summary>
    public static ushort HostToNetwork(ushort value) =>
        BitConverter.IsLittleEndian ? BinaryPrimitives.ReverseEndianness(value) : value;

    /// <summary>htonl(3).</summary>
    public static uint HostToNetwork(uint value) =>
        BitConverter.IsLittleEndian ? BinaryPrimitives.ReverseEndianness(value) : value;
}

/// <summary>
/// struct epoll_event as x86_64 lays it out: <c>__EPOLL_PACKED</c> in &lt;sys/epoll.h&gt; makes it 12
/// bytes with <c>data</c> at offset 4 (16 bytes, offset 8, on other architectures).
/// </summary>
[StructLayout(LayoutKind.Sequential, Pack = 4)]
public struct EpollEvent
{
    public uint Events;
    public ulong Data;

    /// <summary>Refuses to run where this layout would be wrong rather than corrupt memory.</summary>
    public static void EnsureLayoutMatchesPlatform()
    {
        if (RuntimeInformation.ProcessArchitecture != Architecture.X64)
            throw new PlatformNotSupportedException(
                $"struct epoll_event is declared with the packed x86_64 layout; this is {RuntimeInformation.ProcessArchitecture}");
    }
}

/// <summary>struct timespec (64-bit time_t).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct Timespec
{
    public long Seconds;
    public long Nanoseconds;
}

/// <summary>
/// struct ifreq: a 16-byte interface name followed by a 24-byte union (struct ifmap is its
/// largest member), 40 bytes in all. Only the union members this project uses are declared.
/// </summary>
[StructLayout(LayoutKind.Explicit, Size = 40)]
public unsafe struct IfReq
{
    [FieldOffset(0)] public fixed byte Name[LibC.IFNAMSIZ];
    /// <summary>ifr_flags: IFF_TAP | IFF_NO_PI ... for TUNSETIFF.</summary>
    [FieldOffset(16)] public short Flags;
    /// <summary>ifr_mtu for SIOCGIFMTU / SIOCSIFMTU.</summary>
    [FieldOffset(16)] public int Mtu;

    /// <summary>An ifreq naming <paramref name="interfaceName"/>; throws if the name cannot be a Linux device name.</summary>
    public static IfReq ForName(string interfaceName)
    {
        NetDeviceName.Validate(interfaceName);
        IfReq request = default;
        Encoding.ASCII.GetBytes(interfaceName, new Span<byte>(request.Name, LibC.IFNAMSIZ - 1));
        return request;
    }

    /// <summary>The name as the kernel left it (TUNSETIFF fills in a "%d" template).</summary>
    public readonly string GetName()
    {
        fixed (byte* name = Name)
        {
            var bytes = new ReadOnlySpan<byte>(name, LibC.IFNAMSIZ);
            int end = bytes.IndexOf((byte)0);
            return Encoding.ASCII.GetString(end < 0 ? bytes : bytes[..end]);
        }
    }
}

/// <summary>struct sockaddr_in (netinet/in.h), 16 bytes; port and address in network byte order.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct SockAddrIn
{
    public ushort Family;
    public ushort PortNetworkOrder;
    public uint AddressNetworkOrder;
    public ulong Zero;

    public static SockAddrIn Of(Wire.Ipv4Address address, ushort port) => new()
    {
        Family = LibC.AF_INET,
        PortNetworkOrder = LibC.HostToNetwork(port),
        AddressNetworkOrder = LibC.HostToNetwork(address.Value),
    };

    public Wire.Ipv4Address Address => new(LibC.HostToNetwork(AddressNetworkOrder));   // ntohl is htonl
    public ushort Port => LibC.HostToNetwork(PortNetworkOrder);
}

/// <summary>struct sockaddr_ll (linux/if_packet.h), 20 bytes.</summary>
[StructLayout(LayoutKind.Sequential)]
public unsafe struct SockAddrLl
{
    public ushort Family;
    /// <summary>Network byte order.</summary>
    public ushort Protocol;
    public int InterfaceIndex;
    public ushort HardwareType;
    public byte PacketType;
    public byte AddressLength;
    public fixed byte Address[8];
}

/// <summary>struct packet_mreq (linux/if_packet.h), 16 bytes.</summary>
[StructLayout(LayoutKind.Sequential)]
public unsafe struct PacketMreq
{
    public int InterfaceIndex;
    public ushort Type;
    public ushort AddressLength;
    public fixed byte Address[8];
}
