using System.Buffers.Binary;
using TcpLab.Stack.Tcp;
using TcpLab.Stack.Wire;

namespace TcpLab.Stack.Interop;

/// <summary>One TCP socket of a kernel, as sock_diag reports it (struct inet_diag_msg).</summary>
public readonly record struct KernelTcpSocket(TcpState State, Ipv4Address LocalAddress, ushort LocalPort, Ipv4Address RemoteAddress, ushort RemotePort)
{
    public FourTuple Tuple => new(LocalAddress, LocalPort, RemoteAddress, RemotePort);
}

/// <summary>
/// A NETLINK_SOCK_DIAG socket in one network namespace: the interface `ss` uses to list the
/// kernel's TCP sockets, TIME_WAIT entries included (for those the state is tw_substate, so an
/// orphaned FIN_WAIT2 shows as such). The namespace is fixed when the socket is created.
/// </summary>
public sealed unsafe class InetDiag : IDisposable
{
    private readonly FileDescriptor _socket;
    private readonly byte[] _buffer = new byte[64 * 1024];
    private uint _sequence;

    private InetDiag(FileDescriptor socket) => _socket = socket;

    /// <summary>Opens the socket in the namespace at <paramref name="netnsPath"/> (/run/netns/NAME).</summary>
    public static InetDiag OpenInNamespace(string netnsPath) => NetworkNamespaceThread.Run(netnsPath, () =>
    {
        FileDescriptor socket = LibC.Socket(LibC.AF_NETLINK, LibC.SOCK_DGRAM | LibC.SOCK_CLOEXEC, LibC.NETLINK_SOCK_DIAG);
        if (socket.IsInvalid) throw SystemError.LastAsException("socket(AF_NETLINK, NETLINK_SOCK_DIAG)");
        return new InetDiag(socket);
    });

    /// <summary>Every IPv4 TCP socket in every state (a SOCK_DIAG_BY_FAMILY dump).</summary>
    public List<KernelTcpSocket> DumpTcp()
    {
        SendDumpRequest();
        var sockets = new List<KernelTcpSocket>();
        while (true)
        {
            nint received;
            fixed (byte* p = _buffer) received = LibC.Recv(_socket, p, (nuint)_buffer.Length, 0);
            if (received < 0) throw SystemError.LastAsException("recv(NETLINK_SOCK_DIAG)");
            for (int offset = 0; offset + LibC.NlMsgHeaderLength <= received;)
            {
                ReadOnlySpan<byte> message = _buffer.AsSpan(offset, (int)received - offset);
                int length = BinaryPrimitives.ReadInt32LittleEndian(message);
                ushort type = BinaryPrimitives.ReadUInt16LittleEndian(message[4..]);
                if (type == LibC.NLMSG_DONE) return sockets;
                if (type == LibC.NLMSG_ERROR)
                    throw new ErrnoException("sock_diag dump", (Errno)(-BinaryPrimitives.ReadInt32LittleEndian(message[LibC.NlMsgHeaderLength..])));
                if (type == LibC.SOCK_DIAG_BY_FAMILY && length >= LibC.NlMsgHeaderLength + LibC.InetDiagMessageLength
                    && Parse(message[LibC.NlMsgHeaderLength..]) is { } socket)
                {
                    sockets.Add(socket);
                }
                if (length < LibC.NlMsgHeaderLength) break;
                offset += (length + 3) & ~3;   // NLMSG_ALIGN
            }
        }
    }

    private void SendDumpRequest()
    {
        Span<byte> request = stackalloc byte[LibC.NlMsgHeaderLength + LibC.InetDiagRequestLength];
        request.Clear();
        BinaryPrimitives.WriteInt32LittleEndian(request, request.Length);                       // nlmsg_len
        BinaryPrimitives.WriteUInt16LittleEndian(request[4..], LibC.SOCK_DIAG_BY_FAMILY);        // nlmsg_type
        BinaryPrimitives.WriteUInt16LittleEndian(request[6..], LibC.NLM_F_REQUEST | LibC.NLM_F_DUMP);
        BinaryPrimitives.WriteUInt32LittleEndian(request[8..], ++_sequence);                    // nlmsg_seq
        Span<byte> body = request[LibC.NlMsgHeaderLength..];
        body[0] = 2;                                                                            // sdiag_family AF_INET
        body[1] = 6;                                                                            // sdiag_protocol IPPROTO_TCP
        BinaryPrimitives.WriteUInt32LittleEndian(body[4..], uint.MaxValue);                     // idiag_states: all
        fixed (byte* p = request)
        {
            if (LibC.Send(_socket, p, (nuint)request.Length, 0) < 0) throw SystemError.LastAsException("send(NETLINK_SOCK_DIAG)");
        }
    }

    /// <summary>struct inet_diag_msg: family, state, timer, retrans, then inet_diag_sockid (ports and addresses big-endian).</summary>
    private static KernelTcpSocket? Parse(ReadOnlySpan<byte> msg)
    {
        if (msg[0] != 2 || !LinuxTcpStates.TryFromNumber(msg[1], out TcpState state)) return null;
        ReadOnlySpan<byte> id = msg[4..];
        return new KernelTcpSocket(state,
            Ipv4Address.Read(id[4..]), BinaryPrimitives.ReadUInt16BigEndian(id),
            Ipv4Address.Read(id[20..]), BinaryPrimitives.ReadUInt16BigEndian(id[2..]));
    }

    public void Dispose() => _socket.Dispose();
}
