namespace TcpLab.Stack.Settings;

/// <summary>
/// Loss recovery and congestion control (net.ipv4.tcp_*), with the defaults of a current kernel
/// (Documentation/networking/ip-sysctl.rst). A document's classic behaviour comes back with
/// <c>tcp_recovery=0 tcp_early_retrans=0</c> (three duplicate ACKs, no RACK or TLP),
/// <c>tcp_frto=0</c> and <c>tcp_congestion_control=reno</c>.
/// </summary>
public sealed partial class Sysctls
{
    /// <summary>
    /// Algorithm for new connections ("cubic" or "reno"); a listener's choice passes to the
    /// connections it accepts, TCP_CONGESTION overrides it per socket.
    /// </summary>
    [Sysctl("net.ipv4.tcp_congestion_control")]
    public string TcpCongestionControl { get; set; } = "cubic";

    /// <summary>Initial reordering degree: duplicate ACKs (or SACKed segments) that mean loss (tp->reordering).</summary>
    [Sysctl("net.ipv4.tcp_reordering", Min = 1, Max = 300)]
    public int TcpReordering { get; set; } = 3;

    /// <summary>Highest reordering degree a connection may learn from SACKs, D-SACKs and timestamps.</summary>
    [Sysctl("net.ipv4.tcp_max_reordering", Min = 1)]
    public int TcpMaxReordering { get; set; } = 300;

    /// <summary>
    /// Bitmap: 0x1 RACK loss detection (RFC 8985), which replaces the duplicate-ACK threshold for
    /// SACK connections; 0x2 a static reordering window (min_rtt/4); 0x4 no duplicate-ACK heuristic in RACK.
    /// </summary>
    [Sysctl("net.ipv4.tcp_recovery", Max = 7)]
    public int TcpRecovery { get; set; } = 1;

    /// <summary>Tail loss probes: 0 off, 3 or 4 on (1 and 2 were early retransmit, removed from Linux).</summary>
    [Sysctl("net.ipv4.tcp_early_retrans", Max = 4)]
    public int TcpEarlyRetrans { get; set; } = 3;

    /// <summary>F-RTO (RFC 5682), detection of spurious retransmission timeouts; 0 off.</summary>
    [Sysctl("net.ipv4.tcp_frto", Max = 2)]
    public int TcpFrto { get; set; } = 2;

    /// <summary>Send D-SACK blocks for duplicate data (RFC 2883).</summary>
    [Sysctl("net.ipv4.tcp_dsack", Max = 1)]
    public bool TcpDsack { get; set; } = true;

    /// <summary>RFC 2861: after an idle period longer than the RTO, restart from the initial window.</summary>
    [Sysctl("net.ipv4.tcp_slow_start_after_idle", Max = 1)]
    public bool TcpSlowStartAfterIdle { get; set; } = true;

    /// <summary>Longest a receiver holds back SACK-carrying ACKs once three were sent for one hole (5 % of the RTT if less).</summary>
    [Sysctl("net.ipv4.tcp_comp_sack_delay_ns", Unit = SysctlUnit.Nanoseconds)]
    public TimeSpan TcpCompSackDelay { get; set; } = TimeSpan.FromMilliseconds(1);

    /// <summary>Most SACK-carrying ACKs held back in a row; 0 never holds any back.</summary>
    [Sysctl("net.ipv4.tcp_comp_sack_nr", Max = 255)]
    public int TcpCompSackNr { get; set; } = 44;
}
