namespace TcpLab.Stack.Tcp;

/// <summary>
/// The bytes between snd_una and write_seq: sent-but-unacknowledged data followed by data the
/// application wrote that is not yet sent. A ring, so acknowledging bytes frees room without
/// copying; segments and retransmissions read straight from it.
/// <para>
/// <see cref="Limit"/> is sk_sndbuf, which the connection sets from tcp_wmem or SO_SNDBUF and
/// raises as the congestion window grows (tcp_sndbuf_expand); the ring itself grows on demand,
/// by doubling, up to the limit. The lab charges payload bytes against sk_sndbuf where Linux
/// charges skb truesize (sk_wmem_queued); with 64 KiB GSO skbs the two differ by about 2 %.
/// </para>
/// </summary>
internal sealed class SendBuffer(int limit)
{
    private const int InitialRing = 16 * 1024;

    private byte[] _ring = new byte[Math.Min(Math.Max(limit, 1), InitialRing)];
    private int _start;

    /// <summary>sk_sndbuf: the most bytes the buffer takes.</summary>
    public int Limit { get; set; } = limit;

    public int Capacity => _ring.Length;
    /// <summary>Bytes held: write_seq - snd_una (data only, no SYN/FIN).</summary>
    public int Count { get; private set; }
    public int Free => Math.Max(0, Limit - Count);

    /// <summary>Copies as much of <paramref name="data"/> as fits; returns the bytes taken.</summary>
    public int Append(ReadOnlySpan<byte> data)
    {
        int n = Math.Min(data.Length, Free);
        if (Count + n > _ring.Length) Grow(Math.Max(Count + n, Math.Min(2 * _ring.Length, Limit)));
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

    private void Grow(int capacity)
    {
        var bigger = new byte[capacity];
        CopyTo(0, bigger.AsSpan(0, Count));
        _ring = bigger;
        _start = 0;
    }
}
