using TcpLab.Stack.Time;

namespace TcpLab.Stack.Tcp;

/// <summary>How a segment came to be marked lost: what its retransmission is called in the trace.</summary>
internal enum LossDetection : byte
{
    None,
    /// <summary>A retransmission timeout (tcp_timeout_mark_lost).</summary>
    Rto,
    /// <summary>RFC 6675: tcp_reordering SACKed segments above it, or the classic duplicate-ACK count (tcp_mark_head_lost).</summary>
    DupThreshold,
    /// <summary>Without SACK, the head after three duplicate ACKs or a partial ACK (tcp_newreno_mark_lost, RFC 6582).</summary>
    NewReno,
    /// <summary>RACK on an ACK: a segment sent later was delivered, and the reordering window has passed (tcp_rack_detect_loss).</summary>
    Rack,
    /// <summary>RACK's reordering timer expired (tcp_rack_reo_timeout).</summary>
    RackTimer,
    /// <summary>RACK found a retransmission of this segment lost too (TCPLostRetransmit).</summary>
    LostRetransmit,
    /// <summary>The SYN-ACK did not acknowledge the data of a Fast Open SYN (tcp_rcv_fastopen_synack).</summary>
    SynData,
}

/// <summary>
/// One segment sent and not yet cumulatively acknowledged: its sequence range, its history and
/// its scoreboard bits. Linux keeps the same facts in the skbs of its retransmission queue:
/// TCP_SKB_CB(skb)->sacked (TCPCB_SACKED_ACKED, TCPCB_SACKED_RETRANS, TCPCB_LOST,
/// TCPCB_EVER_RETRANS) and skb_mstamp. The lab sends no segment larger than the MSS, so each
/// entry is one packet (tcp_skb_pcount 1) and the counters below count entries.
/// </summary>
internal struct SentSegment
{
    public SeqNum Start;
    public SeqNum End;
    public bool Syn;
    public bool Fin;
    public Instant FirstSent;
    /// <summary>When it was last (re)transmitted (skb_mstamp): RACK's clock.</summary>
    public Instant LastSent;
    /// <summary>Retransmitted at least once (TCPCB_EVER_RETRANS): no RTT sample from it (Karn).</summary>
    public bool EverRetransmitted;
    /// <summary>The receiver holds it, says a SACK block (TCPCB_SACKED_ACKED).</summary>
    public bool Sacked;
    /// <summary>Believed lost (TCPCB_LOST); with <see cref="Retransmitting"/> its retransmission is in flight.</summary>
    public bool Lost;
    /// <summary>Retransmitted and neither acknowledged nor marked lost again since (TCPCB_SACKED_RETRANS).</summary>
    public bool Retransmitting;
    public LossDetection LostBy;
    /// <summary>The connection's delivered count when it was last sent (tx.delivered), for RACK's reordering window.</summary>
    public long DeliveredAtSend;

    public readonly int Length => End - Start - (Syn ? 1 : 0) - (Fin ? 1 : 0);
}

/// <summary>The segments in flight, oldest first, in a growable ring.</summary>
internal sealed class SentSegments
{
    private SentSegment[] _items = new SentSegment[64];
    private int _head;

    public int Count { get; private set; }

    public ref SentSegment this[int index] => ref _items[(_head + index) & (_items.Length - 1)];

    public ref SentSegment First => ref this[0];
    public ref SentSegment Last => ref this[Count - 1];

    public void Add(in SentSegment segment)
    {
        if (Count == _items.Length)
        {
            var bigger = new SentSegment[_items.Length * 2];
            for (int i = 0; i < Count; i++) bigger[i] = this[i];
            _items = bigger;
            _head = 0;
        }
        _items[(_head + Count) & (_items.Length - 1)] = segment;
        Count++;
    }

    public void RemoveFirst()
    {
        _head = (_head + 1) & (_items.Length - 1);
        Count--;
    }

    public void Clear()
    {
        _head = 0;
        Count = 0;
    }

    /// <summary>The index of the first segment that ends after <paramref name="seq"/> (Count if none): a binary search, the queue being in sequence order.</summary>
    public int IndexAfter(SeqNum seq)
    {
        int low = 0, high = Count;
        while (low < high)
        {
            int mid = (low + high) >>> 1;
            if (this[mid].End <= seq) low = mid + 1;
            else high = mid;
        }
        return low;
    }
}
