using TcpLab.Stack.Wire;

namespace TcpLab.Stack.Tcp;

/// <summary>
/// The SACK blocks a receiver reports (tp->selective_acks, rx_opt.num_sacks) and a pending
/// D-SACK (tp->duplicate_sack, rx_opt.dsack), kept the way tcp_input.c keeps them: the block
/// that the latest out-of-order segment created or extended comes first (RFC 2018 section 4),
/// blocks that touch merge, the oldest falls off beyond four, and a D-SACK (RFC 2883) goes out
/// once, in front of them.
/// </summary>
internal sealed class ReceivedSackBlocks
{
    private const int MaxBlocks = 4;         // TCP_NUM_SACKS
    private const int ExpectedBlocks = 2;    // TCP_SACK_BLOCKS_EXPECTED

    private readonly (SeqNum Start, SeqNum End)[] _blocks = new (SeqNum, SeqNum)[MaxBlocks];

    public int Count { get; private set; }

    /// <summary>The D-SACK block to send with the next ACK, if any.</summary>
    public (SeqNum Start, SeqNum End)? Duplicate { get; private set; }

    public (SeqNum Start, SeqNum End) this[int index] => _blocks[index];

    /// <summary>The right edge of the highest block (RFC 5961 3.2 accepts a RST there).</summary>
    public SeqNum? HighestEnd
    {
        get
        {
            if (Count == 0) return null;
            SeqNum end = _blocks[0].End;
            for (int i = 1; i < Count; i++) end = SeqNum.Max(end, _blocks[i].End);
            return end;
        }
    }

    public void Clear()
    {
        Count = 0;
        Duplicate = null;
    }

    /// <summary>
    /// tcp_sack_new_ofo_skb: [seq, end) was queued out of order. Returns true when it touched the
    /// third block or beyond, where Linux sends a compressed ACK at once (tcp_sack_compress_send_ack).
    /// </summary>
    public bool AddOutOfOrder(SeqNum seq, SeqNum end)
    {
        int index;
        for (index = 0; index < Count; index++)
        {
            if (!Extend(ref _blocks[index], seq, end)) continue;
            // Rotate the block to the front, then merge any others it now reaches.
            for (int i = index; i > 0; i--) (_blocks[i], _blocks[i - 1]) = (_blocks[i - 1], _blocks[i]);
            if (Count > 1) Coalesce();
            return index >= ExpectedBlocks;
        }
        bool compress = Count >= ExpectedBlocks;
        if (Count == MaxBlocks) Count--;   // the array is full: forget the oldest
        for (int i = Count; i > 0; i--) _blocks[i] = _blocks[i - 1];
        _blocks[0] = (seq, end);
        Count++;
        return compress;
    }

    /// <summary>tcp_sack_maybe_coalesce: the first block swallows others it now overlaps or touches.</summary>
    private void Coalesce()
    {
        for (int i = 1; i < Count;)
        {
            if (Extend(ref _blocks[0], _blocks[i].Start, _blocks[i].End))
            {
                for (int j = i; j < Count - 1; j++) _blocks[j] = _blocks[j + 1];
                Count--;
                continue;
            }
            i++;
        }
    }

    /// <summary>tcp_sack_remove: rcv_nxt advanced; blocks it reached are gone (all of them when the queue emptied).</summary>
    public void RemoveCovered(SeqNum rcvNxt, bool outOfOrderEmpty)
    {
        if (outOfOrderEmpty)
        {
            Count = 0;
            return;
        }
        for (int i = 0; i < Count;)
        {
            if (rcvNxt >= _blocks[i].Start)
            {
                for (int j = i; j < Count - 1; j++) _blocks[j] = _blocks[j + 1];
                Count--;
                continue;
            }
            i++;
        }
    }

    /// <summary>rx_opt.dsack = 0: forget a D-SACK not yet sent.</summary>
    public void ClearDuplicate() => Duplicate = null;

    /// <summary>tcp_dsack_set: report [seq, end) as duplicate data in the next ACK.</summary>
    public void SetDuplicate(SeqNum seq, SeqNum end) => Duplicate = (seq, end);

    /// <summary>tcp_dsack_extend: widen the pending D-SACK if the range touches it (else set one).</summary>
    public void ExtendDuplicate(SeqNum seq, SeqNum end)
    {
        if (Duplicate is not { } d)
        {
            Duplicate = (seq, end);
            return;
        }
        Extend(ref d, seq, end);
        Duplicate = d;
    }

    /// <summary>
    /// tcp_options_write: the D-SACK first, then the blocks, as many as the option space leaves
    /// room for (3 beside timestamps, 4 without). The D-SACK is sent once.
    /// </summary>
    public void Write(ref TcpOptions options)
    {
        int room = (TcpOptions.MaxLength - (options.HasTimestamp ? 12 : 0) - 4) / 8;
        if (Duplicate is { } d && room > 0)
        {
            options.AddSack(new SackBlock(d.Start.Value, d.End.Value));
            room--;
        }
        Duplicate = null;
        for (int i = 0; i < Count && room > 0; i++, room--) options.AddSack(new SackBlock(_blocks[i].Start.Value, _blocks[i].End.Value));
    }

    /// <summary>tcp_sack_extend: grow <paramref name="block"/> by [seq, end) if they overlap or touch.</summary>
    private static bool Extend(ref (SeqNum Start, SeqNum End) block, SeqNum seq, SeqNum end)
    {
        if (seq > block.End || block.Start > end) return false;
        if (seq < block.Start) block.Start = seq;
        if (end > block.End) block.End = end;
        return true;
    }
}
