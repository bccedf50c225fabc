using TcpLab.Stack;
using TcpLab.Stack.Tcp;
using TcpLab.Stack.Time;

namespace TcpLab.Lab.Scenarios;

/// <summary>
/// The applications of a scenario on managed hosts: each named socket reads whatever arrives
/// (unless told to stop), sends what the steps give it as fast as the send buffer allows, and
/// records what it sent, received and failed with. Everything happens on the stacks' loop.
/// </summary>
internal sealed class ManagedApplications(IReadOnlyDictionary<string, NetworkStack> stacks, RunRecord runRecord, EventLoop loop, Instant origin)
    : ApplicationRunner<ManagedApplications.AppSocket>(loop, origin)
{
    private readonly RunRecord _record = runRecord;

    protected override void Listen(ListenStep step)
    {
        ListenSocket listener = stacks[step.Host].Tcp.Listen(Stack.Wire.Ipv4Address.Any, step.Port, step.Backlog, step.Options.ToOptions());
        if (step.AcceptAs is not { } name) return;   // an application that never accepts
        int accepted = 0;
        listener.Acceptable += l =>
        {
            while (l.TryAccept() is { } connection)
            {
                string socketName = AcceptedName(name, ++accepted);
                Adopt(socketName, step.Host, connection);
            }
        };
    }

    protected override void Connect(ConnectStep step)
    {
        NetworkStack stack = stacks[step.Host];
        try
        {
            if (step.FastOpenData is not { } data)
            {
                Adopt(step.Socket, step.Host, stack.Tcp.Connect(step.Target, step.Port, step.Options.ToOptions(), step.LocalPort));
                return;
            }
            // sendto(MSG_FASTOPEN): what the send buffer took rides in the SYN if a cookie allows,
            // else follows the handshake; the rest waits for the connection like any send.
            TcpConnection connection = stack.Tcp.ConnectWithData(step.Target, step.Port, data, out int queued, step.Options.ToOptions(), step.LocalPort);
            AppSocket socket = Adopt(step.Socket, step.Host, connection);
            _record.Socket(step.Socket, step.Host).RecordSent(data.AsSpan(0, queued));
            if (queued < data.Length) socket.Send(data[queued..]);
        }
        catch (TcpException e)
        {
            _record.Socket(step.Socket, step.Host).RecordError(e.Errno, Now);
        }
    }

    private AppSocket Adopt(string name, string host, TcpConnection connection)
    {
        NamedSocket record = _record.Socket(name, host);
        var socket = new AppSocket(this, connection, record);
        Name(name, socket);
        _record.Bind(name, connection.Tuple, connection.ConnectionId, Now);
        socket.ReadAvailable();
        return socket;
    }

    /// <summary>One application socket: an observer of its connection.</summary>
    internal sealed class AppSocket : ITcpConnectionObserver, IScenarioSocket
    {
        private readonly ManagedApplications _owner;
        private readonly NamedSocket _record;
        private readonly Queue<byte[]> _toSend = new();
        private int _sentOfFirst;   // bytes of the first queued chunk already taken by TCP
        private readonly byte[] _readBuffer = new byte[64 * 1024];
        private bool _reading = true;
        private SocketAction? _afterSending;

        public AppSocket(ManagedApplications owner, TcpConnection connection, NamedSocket record)
        {
            _owner = owner;
            _record = record;
            Connection = connection;
            connection.Observer = this;
        }

        public TcpConnection Connection { get; }

        public void Send(byte[] data)
        {
            _toSend.Enqueue(data);
            Flush();
        }

        public void Do(SocketAction action)
        {
            switch (action)
            {
                case SocketAction.StopReading:
                    _reading = false;
                    break;
                case SocketAction.ResumeReading:
                    _reading = true;
                    ReadAvailable();
                    break;
                case SocketAction.Shutdown or SocketAction.Close when _toSend.Count > 0:
                    // Like close() after a blocking send(): the FIN follows the data the application still holds.
                    _afterSending = action;
                    break;
                case SocketAction.Shutdown:
                    Connection.ShutdownSend();
                    break;
                case SocketAction.Close:
                    ReadAvailable();
                    Connection.Close();
                    break;
                case SocketAction.Abort:
                    Connection.Abort();
                    break;
            }
        }

        private void Flush()
        {
            try
            {
                while (_toSend.TryPeek(out byte[]? chunk))
                {
                    if (Connection.State is TcpState.SynSent or TcpState.SynReceived) return;   // connect() not done
                    int written = Connection.Write(chunk.AsSpan(_sentOfFirst));
                    if (written == 0) return;
                    _record.RecordSent(chunk.AsSpan(_sentOfFirst, written));
                    _sentOfFirst += written;
                    if (_sentOfFirst < chunk.Length) return;
                    _toSend.Dequeue();
                    _sentOfFirst = 0;
                }
                if (_afterSending is { } action)
                {
                    _afterSending = null;
                    Do(action);
                }
            }
            catch (TcpException e)
            {
                _record.RecordError(e.Errno, _owner.Now);
                _toSend.Clear();
            }
        }

        public void ReadAvailable()
        {
            if (!_reading) return;
            try
            {
                int n;
                while ((n = Connection.Read(_readBuffer)) > 0) _record.RecordReceived(_readBuffer.AsSpan(0, n));
            }
            catch (TcpException e)
            {
                _record.RecordError(e.Errno, _owner.Now);
            }
        }

        // The application runs after the stack has finished with the segment that woke it
        // (as a process woken by sk_data_ready runs after the softirq), so it is posted.
        public void OnReadable(TcpConnection connection) => _owner.Loop.Post(ReadAvailable);

        public void OnWritable(TcpConnection connection) => _owner.Loop.Post(Flush);

        public void OnStateChanged(TcpConnection connection, TcpState from, TcpState to)
        {
            if (to == TcpState.Established) _owner.Loop.Post(Flush);
        }

        public void OnClosed(TcpConnection connection)
        {
            if (connection.Error != Errno.None) _record.RecordError(connection.Error, _owner.Now);
        }
    }
}
