namespace TcpLab.Stack.Settings;

/// <summary>TCP parameters (net.ipv4.tcp_*, net.core.somaxconn), defaults of a current kernel (checked on 6.18).</summary>
public sealed partial class Sysctls
{
    // ----- Connection establishment -----

    /// <summary>SYN retransmissions before connect() fails, on top of tcp_syn_linear_timeouts (tcp_write_timeout).</summary>
    [Sysctl("net.ipv4.tcp_syn_retries", Min = 1, Max = 127)]
    public int TcpSynRetries { get; set; } = 6;

    /// <summary>The first SYN retransmissions that keep the initial RTO instead of doubling it (6.5+).</summary>
    [Sysctl("net.ipv4.tcp_syn_linear_timeouts", Min = 0, Max = 127)]
    public int TcpSynLinearTimeouts { get; set; } = 4;

    /// <summary>SYN-ACK retransmissions before a request is dropped (reqsk_timer_handler).</summary>
    [Sysctl("net.ipv4.tcp_synack_retries", Min = 0, Max = 255)]
    public int TcpSynackRetries { get; set; } = 5;

    /// <summary>
    /// Without syncookies, SYNs are dropped once fewer than a quarter of this many request slots
    /// remain (that quarter is kept for peers proven alive). The listen() backlog bounds the SYN
    /// queue in every case.
    /// </summary>
    [Sysctl("net.ipv4.tcp_max_syn_backlog", Min = 0)]
    public int TcpMaxSynBacklog { get; set; } = 2048;

    /// <summary>Cap on listen() backlogs (and on TCP_FASTOPEN queue lengths).</summary>
    [Sysctl("net.core.somaxconn", Min = 0)]
    public int Somaxconn { get; set; } = 4096;

    /// <summary>1: answer a handshake-completing ACK with RST when the accept queue is full.</summary>
    [Sysctl("net.ipv4.tcp_abort_on_overflow", Max = 1)]
    public bool TcpAbortOnOverflow { get; set; }

    /// <summary>0 off, 1 when the SYN queue overflows, 2 always.</summary>
    [Sysctl("net.ipv4.tcp_syncookies", Max = 2)]
    public int TcpSyncookies { get; set; } = 1;

    /// <summary>
    /// TCP Fast Open (RFC 7413), a bit mask: 0x1 client, 0x2 server, 0x4 client sends data in
    /// the SYN without a cookie, 0x200 server accepts SYN data without a cookie, 0x400 every
    /// listener gets a Fast Open queue (its backlog) without the TCP_FASTOPEN option.
    /// </summary>
    [Sysctl("net.ipv4.tcp_fastopen", Min = int.MinValue)]
    public int TcpFastopen { get; set; } = FastOpenFlags.Client;

    [Sysctl("net.ipv4.ip_local_port_range", Min = 1, Max = 65535)]
    public int[] IpLocalPortRange { get; set; } = [32768, 60999];

    // ----- Options -----

    /// <summary>0 off; 1 on with a per-address-pair random offset; 2 on without the offset.</summary>
    [Sysctl("net.ipv4.tcp_timestamps", Max = 2)]
    public int TcpTimestamps { get; set; } = 1;

    [Sysctl("net.ipv4.tcp_window_scaling", Max = 1)]
    public bool TcpWindowScaling { get; set; } = true;

    [Sysctl("net.ipv4.tcp_sack", Max = 1)]
    public bool TcpSack { get; set; } = true;

    // ----- Retransmission -----

    /// <summary>Lower bound of rttvar, hence of the RTO above srtt (tcp_rto_min_us, 6.11+).</summary>
    [Sysctl("net.ipv4.tcp_rto_min_us", Unit = SysctlUnit.Microseconds, Min = 1)]
    public TimeSpan TcpRtoMin { get; set; } = TimeSpan.FromMilliseconds(200);

    /// <summary>Upper bound of the RTO and of its backoff (TCP_RTO_MAX, a sysctl since 6.15).</summary>
    [Sysctl("net.ipv4.tcp_rto_max_ms", Unit = SysctlUnit.Milliseconds, Min = 1000, Max = 120_000)]
    public TimeSpan TcpRtoMax { get; set; } = TimeSpan.FromSeconds(120);

    /// <summary>Retransmissions after which the network layer is told the path may be bad.</summary>
    [Sysctl("net.ipv4.tcp_retries1", Max = 255)]
    public int TcpRetries1 { get; set; } = 3;

    /// <summary>Retransmissions worth of time (a budget, see retransmits_timed_out) before an established connection gives up.</summary>
    [Sysctl("net.ipv4.tcp_retries2", Max = 255)]
    public int TcpRetries2 { get; set; } = 15;

    /// <summary>Like tcp_retries2 for sockets the application has closed; 0 means 8.</summary>
    [Sysctl("net.ipv4.tcp_orphan_retries", Max = 255)]
    public int TcpOrphanRetries { get; set; }

    // ----- Closing -----

    /// <summary>How long an orphaned connection stays in FIN_WAIT_2.</summary>
    [Sysctl("net.ipv4.tcp_fin_timeout", Unit = SysctlUnit.Seconds, Min = 1, Max = 8_589_934)]
    public TimeSpan TcpFinTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>Most TIME_WAIT sockets kept; beyond it connections close without TIME_WAIT.</summary>
    [Sysctl("net.ipv4.tcp_max_tw_buckets", Min = 0)]
    public int TcpMaxTwBuckets { get; set; } = 131_072;

