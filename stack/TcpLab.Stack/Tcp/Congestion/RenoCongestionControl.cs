namespace TcpLab.Stack.Tcp.Congestion;

/// <summary>
/// Reno (tcp_cong.c): slow start below ssthresh, then one packet more per window of ACKed
/// packets (RFC 5681); ssthresh is half of cwnd, at least 2. Linux's fallback algorithm.
/// </summary>
internal sealed class RenoCongestionControl : CongestionControl
{
    public override string Name => "reno";

    /// <summary>tcp_reno_ssthresh.</summary>
    internal override int Ssthresh(ICongestionHost tcp) => Math.Max(tcp.Window.Cwnd >> 1, 2);

    /// <summary>tcp_reno_cong_avoid.</summary>
    internal override void CongestionAvoidance(ICongestionHost tcp, SeqNum ack, int acked)
    {
        CongestionWindow window = tcp.Window;
        acked = window.GrowInSlowStart(acked);
        if (acked > 0) window.AdditiveIncrease(window.Cwnd, acked);
    }
}
