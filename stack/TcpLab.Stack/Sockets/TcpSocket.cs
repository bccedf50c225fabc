using System.Net.Sockets;
using TcpLab.Stack.Tcp;
using TcpLab.Stack.Time;
using TcpLab.Stack.Wire;

namespace TcpLab.Stack.Sockets;

/// <summary>
/// A TCP socket on a managed stack, shaped like System.Net.Sockets.Socket: ConnectAsync,
/// Listen/AcceptAsync, SendAsync/ReceiveAsync, Shutdown, Close. It may be used from any thread:
/// every call is carried onto the stack's event loop and its result carried back; errors are
/// <see cref="TcpException"/>s with the errno Linux would report (ECONNREFUSED, ETIMEDOUT, ...).
/// <para>
/// In simulation, code awaiting these tasks runs on the loop itself (its SynchronizationContext),
/// so an application scripted with async/await stays deterministic.
/// </para>
/// </summary>
public sealed class TcpSocket : IDisposable, ITcpConnectionObserver
{
    private readonly NetworkStack _stack;
    private TcpConnection? _connection;
    private ListenSocket? _listener;
    private ushort _boundPort;
    private bool _closed;

    private TaskCompletionSource? _connectWaiter;
    private readonly Queue<TaskCompletionSource<TcpSocket>> _acceptWaiters = new();
    private TaskCompletionSource? _readWaiter;
    private TaskCompletionSource? _writeWaiter;

    public TcpSocket(NetworkStack stack, TcpSocketOptions? options = null)
    {
        _stack = stack;
        Options = options ?? new TcpSocketOptions();
    }

    private TcpSocket(NetworkStack stack, TcpConnection accepted) : this(stack, accepted.Options)
    {
        _connection = accepted;
        accepted.Observer = this;
    }

    /// <summary>Options applied to the connection when it is created (set them before Connect/Listen).</summary>
    public TcpSocketOptions Options { get; }

    private EventLoop Loop => _stack.Loop;

    /// <summary>The connection's state, LISTEN for a listener, CLOSED before connect.</summary>
    public TcpState State => _listener is { IsClosed: false } ? TcpState.Listen : _connection?.State ?? TcpState.Closed;

    /// <summary>Local and remote address and port once connected.</summary>
    public FourTuple? Tuple => _connection?.Tuple;

    /// <summary>The connection this socket drives (null before connect or for a listener).</summary>
    public TcpConnection? Connection => _connection;

    /// <summary>The listening socket (null unless <see cref="Listen"/> was called).</summary>
    public ListenSocket? Listener => _listener;

    /// <summary>bind(): the local port for a later Listen or ConnectAsync.</summary>
    public void Bind(ushort port) => _boundPort = port;

    public Task ConnectAsync(Ipv4Address address, ushort port, CancellationToken cancellationToken = default) =>
        OnLoop(() =>
        {
            if (_connection is not null || _listener is not null) throw new TcpException(Errno.EISCONN);
            _connectWaiter = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _connection = _stack.Tcp.Connect(address, port, Options, _boundPort);
            _connection.Observer = this;
            CompleteConnectIfDone();
            Cancel(cancellationToken, () => _connectWaiter, () => Abort());
            return _connectWaiter.Task;
        });

    /// <summary>
    /// sendto(MSG_FASTOPEN) on an unconnected socket: connects with as much of
    /// <paramref name="data"/> in the SYN as TCP Fast Open allows (net.ipv4.tcp_fastopen &amp; 1;
    /// with a cookie cached for the server, or in no-cookie mode; otherwise the SYN asks for a
    /// cookie and the data follows the handshake). Completes like a blocking sendto, once
    /// connected and all the data is in the send buffer, with the byte count. Set
    /// <see cref="TcpSocketOptions.FastOpenConnect"/> instead for TCP_FASTOPEN_CONNECT's
    /// connect-then-write form.
    /// </summary>
    public async Task<int> ConnectWithDataAsync(Ipv4Address address, ushort port, ReadOnlyMemory<byte> data, CancellationToken cancellationToken = default)
    {
        (int queued, Task connected) = await OnLoop(() =>
        {
            if (_connection is not null || _listener is not null) throw new TcpException(Errno.EISCONN);
            _connectWaiter = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _connection = _stack.Tcp.ConnectWithData(address, port, data.Span, out int n, Options, _boundPort);
            _connection.Observer = this;
            CompleteConnectIfDone();
            Cancel(cancellationToken, () => _connectWaiter, () => Abort());
            return Task.FromResult((n, _connectWaiter.Task));
        }).ConfigureAwait(ContinueOnLoop);
        await connected.ConfigureAwait(ContinueOnLoop);
        if (queued < data.Length) await SendAsync(data[queued..], cancellationToken).ConfigureAwait(ContinueOnLoop);
        return data.Length;
    }