    /// <summary>0 never, 1 always, 2 loopback only: reuse a TIME_WAIT tuple for a new outgoing connection.</summary>
    [Sysctl("net.ipv4.tcp_tw_reuse", Max = 2)]
    public int TcpTwReuse { get; set; } = 2;

    /// <summary>1: an RST in TIME_WAIT does not end it (RFC 1337 hazard H1).</summary>
    [Sysctl("net.ipv4.tcp_rfc1337", Max = 1)]
    public bool TcpRfc1337 { get; set; }

    // ----- Keepalive -----

    [Sysctl("net.ipv4.tcp_keepalive_time", Unit = SysctlUnit.Seconds, Min = 1, Max = 32767)]
    public TimeSpan TcpKeepaliveTime { get; set; } = TimeSpan.FromSeconds(7200);

    [Sysctl("net.ipv4.tcp_keepalive_intvl", Unit = SysctlUnit.Seconds, Min = 1, Max = 32767)]
    public TimeSpan TcpKeepaliveIntvl { get; set; } = TimeSpan.FromSeconds(75);

    [Sysctl("net.ipv4.tcp_keepalive_probes", Min = 1, Max = 127)]
    public int TcpKeepaliveProbes { get; set; } = 9;

    // ----- Buffers and ACKs -----

    /// <summary>
    /// Receive buffer min, default, max in bytes. The max is 32 MiB on current kernels (as read
    /// from Linux 6.18 here); 6.12 and older used 6 MiB, which makes the window scale 7 instead of 10.
    /// </summary>
    [Sysctl("net.ipv4.tcp_rmem", Min = 4096)]
    public int[] TcpRmem { get; set; } = [4096, 131072, 33554432];

    /// <summary>Send buffer min, default, max in bytes.</summary>
    [Sysctl("net.ipv4.tcp_wmem", Min = 1)]
    public int[] TcpWmem { get; set; } = [4096, 16384, 4194304];

    /// <summary>Cap on SO_RCVBUF; also a floor of the space the window scale is chosen for.</summary>
    [Sysctl("net.core.rmem_max", Min = 0)]
    public int CoreRmemMax { get; set; } = 212_992;

    /// <summary>Cap on SO_SNDBUF.</summary>
    [Sysctl("net.core.wmem_max", Min = 0)]
    public int CoreWmemMax { get; set; } = 212_992;

    /// <summary>
    /// Receive-buffer autotuning (tcp_rcv_space_adjust): sk_rcvbuf follows twice what the
    /// application read per RTT, up to tcp_rmem[2]. Off for sockets with SO_RCVBUF.
    /// </summary>
    [Sysctl("net.ipv4.tcp_moderate_rcvbuf", Min = 0, Max = 1)]
    public int TcpModerateRcvbuf { get; set; } = 1;

    /// <summary>
    /// Reserve 1/2^tcp_app_win of the window for the application (0: none); with the default 31
    /// only the one-segment reservation of tcp_init_buffer_space remains.
    /// </summary>
    [Sysctl("net.ipv4.tcp_app_win", Min = 0, Max = 31)]
    public int TcpAppWin { get; set; } = 31;

    /// <summary>Data sent this soon after data arrived makes the connection interactive (no quick ACKs).</summary>
    [Sysctl("net.ipv4.tcp_pingpong_thresh", Min = 1, Max = 255)]
    public int TcpPingpongThresh { get; set; } = 1;

    // ----- Defences -----

    /// <summary>Challenge ACKs per second host-wide (RFC 5961 section 7); 2147483647 means unlimited.</summary>
    [Sysctl("net.ipv4.tcp_challenge_ack_limit", Min = 0)]
    public int TcpChallengeAckLimit { get; set; } = int.MaxValue;

    /// <summary>Minimum spacing of duplicate ACKs sent for out-of-window segments on one connection.</summary>
    [Sysctl("net.ipv4.tcp_invalid_ratelimit", Unit = SysctlUnit.Milliseconds, Min = 0)]
    public TimeSpan TcpInvalidRatelimit { get; set; } = TimeSpan.FromMilliseconds(500);
}

/// <summary>The bits of net.ipv4.tcp_fastopen (include/net/tcp.h TFO_*).</summary>
public static class FastOpenFlags
{
    /// <summary>TFO_CLIENT_ENABLE: connect with data in the SYN (sendto MSG_FASTOPEN, TCP_FASTOPEN_CONNECT).</summary>
    public const int Client = 0x1;
    /// <summary>TFO_SERVER_ENABLE: listeners with a Fast Open queue accept data in the SYN.</summary>
    public const int Server = 0x2;
    /// <summary>TFO_CLIENT_NO_COOKIE: send SYN data without a cookie option.</summary>
    public const int ClientNoCookie = 0x4;
    /// <summary>TFO_SERVER_COOKIE_NOT_REQD: accept SYN data without (or with any) cookie.</summary>
    public const int ServerCookieNotRequired = 0x200;
    /// <summary>TFO_SERVER_WO_SOCKOPT1: every listener gets a Fast Open queue as long as its backlog.</summary>
    public const int ServerWithoutSocketOption = 0x400;
}
