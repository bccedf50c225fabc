using System.Net;
using System.Net.Sockets;
using TcpLab.Lab.Scenarios;
using TcpLab.Stack;
using TcpLab.Stack.Interop;
using TcpLab.Stack.Tcp;
using TcpLab.Stack.Time;
using TcpLab.Stack.Wire;

namespace TcpLab.Lab.Kernel;

/// <summary>
/// The applications of a scenario on kernel hosts: ordinary sockets created in each host's
/// namespace, doing what the steps say, the way the managed applications do it: every named
/// socket reads whatever arrives (unless told to stop), sends what it is given, and records
/// what it sent, received and failed with. Calls are started on the loop and their
/// continuations return to it (its SynchronizationContext), so no locks are needed.
/// </summary>
internal sealed class KernelApplications(IReadOnlyDictionary<string, KernelHost> hosts, RunRecord runRecord, RealTimeEventLoop loop, Instant origin)
    : ApplicationRunner<KernelApplications.KernelSocket>(loop, origin)
{
    private const int IpProtoTcp = 6;
    private const int TcpSynCnt = 7;   // TCP_SYNCNT
    private const int TcpFastOpen = 23;   // TCP_FASTOPEN: a listener's Fast Open queue length

    private readonly RunRecord _record = runRecord;
    private readonly RealTimeEventLoop _loop = loop;
    private readonly List<Socket> _listeners = new();

    protected override void Listen(ListenStep step)
    {
        KernelHost host = hosts[step.Host];
        Socket listener = host.CreateTcpSocket();
        _listeners.Add(listener);
        listener.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        Apply(listener, step.Options);
        listener.Bind(new IPEndPoint(ToIp(host.Address), step.Port));
        listener.Listen(step.Backlog);
        if (step.AcceptAs is { } name) _ = AcceptLoop(listener, step.Host, name);
    }

    private async Task AcceptLoop(Socket listener, string host, string name)
    {
        for (int accepted = 1; ; accepted++)
        {
            Socket connection;
            try
            {
                connection = await listener.AcceptAsync();
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                return;   // the run is over
            }
            Adopt(AcceptedName(name, accepted), host, connection).Start();
        }
    }

    protected override void Connect(ConnectStep step)
    {
        KernelHost host = hosts[step.Host];
        Socket socket = host.CreateTcpSocket();
        Apply(socket, step.Options);
        NamedSocket record = _record.Socket(step.Socket, step.Host);
        var app = new KernelSocket(this, socket, record);
        Name(step.Socket, app);
        try
        {
            if (step.LocalPort != 0)
            {
                // As the managed runner does: a chosen port is bound with SO_REUSEADDR, so conflicts surface at connect().
                socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
                socket.Bind(new IPEndPoint(ToIp(host.Address), step.LocalPort));
            }
        }
        catch (SocketException e)
        {
            record.RecordError(ToErrno(e), Now);
            return;
        }
        if (step.FastOpenData is { } data) app.ConnectWithFastOpen(step.Target, step.Port, data);
        else _ = app.ConnectAsync(new IPEndPoint(ToIp(step.Target), step.Port));
    }

    private KernelSocket Adopt(string name, string host, Socket connection)
    {
        var app = new KernelSocket(this, connection, _record.Socket(name, host));
        Name(name, app);
        return app;
    }

    private static void Apply(Socket socket, SocketOptionsSpec options)
    {
        if (options.KeepAlive is { } keepAlive) socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.KeepAlive, keepAlive);
        if (options.KeepIdle is { } idle) socket.SetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveTime, (int)idle.TotalSeconds);
        if (options.KeepInterval is { } interval) socket.SetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveInterval, (int)interval.TotalSeconds);
        if (options.KeepCount is { } count) socket.SetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveRetryCount, count);
        if (options.Linger is { } linger) socket.LingerState = new LingerOption(true, (int)linger.TotalSeconds);
        if (options.NoDelay is { } noDelay) socket.NoDelay = noDelay;
        if (options.ReceiveBuffer is { } receive) socket.ReceiveBufferSize = receive;
        if (options.SendBuffer is { } send) socket.SendBufferSize = send;
        if (options.SynRetries is { } syn) socket.SetRawSocketOption(IpProtoTcp, TcpSynCnt, BitConverter.GetBytes(syn));
        if (options.FastOpenQueue is { } queue) socket.SetRawSocketOption(IpProtoTcp, TcpFastOpen, BitConverter.GetBytes(queue));
    }

    /// <summary>Closes every socket still open (the run is over).</summary>
    public void CloseAll()
    {
        foreach (Socket listener in _listeners) listener.Dispose();
        foreach (KernelSocket socket in AllSockets) socket.Dispose();
    }

    private static IPAddress ToIp(Ipv4Address address) => new(BitConverter.GetBytes(System.Buffers.Binary.BinaryPrimitives.ReverseEndianness(address.Value)));

    private static Ipv4Address FromIp(EndPoint? endPoint) =>
        endPoint is IPEndPoint ip ? Ipv4Address.Parse(ip.Address.ToString()) : Ipv4Address.Any;

    private static ushort PortOf(EndPoint? endPoint) => (ushort)((endPoint as IPEndPoint)?.Port ?? 0);

    /// <summary>The errno behind a .NET socket error, as the managed stack would report it.</summary>
    internal static Errno ToErrno(SocketException e) => e.SocketErrorCode switch
    {
        SocketError.ConnectionRefused => Errno.ECONNREFUSED,
        SocketError.TimedOut => Errno.ETIMEDOUT,
        SocketError.ConnectionReset => Errno.ECONNRESET,
        SocketError.HostUnreachable => Errno.EHOSTUNREACH,
        SocketError.NetworkUnreachable => Errno.ENETUNREACH,
        SocketError.AddressNotAvailable => Errno.EADDRNOTAVAIL,
        SocketError.AddressAlreadyInUse => Errno.EADDRINUSE,
        SocketError.ConnectionAborted => Errno.ECONNABORTED,
        SocketError.Shutdown => Errno.EPIPE,
        SocketError.NotConnected => Errno.ENOTCONN,
        _ => Errno.EIO,
    };

    /// <summary>One application socket on a kernel host.</summary>
    internal sealed class KernelSocket(KernelApplications owner, Socket socket, NamedSocket record) : IDisposable, IScenarioSocket
    {
        private readonly Queue<byte[]> _toSend = new();
        private readonly byte[] _readBuffer = new byte[64 * 1024];
        private FileDescriptor? _watched;
        private bool _connected;
        private bool _reading = true;
        private bool _endOfStream;
        private bool _sending;
        private bool _closed;
        private SocketAction? _afterSending;

        public async Task ConnectAsync(EndPoint target)
        {
            try
            {
                await socket.ConnectAsync(target);
            }
            catch (SocketException e)
            {
                record.RecordError(ToErrno(e), owner.Now);
                return;
            }
            catch (ObjectDisposedException)
            {
                return;
            }
            Start();
        }

        /// <summary>
        /// sendto(MSG_FASTOPEN | MSG_DONTWAIT) on the unconnected socket: the kernel connects,
        /// with the data in the SYN if it holds a Fast Open cookie for the server (the call
        /// returns how much went), otherwise with a SYN asking for one (EINPROGRESS, nothing
        /// taken: tcp_sendmsg_fastopen). What did not go is sent like any data: a non-blocking
        /// send() fails with EAGAIN until the handshake completes, so it waits for it.
        /// </summary>
        public unsafe void ConnectWithFastOpen(Ipv4Address address, ushort port, byte[] data)
        {
            using var fd = new FileDescriptor((int)socket.Handle, ownsHandle: false);
            SockAddrIn to = SockAddrIn.Of(address, port), local = default;
            uint localLength = (uint)sizeof(SockAddrIn);
            nint sent;
            fixed (byte* buffer = data)
                sent = LibC.SendTo(fd, buffer, (nuint)data.Length, LibC.MSG_FASTOPEN | LibC.MSG_DONTWAIT, &to, (uint)sizeof(SockAddrIn));
            Errno error = sent < 0 ? SystemError.Last : Errno.None;
            if (error is not (Errno.None or Errno.EINPROGRESS) || LibC.GetSockName(fd, &local, &localLength) < 0)
            {
                record.RecordError(error == Errno.None ? SystemError.Last : error, owner.Now);
                return;
            }
            int taken = (int)Math.Max(sent, 0);
            record.RecordSent(data.AsSpan(0, taken));
            if (taken < data.Length) _toSend.Enqueue(data[taken..]);
            // The socket is bound and hashed now (tcp_v4_connect): it has its tuple before the handshake ends.
            Start(new FourTuple(local.Address, local.Port, address, port));
        }

        /// <summary>The connection exists (or, after sendto(MSG_FASTOPEN), is on its way): name it, read, send what is waiting.</summary>
        public void Start(FourTuple? known = null)
        {
            _connected = true;
            FourTuple tuple = known ?? new FourTuple(FromIp(socket.LocalEndPoint), PortOf(socket.LocalEndPoint), FromIp(socket.RemoteEndPoint), PortOf(socket.RemoteEndPoint));
            owner._record.Bind(record.Name, tuple, null, owner.Now);
            socket.Blocking = false;   // reads happen when the loop's epoll says so; sends stay .NET's async ones
            StartReading();
            _ = SendLoop();
        }

        public void Send(byte[] data)
        {
            _toSend.Enqueue(data);
            if (_connected) _ = SendLoop();
        }

        public void Do(SocketAction action)
        {
            if (_closed) return;
            switch (action)
            {
                case SocketAction.StopReading:
                    _reading = false;
                    StopReading();
                    break;
                case SocketAction.ResumeReading:
                    _reading = true;
                    if (_connected) StartReading();
                    break;
                case SocketAction.Shutdown or SocketAction.Close when _toSend.Count > 0 || _sending:
                    _afterSending = action;   // like close() after a blocking send(): the FIN follows the data
                    break;
                case SocketAction.Shutdown:
                    Try(() => socket.Shutdown(SocketShutdown.Send));
                    break;
                case SocketAction.Close:
                    // An application closing after end-of-file has read everything; the managed runner does the same.
                    if (_reading && _connected) ReadAvailable();
                    Dispose();
                    break;
                case SocketAction.Abort:
                    // SO_LINGER {on, 0} then close(): the kernel sends RST and skips TIME_WAIT.
                    Try(() => socket.LingerState = new LingerOption(true, 0));
                    Dispose();
                    break;
            }
        }

        /// <summary>
        /// Reads as an application blocked in read() would, but on the loop: the loop's epoll
        /// watches the socket while the application reads, and everything queued is taken at once.
        /// While it does not read, nothing is taken, so the kernel's receive buffer fills and its
        /// window closes, as it would for a stalled application.
        /// </summary>
        private void StartReading()
        {
            if (_watched is not null || !_reading || _closed || _endOfStream) return;
            _watched = new FileDescriptor((int)socket.Handle, ownsHandle: false);
            owner._loop.RegisterReadable(_watched, ReadAvailable);
        }

        private void StopReading()
        {
            if (_watched is null) return;
            owner._loop.UnregisterReadable(_watched);
            _watched.Dispose();
            _watched = null;
        }

        private void ReadAvailable()
        {
            while (_reading && !_closed)
            {
                int n = socket.Receive(_readBuffer, 0, _readBuffer.Length, SocketFlags.None, out SocketError error);
                if (error == SocketError.WouldBlock) return;
                if (error != SocketError.Success)
                {
                    record.RecordError(ToErrno(new SocketException((int)error)), owner.Now);
                    break;
                }
                if (n == 0)
                {
                    _endOfStream = true;
                    break;
                }
                record.RecordReceived(_readBuffer.AsSpan(0, n));
            }
            StopReading();
        }

        private async Task SendLoop()
        {
            if (_sending) return;
            _sending = true;
            try
            {
                while (_toSend.TryDequeue(out byte[]? chunk))
                {
                    int sent = await socket.SendAsync(chunk);
                    record.RecordSent(chunk.AsSpan(0, sent));
                }
            }
            catch (SocketException e)
            {
                record.RecordError(ToErrno(e), owner.Now);
                _toSend.Clear();
            }
            catch (ObjectDisposedException) { }
            finally
            {
                _sending = false;
            }
            if (_afterSending is { } action)
            {
                _afterSending = null;
                Do(action);
            }
        }

        private void Try(Action action)
        {
            try
            {
                action();
            }
            catch (SocketException e)
            {
                record.RecordError(ToErrno(e), owner.Now);
            }
        }

        public void Dispose()
        {
            StopReading();   // before close(): the number may be reused at once
            _closed = true;
            socket.Dispose();
        }
    }
}
