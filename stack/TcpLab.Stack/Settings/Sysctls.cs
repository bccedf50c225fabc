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

    /// <summary>A copy that can be changed without touching this one (each host owns its set).</summary>
    public Sysctls Clone() => (Sysctls)MemberwiseClone();
}
