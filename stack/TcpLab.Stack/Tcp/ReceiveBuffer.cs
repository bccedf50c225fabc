namespace TcpLab.Stack.Tcp;

/// <summary>
/// Received bytes from copied_seq on: in-order data waiting for the application, then, at their
/// own offsets, out-of-order data waiting for the holes before it to fill. Out-of-order data is
/// written straight to its place in the ring, so filling a hole needs no copy; the ranges held
/// are tracked in sequence order (Linux keeps them in the out_of_order_queue rbtree).
/// </summary>
internal sealed class ReceiveBuffer(int capacity)
{
    private byte[] _ring = new byte[Math.Max(capacity, 1)];
    private int _start;                                   // ring index of copied_seq
    private readonly List<(SeqNum Start, SeqNum End)> _outOfOrder = new();

    public int Capacity => _ring.Length;

    /// <summary>In-order bytes the application has not read: rcv_nxt - copied_seq.</summary>
    public int Readable { get; private set; }

    /// <summary>Bytes held out of order.</summary>
    public int OutOfOrderBytes { get; private set; }

    /// <summary>The out-of-order ranges in sequence order.</summary>
    public IReadOnlyList<(SeqNum Start, SeqNum End)> OutOfOrder => _outOfOrder;

    /// <summary>Every byte the ring holds, as Linux's rmem_alloc counts the receive queues.</summary>
    public int Used => Readable + OutOfOrderBytes;

    /// <summary>
    /// Stores <paramref name="data"/> at <paramref name="seq"/>, where <paramref name="rcvNxt"/> is the
    /// next in-order byte expected (the caller trims data before it). Returns false, storing nothing,
    /// if it does not fit in the ring. On success <paramref name="newRcvNxt"/> is rcv_nxt after any
    /// in-order data, including held out-of-order ranges it now joins.
    /// </summary>
    public bool Store(SeqNum seq, ReadOnlySpan<byte> data, SeqNum rcvNxt, out SeqNum newRcvNxt)
    {
        newRcvNxt = rcvNxt;
        int offset = Readable + (seq - rcvNxt);          // from copied_seq
        if (offset < Readable || offset + data.Length > _ring.Length) return false;
        int at = (_start + offset) % _ring.Length;
        int first = Math.Min(data.Length, _ring.Length - at);
        data[..first].CopyTo(_ring.AsSpan(at));
        data[first..].CopyTo(_ring);

        if (seq == rcvNxt)
        {
            SeqNum end = seq + data.Length;
            // Swallow held ranges that the new data reaches or overlaps (tcp_ofo_queue).
            while (_outOfOrder.Count > 0 && _outOfOrder[0].Start <= end)
            {
                var (s, e) = _outOfOrder[0];
                _outOfOrder.RemoveAt(0);
                OutOfOrderBytes -= e - s;
                if (e > end) end = e;
            }
            Readable += end - rcvNxt;
            newRcvNxt = end;
        }
        else
        {
            AddRange(seq, seq + data.Length);
        }
        return true;
    }

    /// <summary>Merges [start, end) into the out-of-order ranges.</summary>
    private void AddRange(SeqNum start, SeqNum end)
    {
        int i = 0;
        while (i < _outOfOrder.Count && _outOfOrder[i].End < start) i++;
        while (i < _outOfOrder.Count && _outOfOrder[i].Start <= end)
        {
            var (s, e) = _outOfOrder[i];
            _outOfOrder.RemoveAt(i);
            OutOfOrderBytes -= e - s;
            start = SeqNum.Min(start, s);
            end = SeqNum.Max(end, e);
        }
        _outOfOrder.Insert(i, (start, end));
        OutOfOrderBytes += end - start;
    }

    /// <summary>Copies up to <paramref name="destination"/>.Length in-order bytes out and frees them.</summary>
    public int Read(Span<byte> destination)
    {
        int n = Math.Min(destination.Length, Readable);
        int first = Math.Min(n, _ring.Length - _start);
        _ring.AsSpan(_start, first).CopyTo(destination);
        _ring.AsSpan(0, n - first).CopyTo(destination[first..]);
        _start = (_start + n) % _ring.Length;
        Readable -= n;
        return n;
    }

    /// <summary>Drops all out-of-order data (memory pressure, or the connection is going away).</summary>
    public void PurgeOutOfOrder()
    {
        _outOfOrder.Clear();
        OutOfOrderBytes = 0;
    }

    /// <summary>Enlarges the ring, keeping in-order and out-of-order data at their sequence offsets.</summary>
    public void Grow(int capacity)
    {
        if (capacity <= _ring.Length) return;
        var bigger = new byte[capacity];
        int first = _ring.Length - _start;
        _ring.AsSpan(_start).CopyTo(bigger);
        _ring.AsSpan(0, _start).CopyTo(bigger.AsSpan(first));
        _ring = bigger;
        _start = 0;
    }
}
