namespace TcpLab.Stack.Tcp;

/// <summary>
/// The bytes between snd_una and write_seq: sent-but-unacknowledged data followed by data the
/// application wrote that is not yet sent. A ring, so acknowledging bytes frees room without
/// copying; segments and retransmissions read straight from it. It grows (never past the cap
/// the connection sets from tcp_wmem or SO_SNDBUF) when autotuning asks for more room.
/// </summary>
internal sealed class SendBuffer(int capacity)
{
    private byte[] _ring = new byte[Math.Max(capacity, 1)];
    private int _start;

    public int Capacity => _ring.Length;
    /// <summary>Bytes held: write_seq - snd_una (data only, no SYN/FIN).</summary>
    public int Count { get; private set; }
    public int Free => _ring.Length - Count;

    /// <summary>Copies as much of <paramref name="data"/> as fits; returns the bytes taken.</summary>
    public int Append(ReadOnlySpan<byte> data)
    {
        int n = Math.Min(data.Length, Free);
        int tail = (_start + Count) % _ring.Length;
        int first = Math.Min(n, _ring.Length - tail);
        data[..first].CopyTo(_ring.AsSpan(tail));
        data[first..n].CopyTo(_ring);
        Count += n;
        return n;
    }

    /// <summary>Drops <paramref name="n"/> acknowledged bytes from the front.</summary>
    public void Consume(int n)
    {
        n = Math.Min(n, Count);
        _start = (_start + n) % _ring.Length;
        Count -= n;
    }

    /// <summary>Copies bytes starting <paramref name="offset"/> bytes after snd_una.</summary>
    public void CopyTo(int offset, Span<byte> destination)
    {
        int from = (_start + offset) % _ring.Length;
        int first = Math.Min(destination.Length, _ring.Length - from);
        _ring.AsSpan(from, first).CopyTo(destination);
        _ring.AsSpan(0, destination.Length - first).CopyTo(destination[first..]);
    }

    /// <summary>Enlarges the ring to <paramref name="capacity"/> bytes (a no-op if already that big).</summary>
    public void Grow(int capacity)
    {
        if (capacity <= _ring.Length) return;
        var bigger = new byte[capacity];
        CopyTo(0, bigger.AsSpan(0, Count));
        _ring = bigger;
        _start = 0;
    }
}
