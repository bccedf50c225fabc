namespace TcpLab.Stack.Tcp;

/// <summary>
/// Received bytes from copied_seq on: in-order data waiting for the application, then, at their
/// own offsets, out-of-order data waiting for the holes before it to fill. Out-of-order data is
/// written straight to its place in the ring, so filling a hole needs no copy; the ranges held
/// are tracked in sequence order (Linux keeps them in the out_of_order_queue rbtree).
/// <para>
/// Besides the bytes, the buffer keeps what they cost in Linux's accounting (sk_rmem_alloc):
/// each stored segment is charged the truesize its caller gives (<see cref="ReceiveMemory"/>).
/// Reading releases the in-order charge in proportion to the bytes read, where Linux frees each
/// skb once it is read whole; the two agree whenever the queue is read empty.
/// </para>
/// </summary>
internal sealed class ReceiveBuffer(int capacity)
{
    private byte[] _ring = new byte[Math.Max(capacity, 1)];
    private int _start;                                   // ring index of copied_seq
    private readonly List<(SeqNum Start, SeqNum End)> _outOfOrder = new();
    private readonly List<long> _outOfOrderCharge = new(); // truesize held by each out-of-order range
    private long _inOrderCharge;

    public int Capacity => _ring.Length;

    /// <summary>In-order bytes the application has not read: rcv_nxt - copied_seq.</summary>
    public int Readable { get; private set; }

    /// <summary>Bytes held out of order.</summary>
    public int OutOfOrderBytes { get; private set; }

    /// <summary>The out-of-order ranges in sequence order.</summary>
    public IReadOnlyList<(SeqNum Start, SeqNum End)> OutOfOrder => _outOfOrder;

    /// <summary>Payload bytes held, in order and out of order.</summary>
    public int Used => Readable + OutOfOrderBytes;

    /// <summary>What the held data costs in Linux's accounting (sk_rmem_alloc): the truesize of its segments.</summary>
    public long Memory => _inOrderCharge + OutOfOrderMemory;

    /// <summary>The part of <see cref="Memory"/> held by out-of-order data.</summary>
    public long OutOfOrderMemory { get; private set; }

    /// <summary>
    /// Stores <paramref name="data"/> at <paramref name="seq"/>, where <paramref name="rcvNxt"/> is the
    /// next in-order byte expected (the caller trims data before it), charging <paramref name="truesize"/>.
    /// Returns false, storing nothing, if it does not fit in the ring. On success
    /// <paramref name="newRcvNxt"/> is rcv_nxt after any in-order data, including held
    /// out-of-order ranges it now joins.
    /// </summary>
    public bool Store(SeqNum seq, ReadOnlySpan<byte> data, SeqNum rcvNxt, int truesize, out SeqNum newRcvNxt)
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
            _inOrderCharge += truesize;
            // Swallow held ranges that the new data reaches or overlaps (tcp_ofo_queue).
            while (_outOfOrder.Count > 0 && _outOfOrder[0].Start <= end)
            {
                var (s, e) = _outOfOrder[0];
                _inOrderCharge += _outOfOrderCharge[0];
                OutOfOrderMemory -= _outOfOrderCharge[0];
                RemoveRange(0);
                OutOfOrderBytes -= e - s;
                if (e > end) end = e;
            }
            Readable += end - rcvNxt;
            newRcvNxt = end;
        }
        else
        {
            AddRange(seq, seq + data.Length, truesize);
        }
        return true;
    }

    /// <summary>Merges [start, end) into the out-of-order ranges.</summary>
    private void AddRange(SeqNum start, SeqNum end, long charge)
    {
        OutOfOrderMemory += charge;
        int i = 0;
        while (i < _outOfOrder.Count && _outOfOrder[i].End < start) i++;
        while (i < _outOfOrder.Count && _outOfOrder[i].Start <= end)
        {
            var (s, e) = _outOfOrder[i];
            charge += _outOfOrderCharge[i];
            RemoveRange(i);
            OutOfOrderBytes -= e - s;
            start = SeqNum.Min(start, s);
            end = SeqNum.Max(end, e);
        }
        _outOfOrder.Insert(i, (start, end));
        _outOfOrderCharge.Insert(i, charge);
        OutOfOrderBytes += end - start;
    }

    private void RemoveRange(int index)
    {
        _outOfOrder.RemoveAt(index);
        _outOfOrderCharge.RemoveAt(index);
    }

    /// <summary>Copies up to <paramref name="destination"/>.Length in-order bytes out and frees them.</summary>
    public int Read(Span<byte> destination)
    {
        int n = Math.Min(destination.Length, Readable);
        int first = Math.Min(n, _ring.Length - _start);
        _ring.AsSpan(_start, first).CopyTo(destination);
        _ring.AsSpan(0, n - first).CopyTo(destination[first..]);
        _start = (_start + n) % _ring.Length;
        // Release the in-order charge in proportion; all of it once the queue is empty.
        _inOrderCharge -= n == Readable ? _inOrderCharge : _inOrderCharge * n / Readable;
        Readable -= n;
        return n;
    }

    /// <summary>Drops all out-of-order data (memory pressure, or the connection is going away).</summary>
    public void PurgeOutOfOrder()
    {
        _outOfOrder.Clear();
        _outOfOrderCharge.Clear();
        OutOfOrderBytes = 0;
        OutOfOrderMemory = 0;
    }

    /// <summary>
    /// tcp_collapse's effect on the accounting: the in-order data is copied into compact skbs,
    /// after which it costs about its payload (here: exactly its payload).
    /// </summary>
    public void CollapseInOrder() => _inOrderCharge = Math.Min(_inOrderCharge, Readable);

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
