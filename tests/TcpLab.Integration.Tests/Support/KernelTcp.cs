using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace TcpLab.Integration.Tests.Support;

/// <summary>
/// What .NET's Socket does not offer for the kernel's TCP: sendto with MSG_FASTOPEN (the
/// runtime refuses flags it does not know), the Fast Open socket options, and the kernel's
/// own counters (/proc/net/netstat of a namespace).
/// </summary>
internal static unsafe partial class KernelTcp
{
    /// <summary>include/linux/socket.h: send data in the SYN (TCP Fast Open).</summary>
    public const int MSG_FASTOPEN = 0x20000000;
    private const int IPPROTO_TCP = 6;
    /// <summary>include/uapi/linux/tcp.h: the Fast Open queue length of a listener.</summary>
    public const int TCP_FASTOPEN = 23;
    private const ushort AF_INET = 2;

    [LibraryImport("libc", EntryPoint = "sendto", SetLastError = true)]
    private static partial nint SendTo(int fd, byte* buffer, nuint length, int flags, byte* address, uint addressLength);

    /// <summary>
    /// sendto(fd, data, MSG_FASTOPEN, to) on a blocking, unconnected socket: connects (with the
    /// data in the SYN when a cookie is cached) and returns once the data is sent.
    /// </summary>
    public static int SendToFastOpen(Socket socket, ReadOnlySpan<byte> data, IPEndPoint to)
    {
        Span<byte> sockaddr = stackalloc byte[16];
        sockaddr.Clear();
        BinaryPrimitives.WriteUInt16LittleEndian(sockaddr, AF_INET);
        BinaryPrimitives.WriteUInt16BigEndian(sockaddr[2..], (ushort)to.Port);
        to.Address.GetAddressBytes().CopyTo(sockaddr[4..]);
        nint sent;
        fixed (byte* buffer = data)
        fixed (byte* address = sockaddr)
            sent = SendTo((int)socket.Handle, buffer, (nuint)data.Length, MSG_FASTOPEN, address, (uint)sockaddr.Length);
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
