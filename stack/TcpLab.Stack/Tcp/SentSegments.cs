using TcpLab.Stack.Time;

namespace TcpLab.Stack.Tcp;

/// <summary>
/// One segment sent and not yet cumulatively acknowledged: its sequence range and its history.
/// Linux keeps the same facts in the skbs of its retransmission queue (TCP_SKB_CB sacked bits,
/// skb_mstamp).
/// </summary>
internal struct SentSegment
{
    public SeqNum Start;
    public SeqNum End;
    public bool Syn;
    public bool Fin;
    public Instant FirstSent;
    public Instant LastSent;
    /// <summary>Retransmitted at least once (TCPCB_EVER_RETRANS): no RTT sample from it (Karn).</summary>
    public bool EverRetransmitted;
    /// <summary>Marked lost and not yet retransmitted since (TCPCB_LOST without TCPCB_SACKED_RETRANS).</summary>
    public bool Lost;
    /// <summary>Retransmitted since it was last marked lost and still unacknowledged (TCPCB_SACKED_RETRANS).</summary>
    public bool Retransmitting;

    public readonly int Length => End - Start - (Syn ? 1 : 0) - (Fin ? 1 : 0);
}

/// <summary>The segments in flight, oldest first, in a growable ring.</summary>
internal sealed class SentSegments
{
    private SentSegment[] _items = new SentSegment[64];
    private int _head;

    public int Count { get; private set; }

    public ref SentSegment this[int index] => ref _items[(_head + index) % _items.Length];

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
        _items[(_head + Count) % _items.Length] = segment;
        Count++;
    }

    public void RemoveFirst()
    {
        _head = (_head + 1) % _items.Length;
        Count--;
    }

    public void Clear()
    {
        _head = 0;
        Count = 0;
    }
}
