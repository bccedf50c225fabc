using System.Security.Cryptography;
using TcpLab.Stack.Tcp;

namespace TcpLab.Stack.Sockets;

/// <summary>
/// A sink that lives on the stack's loop (a discard server, RFC 863): it reads whatever arrives
/// as soon as it arrives and drops it, counting bytes and, optionally, hashing them. Unlike
/// <see cref="TcpSocket"/> it needs no task or thread hand-off per read, so a bulk transfer
/// measures the stack rather than the socket API, and steady state allocates nothing.
/// </summary>
public sealed class BulkSink : ITcpConnectionObserver
{
    private readonly byte[] _buffer;
    private readonly IncrementalHash? _hash;

    /// <param name="hash">Keep a SHA-256 of everything read (<see cref="Sha256"/>).</param>
    public BulkSink(TcpConnection connection, bool hash = false, int readSize = 256 * 1024)
    {
        Connection = connection;
        _buffer = new byte[readSize];
        if (hash) _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        connection.Observer = this;
        Drain();
    }

    public TcpConnection Connection { get; }
    public long BytesRead { get; private set; }
    /// <summary>The peer's FIN was read (or the connection failed).</summary>
    public bool Finished { get; private set; }
    /// <summary>Raised once, on the loop, when <see cref="Finished"/> becomes true.</summary>
    public event Action<BulkSink>? Completed;

    /// <summary>SHA-256 of the bytes read so far (needs hash: true).</summary>
    public byte[] Sha256 => _hash?.GetCurrentHash() ?? throw new InvalidOperationException("the sink was created without hash: true");

    private void Drain()
    {
        int n;
        while ((n = Connection.Read(_buffer)) > 0)
        {
            BytesRead += n;
            _hash?.AppendData(_buffer, 0, n);
        }
        if (!Finished && (Connection.EndOfStream && Connection.ReadableBytes == 0 || Connection.State == TcpState.Closed))
        {
            Finished = true;
            Completed?.Invoke(this);
        }
    }

    void ITcpConnectionObserver.OnReadable(TcpConnection connection) => Drain();
    void ITcpConnectionObserver.OnWritable(TcpConnection connection) { }
    void ITcpConnectionObserver.OnStateChanged(TcpConnection connection, TcpState from, TcpState to) { }
    void ITcpConnectionObserver.OnClosed(TcpConnection connection) => Drain();
}

/// <summary>
/// A source that lives on the stack's loop: it writes <c>count</c> bytes of a repeating block
/// (or forever, for a benchmark) as fast as the send buffer takes them, then shuts down the
/// sending side if asked. The companion of <see cref="BulkSink"/>.
/// </summary>
public sealed class BulkSource : ITcpConnectionObserver
{
    private readonly ReadOnlyMemory<byte> _block;
    private readonly long _count;
    private readonly bool _shutdownWhenDone;

    /// <param name="block">The bytes sent, repeated; byte i of the stream is block[i % block.Length].</param>
    /// <param name="count">Bytes to send; <see cref="long.MaxValue"/> for an endless stream.</param>
    public BulkSource(TcpConnection connection, ReadOnlyMemory<byte> block, long count, bool shutdownWhenDone = true)
    {
        if (block.IsEmpty) throw new ArgumentException("an empty block", nameof(block));
        Connection = connection;
        _block = block;
        _count = count;
        _shutdownWhenDone = shutdownWhenDone;
        connection.Observer = this;
        Fill();
    }

    public TcpConnection Connection { get; }
    public long BytesWritten { get; private set; }

    private void Fill()
    {
        if (Connection.State is not (TcpState.Established or TcpState.CloseWait)) return;
        while (BytesWritten < _count)
        {
            int offset = (int)(BytesWritten % _block.Length);
            int length = (int)Math.Min(_block.Length - offset, _count - BytesWritten);
            int n = Connection.Write(_block.Span.Slice(offset, length));
            if (n == 0) return;
            BytesWritten += n;
        }
        if (_shutdownWhenDone) Connection.ShutdownSend();
    }

    void ITcpConnectionObserver.OnWritable(TcpConnection connection)
    {
        if (BytesWritten < _count) Fill();
    }

    void ITcpConnectionObserver.OnStateChanged(TcpConnection connection, TcpState from, TcpState to)
    {
        if (to == TcpState.Established && BytesWritten == 0) Fill();
    }

    void ITcpConnectionObserver.OnReadable(TcpConnection connection) { }
    void ITcpConnectionObserver.OnClosed(TcpConnection connection) { }
}
