using TcpLab.Stack.Time;

namespace TcpLab.Stack.Tcp.Congestion;

/// <summary>
/// The congestion window and its companions, counted in packets as Linux counts them
/// (tp->snd_cwnd, snd_ssthresh, snd_cwnd_cnt, snd_cwnd_clamp, prior_cwnd, prior_ssthresh, and
/// the cwnd-validation state of tcp_cwnd_validate), with the shared growth rules of tcp_cong.c.
/// </summary>
internal sealed class CongestionWindow
{
    /// <summary>TCP_INFINITE_SSTHRESH: no loss seen yet, slow start has no ceiling.</summary>
    public const int InfiniteSsthresh = 0x7fffffff;

    public int Cwnd;
    public int Ssthresh = InfiniteSsthresh;
    /// <summary>snd_cwnd_cnt: ACKed packets counted towards the next additive increase.</summary>
    public int Count;
    public int Clamp = int.MaxValue;
    /// <summary>cwnd and ssthresh before the last reduction, for undo (prior_cwnd, prior_ssthresh; 0 = no undo).</summary>
    public int PriorCwnd;
    public int PriorSsthresh;

    // tcp_cwnd_validate (RFC 2861 / RFC 7661): was cwnd fully used in the current window of data?
    public bool IsCwndLimited;
    public int MaxPacketsOut;
    public SeqNum UsageSeq;
    /// <summary>snd_cwnd_used: most packets in flight while not cwnd-limited.</summary>
    public int Used;
    /// <summary>snd_cwnd_stamp: when cwnd last changed or was last fully used.</summary>
    public Instant Stamp;

    /// <summary>tcp_in_slow_start.</summary>
    public bool InSlowStart => Cwnd < Ssthresh;

    /// <summary>tcp_in_initial_slowstart: no reduction has happened yet.</summary>
    public bool InInitialSlowStart => Ssthresh >= InfiniteSsthresh;

    /// <summary>
    /// tcp_is_cwnd_limited: cwnd only grows when it limited the sender; in slow start it may
    /// also grow while under twice what was recently in flight.
    /// </summary>
    public bool IsLimited => IsCwndLimited || (InSlowStart && Cwnd < 2 * MaxPacketsOut);

    /// <summary>
    /// tcp_slow_start: cwnd grows by the packets ACKed, up to ssthresh; returns the ACKed
    /// packets left over for congestion avoidance.
    /// </summary>
    public int SlowStart(int acked)
    {
        int cwnd = Math.Min(Cwnd + acked, Ssthresh);
        acked -= cwnd - Cwnd;
        Cwnd = Math.Min(cwnd, Clamp);
        return acked;
    }

    /// <summary>
    /// The start every cong_avoid shares: nothing unless cwnd limited the sender; in slow start
    /// the ACKed packets go to <see cref="SlowStart"/> first. Returns the packets left for
    /// congestion avoidance (0: nothing more to do).
    /// </summary>
    public int GrowInSlowStart(int acked)
    {
        if (!IsLimited) return 0;
        return InSlowStart ? SlowStart(acked) : acked;
    }

    /// <summary>tcp_cong_avoid_ai: one packet more per <paramref name="w"/> packets ACKed.</summary>
    public void AdditiveIncrease(int w, int acked)
    {
        // Credits accumulated at a larger w are applied gently now.
        if (Count >= w)
        {
            Count = 0;
            Cwnd++;
        }
        Count += acked;
        if (Count >= w)
        {
            int delta = Count / w;
            Count -= delta * w;
            Cwnd += delta;
        }
        Cwnd = Math.Min(Cwnd, Clamp);
    }
}
