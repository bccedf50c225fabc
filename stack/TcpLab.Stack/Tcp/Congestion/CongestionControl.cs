using TcpLab.Stack.Diagnostics;
using TcpLab.Stack.Time;

namespace TcpLab.Stack.Tcp.Congestion;

/// <summary>
/// The sender's congestion state (icsk_ca_state), the states of Linux's NewReno/SACK machine in
/// tcp_input.c: Open (nothing dubious), Disorder (SACKs or duplicate ACKs seen, cwnd unchanged),
/// CWR (cwnd reduced for a signal other than loss, e.g. a loss probe's repair), Recovery (fast
/// recovery: cwnd reduced, holes retransmitted), Loss (after an RTO, or SACK reneging).
/// </summary>
public enum CongestionState
{
    Open,
    Disorder,
    Cwr,
    Recovery,
    Loss,
}

/// <summary>What the connection tells its algorithm besides ACKs (enum tcp_ca_event).</summary>
internal enum CongestionEvent
{
    /// <summary>First transmission with nothing in flight (CA_EVENT_TX_START).</summary>
    TxStart,
    /// <summary>cwnd restarted after idle (CA_EVENT_CWND_RESTART).</summary>
    CwndRestart,
    /// <summary>The end of a cwnd reduction (CA_EVENT_COMPLETE_CWR).</summary>
    CompleteCwr,
    /// <summary>An RTO: Loss state entered (CA_EVENT_LOSS).</summary>
    Loss,
}

/// <summary>
/// What an algorithm may read of its connection: the parts of tcp_sock its Linux twin reads. The
/// connection implements it; each call passes it, as Linux passes the socket.
/// </summary>
internal interface ICongestionHost
{
    CongestionWindow Window { get; }
    CongestionState State { get; }
    /// <summary>tcp_mstamp: the time of the event being processed.</summary>
    Instant Now { get; }
    /// <summary>The kernel's tick rate: CUBIC counts time in jiffies (tcp_jiffies32).</summary>
    int Hz { get; }
    SeqNum SendUnacknowledged { get; }
    SeqNum SendNext { get; }
    /// <summary>lsndtime: when data was last sent.</summary>
    Instant LastSendTime { get; }
    /// <summary>sk_pacing_rate in bytes per second (tcp_update_pacing_rate), 0 if unknown.</summary>
    long PacingRate { get; }
    Counters Counters { get; }
}

/// <summary>
/// One congestion-control algorithm for one connection: Linux's struct tcp_congestion_ops with
/// the per-socket private area (icsk_ca_priv) as the instance's fields. The connection calls
/// <see cref="Ssthresh"/> when it reduces cwnd, <see cref="CongestionAvoidance"/> for each ACK
/// that may grow cwnd, and the optional hooks as Linux does (tcp_cong.c, tcp_input.c).
/// </summary>
public abstract class CongestionControl
{
    /// <summary>Names the lab knows, as net.ipv4.tcp_available_congestion_control lists them.</summary>
    public static IReadOnlyList<string> Available { get; } = ["reno", "cubic"];

    public static bool IsAvailable(string name) => Available.Contains(name);

    /// <summary>A fresh instance of the algorithm called <paramref name="name"/> (tcp_ca_find).</summary>
    /// <exception cref="TcpException">ENOENT for an unknown name, as setsockopt(TCP_CONGESTION) says.</exception>
    internal static CongestionControl Create(string name) => name switch
    {
        "reno" => new RenoCongestionControl(),
        "cubic" => new CubicCongestionControl(),
        _ => throw new TcpException(Errno.ENOENT, $"congestion control '{name}' is not available; available: {string.Join(' ', Available)}"),
    };

    /// <summary>The name TCP_CONGESTION and `ss -i` use.</summary>
    public abstract string Name { get; }

    /// <summary>.init: the connection starts its transfer (tcp_init_congestion_control).</summary>
    internal virtual void Init(ICongestionHost tcp) { }

    /// <summary>.ssthresh: the slow-start threshold after a loss (or other reduction).</summary>
    internal abstract int Ssthresh(ICongestionHost tcp);

    /// <summary>.cong_avoid: <paramref name="acked"/> packets were delivered; grow cwnd.</summary>
    internal abstract void CongestionAvoidance(ICongestionHost tcp, SeqNum ack, int acked);

    /// <summary>.set_state: the congestion state is about to change.</summary>
    internal virtual void SetState(ICongestionHost tcp, CongestionState state) { }

    /// <summary>.cwnd_event.</summary>
    internal virtual void CwndEvent(ICongestionHost tcp, CongestionEvent congestionEvent) { }

    /// <summary>.undo_cwnd: cwnd after a reduction turned out spurious (tcp_reno_undo_cwnd unless overridden).</summary>
    internal virtual int UndoCwnd(ICongestionHost tcp) => Math.Max(tcp.Window.Cwnd, tcp.Window.PriorCwnd);

    /// <summary>.pkts_acked: an ACK was processed; <paramref name="rtt"/> is the RTT of the last newly (S)ACKed packet, if any.</summary>
    internal virtual void PacketsAcked(ICongestionHost tcp, int packetsAcked, TimeSpan? rtt) { }

    public override string ToString() => Name;
}
