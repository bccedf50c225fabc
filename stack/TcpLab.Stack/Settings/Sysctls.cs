namespace TcpLab.Stack.Settings;

/// <summary>
/// The kernel parameters of one stack, under Linux's /proc/sys names (dots for slashes), with
/// the defaults of a current 6.x kernel. Each host of a scenario has its own copy.
/// <para>
/// Set them by key with <see cref="SysctlRegistry"/> (from appsettings.json, <c>--set key=value</c>
/// or a scenario file); values are validated against the kernel's own ranges, and a bad one is
/// an error naming the key and the range. Only parameters the stack honours are listed here.
/// </para>
/// </summary>
public sealed partial class Sysctls
{
    // ----- IPv4 -----

    [Sysctl("net.ipv4.ip_default_ttl", Min = 1, Max = 255)]
    public int IpDefaultTtl { get; set; } = 64;

    /// <summary>How long an incomplete datagram waits for its fragments (ip_expire).</summary>
    [Sysctl("net.ipv4.ipfrag_time", Unit = SysctlUnit.Seconds, Min = 1)]
    public TimeSpan IpFragTime { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Memory the reassembly queues may hold; beyond it new fragments are dropped.</summary>
    [Sysctl("net.ipv4.ipfrag_high_thresh", Min = 0)]
    public int IpFragHighThresh { get; set; } = 4 * 1024 * 1024;

    // ----- ICMP -----

    [Sysctl("net.ipv4.icmp_echo_ignore_all", Max = 1)]
    public bool IcmpEchoIgnoreAll { get; set; }

    /// <summary>Minimum spacing of rate-limited ICMP errors to one destination (icmpv4_xrlim_allow).</summary>
    [Sysctl("net.ipv4.icmp_ratelimit", Unit = SysctlUnit.Milliseconds, Min = 0)]
    public TimeSpan IcmpRateLimit { get; set; } = TimeSpan.FromMilliseconds(1000);

    /// <summary>Host-wide budget of ICMP errors per second (icmp_global_allow).</summary>
    [Sysctl("net.ipv4.icmp_msgs_per_sec", Min = 0)]
    public int IcmpMsgsPerSec { get; set; } = 1000;

    [Sysctl("net.ipv4.icmp_msgs_burst", Min = 0)]
    public int IcmpMsgsBurst { get; set; } = 50;

    // ----- Neighbour (ARP) table: net.ipv4.neigh.default.* -----

    /// <summary>Broadcast ARP requests sent while resolving before giving up (NEIGH_VAR_MCAST_PROBES).</summary>
    [Sysctl("net.ipv4.neigh.default.mcast_solicit", Min = 0, Max = 255)]
    public int NeighMcastSolicit { get; set; } = 3;

    /// <summary>Unicast probes sent to re-confirm a stale neighbour (NEIGH_VAR_UCAST_PROBES).</summary>
    [Sysctl("net.ipv4.neigh.default.ucast_solicit", Min = 0, Max = 255)]
    public int NeighUcastSolicit { get; set; } = 3;

    [Sysctl("net.ipv4.neigh.default.retrans_time_ms", Unit = SysctlUnit.Milliseconds, Min = 1)]
    public TimeSpan NeighRetransTime { get; set; } = TimeSpan.FromMilliseconds(1000);

    /// <summary>Mean time a confirmed neighbour stays REACHABLE (randomised 0.5x..1.5x, neigh_rand_reach_time).</summary>
    [Sysctl("net.ipv4.neigh.default.base_reachable_time_ms", Unit = SysctlUnit.Milliseconds, Min = 1)]
    public TimeSpan NeighBaseReachableTime { get; set; } = TimeSpan.FromMilliseconds(30_000);

    [Sysctl("net.ipv4.neigh.default.delay_first_probe_time", Unit = SysctlUnit.Seconds, Min = 0)]
    public TimeSpan NeighDelayFirstProbeTime { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Bytes of packets queued per neighbour while it resolves; the oldest are dropped beyond it.</summary>
    [Sysctl("net.ipv4.neigh.default.unres_qlen_bytes", Min = 0)]
    public int NeighUnresolvedQueueBytes { get; set; } = 212_992;

    // ----- The lab's model of the kernel (no /proc/sys counterpart) -----

    /// <summary>
    /// CONFIG_HZ of the kernel being modelled: TCP timers are rounded to 1/HZ ticks as Linux's
    /// are. 250 is Debian's (and this lab machine's) value; 0 makes timers exact.
    /// </summary>
    [Sysctl("lab.hz", Min = 0, Max = 10_000)]
    public int LabHz { get; set; } = 250;

    /// <summary>1: also model the timer wheel's lateness (up to 1/8 of a long timer), to compare with a real kernel to the jiffy.</summary>
    [Sysctl("lab.timer_wheel_slack", Max = 1)]
    public bool LabTimerWheelSlack { get; set; }

    /// <summary>
    /// 1: the SYN queue counts as full once it holds as many requests as the backlog
    /// (inet_csk_reqsk_queue_is_full's `>=` of kernels 4.4 to 6.13, under which listen(0) without
    /// syncookies accepts nothing); 0: only when it holds more (6.14 on, like the accept queue).
    /// </summary>
    [Sysctl("lab.syn_queue_full_at_backlog", Max = 1)]
    public bool LabSynQueueFullAtBacklog { get; set; }

    /// <summary>A copy that can be changed without touching this one (each host owns its set).</summary>
    public Sysctls Clone()
    {
        var copy = (Sysctls)MemberwiseClone();
        copy.IpLocalPortRange = [.. IpLocalPortRange];
        copy.TcpRmem = [.. TcpRmem];
        copy.TcpWmem = [.. TcpWmem];
        return copy;
    }

    /// <summary>Checks that span keys (ipv4_local_port_range refuses a range whose end is below its start) and names (the congestion control must exist).</summary>
    internal void Validate()
    {
        if (IpLocalPortRange[1] < IpLocalPortRange[0])
            throw new SysctlException($"net.ipv4.ip_local_port_range: {IpLocalPortRange[0]} {IpLocalPortRange[1]} ends before it starts");
        if (!Tcp.Congestion.CongestionControl.IsAvailable(TcpCongestionControl))
            throw new SysctlException($"net.ipv4.tcp_congestion_control: '{TcpCongestionControl}' is not available (ENOENT); "
                                      + $"available: {string.Join(' ', Tcp.Congestion.CongestionControl.Available)}");
    }
}
