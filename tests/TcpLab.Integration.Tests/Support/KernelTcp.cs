using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using TcpLab.Stack.Interop;
using TcpLab.Stack.Wire;

namespace TcpLab.Integration.Tests.Support;

/// <summary>
/// What .NET's Socket does not offer for the kernel's TCP: sendto with MSG_FASTOPEN (the
/// runtime refuses flags it does not know), the Fast Open socket options, and the kernel's
/// own counters (/proc/net/netstat of a namespace).
/// </summary>
internal static unsafe class KernelTcp
{
    private const int IPPROTO_TCP = 6;
    /// <summary>include/uapi/linux/tcp.h: the Fast Open queue length of a listener.</summary>
    public const int TCP_FASTOPEN = 23;

    /// <summary>
    /// sendto(fd, data, MSG_FASTOPEN, to) on a blocking, unconnected socket: connects (with the
    /// data in the SYN when a cookie is cached) and returns once the data is sent.
    /// </summary>
    public static int SendToFastOpen(Socket socket, ReadOnlySpan<byte> data, IPEndPoint to)
    {
        using var fd = new FileDescriptor((int)socket.Handle, ownsHandle: false);
        SockAddrIn address = SockAddrIn.Of(Ipv4Address.Parse(to.Address.ToString()), (ushort)to.Port);
        nint sent;
        fixed (byte* buffer = data)
            sent = LibC.SendTo(fd, buffer, (nuint)data.Length, LibC.MSG_FASTOPEN, &address, (uint)sizeof(SockAddrIn));
        if (sent < 0) throw new SocketException(Marshal.GetLastPInvokeError());
        return (int)sent;
    }

    /// <summary>setsockopt(TCP_FASTOPEN, queue length) on a socket about to listen.</summary>
    public static void EnableFastOpen(Socket listener, int queueLength) =>
        listener.SetRawSocketOption(IPPROTO_TCP, TCP_FASTOPEN, BitConverter.GetBytes(queueLength));

    /// <summary>One TcpExt counter of the kernel in <paramref name="peer"/>'s namespace (as nstat names it without the prefix).</summary>
    public static long TcpExt(LinuxPeer peer, string name)
    {
        var result = peer.Lab.Namespace.Exec("cat", "/proc/net/netstat");
        if (!result.Succeeded) throw new InvalidOperationException(result.Describe());
        string[] lines = result.StandardOutput.Split('\n');
        string[] names = lines.First(l => l.StartsWith("TcpExt:", StringComparison.Ordinal)).Split(' ');
        string[] values = lines.Where(l => l.StartsWith("TcpExt:", StringComparison.Ordinal)).ElementAt(1).Split(' ');
        return long.Parse(values[Array.IndexOf(names, name)], System.Globalization.CultureInfo.InvariantCulture);
    }
}