    /// <summary>listen(): the socket becomes a listener on the bound port, every local address.</summary>
    public void Listen(int backlog)
    {
        if (_boundPort == 0) throw new TcpException(Errno.EINVAL, "bind a port before listen");
        RunOnLoop(() =>
        {
            _listener = _stack.Tcp.Listen(Ipv4Address.Any, _boundPort, backlog, Options);
            _listener.Acceptable += _ => CompleteAccepts();
        });
    }

    public Task<TcpSocket> AcceptAsync(CancellationToken cancellationToken = default) =>
        OnLoop(() =>
        {
            if (_listener is null) throw new TcpException(Errno.EINVAL, "accept on a socket that is not listening");
            var waiter = new TaskCompletionSource<TcpSocket>(TaskCreationOptions.RunContinuationsAsynchronously);
            _acceptWaiters.Enqueue(waiter);
            CompleteAccepts();
            if (cancellationToken.CanBeCanceled)
                cancellationToken.Register(() => Loop.Post(() => waiter.TrySetCanceled(cancellationToken)));
            return waiter.Task;
        });

    /// <summary>send(): completes when all of <paramref name="data"/> is in the send buffer.</summary>
    public async ValueTask<int> SendAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken = default)
    {
        int total = 0;
        while (total < data.Length)
        {
            (int written, Task? wait) = await OnLoop(() =>
            {
                TcpConnection connection = Connected();
                int n = connection.Write(data.Span[total..]);
                if (n > 0) return Task.FromResult<(int, Task?)>((n, null));
                _writeWaiter = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                Cancel(cancellationToken, () => _writeWaiter, null);
                return Task.FromResult<(int, Task?)>((0, _writeWaiter.Task));
            }).ConfigureAwait(ContinueOnLoop);
            total += written;
            if (wait is not null) await wait.ConfigureAwait(ContinueOnLoop);
        }
        return total;
    }

    /// <summary>recv(): at least one byte, or 0 at end of stream (the peer's FIN).</summary>
    public async ValueTask<int> ReceiveAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (buffer.Length == 0) return 0;
        while (true)
        {
            (int read, Task? wait) = await OnLoop(() =>
            {
                TcpConnection connection = _connection ?? throw new TcpException(Errno.ENOTCONN);
                int n = connection.Read(buffer.Span);   // throws the pending error once
                if (n > 0 || connection.EndOfStream) return Task.FromResult<(int, Task?)>((n, null));
                _readWaiter = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                Cancel(cancellationToken, () => _readWaiter, null);
                return Task.FromResult<(int, Task?)>((0, _readWaiter.Task));
            }).ConfigureAwait(ContinueOnLoop);
            if (wait is null) return read;
            await wait.ConfigureAwait(ContinueOnLoop);
        }
    }

    /// <summary>shutdown(): SHUT_WR sends our FIN after the queued data; reading is not affected.</summary>
    public void Shutdown(SocketShutdown how)
    {
        if (how is SocketShutdown.Send or SocketShutdown.Both) RunOnLoop(() => Connected().ShutdownSend());
    }

    /// <summary>close(): FIN after the data (or RST if unread data remains or SO_LINGER is 0).</summary>
    public void Close()
    {
        RunOnLoop(() =>
        {
            if (_closed) return;
            _closed = true;
            _listener?.Close();
            _connection?.Close();
            FailWaiters(new TcpException(Errno.ECONNABORTED, "socket closed"));
        });
    }

    /// <summary>Abortive close: RST now, no TIME_WAIT.</summary>
    public void Abort()
    {
        RunOnLoop(() =>
        {
            _closed = true;
            _connection?.Abort();
            FailWaiters(new TcpException(Errno.ECONNABORTED, "socket aborted"));
        });
    }

    public void Dispose() => Close();

    /// <summary>A Stream over the connection for ordinary .NET code (like NetworkStream).</summary>
    public TcpStream GetStream() => new(this);

    // ----- ITcpConnectionObserver (on the loop) -----

    void ITcpConnectionObserver.OnStateChanged(TcpConnection connection, TcpState from, TcpState to) => CompleteConnectIfDone();

    void ITcpConnectionObserver.OnReadable(TcpConnection connection) => Release(ref _readWaiter);

    void ITcpConnectionObserver.OnWritable(TcpConnection connection) => Release(ref _writeWaiter);

    void ITcpConnectionObserver.OnClosed(TcpConnection connection)
    {
        CompleteConnectIfDone();
        Release(ref _readWaiter);
        if (connection.Error != Errno.None) _writeWaiter?.TrySetException(new TcpException(connection.Error));
        else Release(ref _writeWaiter);
    }

    private void CompleteConnectIfDone()
    {
        if (_connectWaiter is null || _connection is null) return;
        // A TCP_FASTOPEN_CONNECT connect() returns at once when the SYN waits for the first write.
        if (_connection.State is TcpState.Established or TcpState.CloseWait || _connection.IsConnectDeferred) _connectWaiter.TrySetResult();
        else if (_connection.State == TcpState.Closed)
            _connectWaiter.TrySetException(new TcpException(_connection.Error == Errno.None ? Errno.ECONNREFUSED : _connection.Error));
    }

    private void CompleteAccepts()
    {
        while (_acceptWaiters.Count > 0 && _listener!.AcceptQueueLength > 0)
        {
            TaskCompletionSource<TcpSocket> waiter = _acceptWaiters.Dequeue();
            if (waiter.Task.IsCompleted) continue;
            waiter.TrySetResult(new TcpSocket(_stack, _listener.TryAccept()!));
        }
    }

    private static void Release(ref TaskCompletionSource? waiter)
    {
        TaskCompletionSource? w = waiter;
        waiter = null;
        w?.TrySetResult();
    }

    private void FailWaiters(Exception error)
    {
        _connectWaiter?.TrySetException(error);
        _readWaiter?.TrySetException(error);
        _writeWaiter?.TrySetException(error);
        while (_acceptWaiters.TryDequeue(out var waiter)) waiter.TrySetException(error);
        _readWaiter = _writeWaiter = null;
    }

    private TcpConnection Connected() => _connection ?? throw new TcpException(Errno.ENOTCONN);

    private void Cancel(CancellationToken token, Func<TaskCompletionSource?> waiter, Action? then)
    {
        if (!token.CanBeCanceled) return;
        token.Register(() => Loop.Post(() =>
        {
            if (waiter()?.TrySetCanceled(token) == true) then?.Invoke();
        }));
    }

    // ----- Running on the loop -----

    /// <summary>In simulation continuations stay on the loop; on a real-time loop they return to the caller's context.</summary>
    private bool ContinueOnLoop => Loop is SimulatedEventLoop;

    private void RunOnLoop(Action action) => OnLoop(() => { action(); return Task.CompletedTask; }).GetAwaiter().GetResult();

    /// <summary>Runs <paramref name="work"/> on the loop (inline when already there) and hands back its task.</summary>
    private Task<T> OnLoop<T>(Func<Task<T>> work)
    {
        if (Loop.IsOnLoop) return Invoke(work);
        var result = new TaskCompletionSource<Task<T>>(TaskCreationOptions.RunContinuationsAsynchronously);
        Loop.Post(() => result.SetResult(Invoke(work)));
        return result.Task.Unwrap();
    }

    private Task OnLoop(Func<Task> work) => OnLoop(async () => { await work().ConfigureAwait(ContinueOnLoop); return true; });

    private static Task<T> Invoke<T>(Func<Task<T>> work)
    {
        try
        {
            return work();
        }
        catch (Exception e)
        {
            return Task.FromException<T>(e);
        }
    }
}
