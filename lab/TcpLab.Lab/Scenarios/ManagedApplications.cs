using TcpLab.Stack;
using TcpLab.Stack.Tcp;
using TcpLab.Stack.Time;

namespace TcpLab.Lab.Scenarios;

/// <summary>
/// The applications of a scenario on managed hosts: each named socket reads whatever arrives
/// (unless told to stop), sends what the steps give it as fast as the send buffer allows, and
/// records what it sent, received and failed with. Steps run at their time, or when a socket
/// reaches a state after it. Everything happens on the simulation's loop.
/// </summary>
internal sealed class ManagedApplications
{
    private readonly IReadOnlyDictionary<string, NetworkStack> _stacks;
    private readonly RunRecord _record;
    private readonly EventLoop _loop;
    private readonly Dictionary<string, AppSocket> _sockets = new();
    private readonly List<Step> _waiting = new();   // steps whose time came but whose condition has not

    private readonly Action<CraftedSegment> _inject;

    /// <param name="inject">Puts a crafted segment on the wire (the lab owns the wire, not the applications).</param>
    public ManagedApplications(IReadOnlyDictionary<string, NetworkStack> stacks, RunRecord record, EventLoop loop, Action<CraftedSegment> inject)
    {
        _inject = inject;
        _stacks = stacks;
        _record = record;
        _loop = loop;
        foreach (NetworkStack stack in stacks.Values) stack.Tcp.StateChanged += _ => RunWaitingSteps();
    }

    private TimeSpan Now => _loop.Now - Instant.Zero;

    /// <summary>Arms a timer for every step of the scenario.</summary>
    public void Schedule(IEnumerable<Step> steps)
    {
        foreach (Step step in steps)
        {
            Step s = step;
            _loop.CreateTimer(() => Due(s)).Arm(Instant.Zero + step.At);
        }
    }

    private void Due(Step step)
    {
        if (step.When is null || ConditionHolds(step.When)) Execute(step);
        else _waiting.Add(step);
    }

    private bool ConditionHolds(StateCondition condition) =>
        _sockets.TryGetValue(condition.Socket, out AppSocket? s) && s.Connection.State == condition.State;

    private void RunWaitingSteps()
    {
        for (int i = 0; i < _waiting.Count; i++)
        {
            if (!ConditionHolds(_waiting[i].When!)) continue;
            Step step = _waiting[i];
            _waiting.RemoveAt(i--);
            // After the state change has been fully processed, as an application would react.
            _loop.Post(() => Execute(step));
        }
    }

    private void Execute(Step step)
    {
        switch (step)
        {
            case ListenStep listen:
                Listen(listen);
                break;
            case ConnectStep connect:
                Connect(connect);
                break;
            case SendStep send:
                Socket(send.Socket).Send(send.Data);
                break;
            case SocketStep action:
                Socket(action.Socket).Do(action.Action);
                break;
            case InjectStep inject:
                _inject(Craft(inject));
                break;
        }
    }

    private CraftedSegment Craft(InjectStep step)
    {
        if (step.IntoSocket is not { } name)
            return new(_stacks[step.Host].Interfaces[0].Address.Address, step.FromPort, step.To, step.Port, step.Flags, step.Seq, step.Ack);
        // From the socket's peer, in its window: the sequence number it expects next, acknowledging all it sent.
        TcpConnection connection = Socket(name).Connection;
        FourTuple tuple = connection.Tuple;
        return new(tuple.RemoteAddress, tuple.RemotePort, tuple.LocalAddress, tuple.LocalPort, step.Flags,
                   (connection.ReceiveNext + step.Seq).Value, connection.SendNext.Value);
    }

    private void Listen(ListenStep step)
    {
        ListenSocket listener = _stacks[step.Host].Tcp.Listen(Stack.Wire.Ipv4Address.Any, step.Port, step.Backlog, step.Options.ToOptions());
        if (step.AcceptAs is not { } name) return;   // an application that never accepts
        int accepted = 0;
        listener.Acceptable += l =>
        {
            while (l.TryAccept() is { } connection)
            {
                string socketName = ++accepted == 1 ? name : $"{name}{accepted}";
                Adopt(socketName, step.Host, connection);
            }
        };
    }

    private void Connect(ConnectStep step)
    {
        NetworkStack stack = _stacks[step.Host];
        try
        {
            Adopt(step.Socket, step.Host, stack.Tcp.Connect(step.Target, step.Port, step.Options.ToOptions(), step.LocalPort));
        }
        catch (TcpException e)
        {
            _record.Socket(step.Socket, step.Host).RecordError(e.Errno, Now);
        }
    }

    private void Adopt(string name, string host, TcpConnection connection)
    {
        NamedSocket record = _record.Socket(name, host);
        record.Tuple = connection.Tuple;
        record.ConnectionId = connection.ConnectionId;
        var socket = new AppSocket(this, connection, record);
        _sockets[name] = socket;
        socket.ReadAvailable();
        RunWaitingSteps();
    }

    private AppSocket Socket(string name) =>
        _sockets.TryGetValue(name, out AppSocket? s) ? s
        : throw new InvalidOperationException($"socket '{name}' does not exist yet (its connect failed or was never accepted)");

    /// <summary>One application socket: an observer of its connection.</summary>
    private sealed class AppSocket : ITcpConnectionObserver
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
        public void OnReadable(TcpConnection connection) => _owner._loop.Post(ReadAvailable);

        public void OnWritable(TcpConnection connection) => _owner._loop.Post(Flush);

        public void OnStateChanged(TcpConnection connection, TcpState from, TcpState to)
        {
            if (to == TcpState.Established) _owner._loop.Post(Flush);
        }

        public void OnClosed(TcpConnection connection)
        {
            if (connection.Error != Errno.None) _record.RecordError(connection.Error, _owner.Now);
        }
    }
}
