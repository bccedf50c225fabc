namespace TcpLab.Stack.Sockets;

/// <summary>
/// A <see cref="Stream"/> over a connected <see cref="TcpSocket"/>, as NetworkStream is over a
/// Socket: reads return 0 at the peer's FIN; disposing closes the socket.
/// </summary>
public sealed class TcpStream(TcpSocket socket) : Stream
{
    public TcpSocket Socket { get; } = socket;

    public override bool CanRead => true;
    public override bool CanWrite => true;
    public override bool CanSeek => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
        Socket.ReceiveAsync(buffer, cancellationToken);

    /// <remarks>Resumes on the caller's context: in simulation that is the loop, which keeps the run on one thread.</remarks>
    public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) =>
        await Socket.SendAsync(buffer, cancellationToken);

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    /// <summary>Blocking read: only from a thread other than the stack's loop (it would wait for itself).</summary>
    public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer, offset, count).GetAwaiter().GetResult();

    public override void Write(byte[] buffer, int offset, int count) => WriteAsync(buffer, offset, count).GetAwaiter().GetResult();

    /// <summary>Data is handed to TCP as it is written; there is nothing to flush.</summary>
    public override void Flush() { }

    public override Task FlushAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing) Socket.Close();
        base.Dispose(disposing);
    }
}
