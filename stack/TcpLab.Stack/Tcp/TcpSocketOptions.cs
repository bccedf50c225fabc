namespace TcpLab.Stack.Tcp;

/// <summary>
/// Per-socket options (setsockopt), each overriding a sysctl for one socket when set. A
/// listener's options are inherited by the connections it accepts, as in Linux.
/// </summary>
public sealed class TcpSocketOptions
{
    /// <summary>TCP_NODELAY: send small segments at once instead of waiting for outstanding ACKs (Nagle off).</summary>
    public bool NoDelay { get; set; }

    /// <summary>SO_KEEPALIVE.</summary>
    public bool KeepAlive { get; set; }

    /// <summary>TCP_KEEPIDLE (1..32767 s), else net.ipv4.tcp_keepalive_time.</summary>
    public TimeSpan? KeepIdle { get; set; }

    /// <summary>TCP_KEEPINTVL (1..32767 s), else net.ipv4.tcp_keepalive_intvl.</summary>
    public TimeSpan? KeepInterval { get; set; }

    /// <summary>TCP_KEEPCNT (1..127), else net.ipv4.tcp_keepalive_probes.</summary>
    public int? KeepCount { get; set; }

    /// <summary>SO_LINGER: null off; zero makes close() send RST and skip TIME_WAIT.</summary>
    public TimeSpan? Linger { get; set; }

    /// <summary>TCP_LINGER2: orphaned FIN_WAIT_2 lifetime; negative closes with RST at once.</summary>
    public TimeSpan? Linger2 { get; set; }

    /// <summary>SO_RCVBUF in bytes (the kernel doubles it, as does the lab); disables receive autotuning.</summary>
    public int? ReceiveBufferSize { get; set; }

    /// <summary>SO_SNDBUF in bytes (doubled like the kernel does); disables send autotuning.</summary>
    public int? SendBufferSize { get; set; }

    /// <summary>TCP_SYNCNT: SYN (and, on a listener, SYN-ACK) retransmissions instead of the sysctl.</summary>
    public int? SynRetries { get; set; }

    /// <summary>TCP_MAXSEG: cap on the MSS we advertise and use.</summary>
    public int? MaxSegment { get; set; }

    /// <summary>
    /// TCP_FASTOPEN on a listener: how many Fast Open children may wait for their handshake's
    /// final ACK (capped by net.core.somaxconn); 0 or null leaves Fast Open off for it unless
    /// net.ipv4.tcp_fastopen has 0x400.
    /// </summary>
    public int? FastOpenQueueLength { get; set; }

    /// <summary>
    /// TCP_FASTOPEN_CONNECT: with a cookie cached for the server, connect() returns at once and
    /// the SYN leaves with the first write, carrying its data; without one the SYN asks for a cookie.
    /// </summary>
    public bool FastOpenConnect { get; set; }

    /// <summary>TCP_FASTOPEN_NO_COOKIE: send (client) or accept (listener) SYN data without a cookie.</summary>
    public bool FastOpenNoCookie { get; set; }

    /// <summary>TCP_CONGESTION: the congestion-control algorithm ("cubic", "reno"), else net.ipv4.tcp_congestion_control.</summary>
    public string? CongestionControl { get; set; }

    public TcpSocketOptions Clone() => (TcpSocketOptions)MemberwiseClone();

    /// <summary>Checks each value against the range Linux's setsockopt accepts (do_tcp_setsockopt).</summary>
    public void Validate()
    {
        Check(KeepIdle, "TCP_KEEPIDLE");
        Check(KeepInterval, "TCP_KEEPINTVL");
        if (KeepCount is < 1 or > 127) throw new TcpException(Errno.EINVAL, $"TCP_KEEPCNT {KeepCount} is out of range 1..127");
        if (SynRetries is < 1 or > 127) throw new TcpException(Errno.EINVAL, $"TCP_SYNCNT {SynRetries} is out of range 1..127");
        if (MaxSegment is < 88 or > 32767) throw new TcpException(Errno.EINVAL, $"TCP_MAXSEG {MaxSegment} is out of range 88..32767");
        if (ReceiveBufferSize is < 0 || SendBufferSize is < 0) throw new TcpException(Errno.EINVAL, "buffer sizes must be positive");
        if (FastOpenQueueLength is < 0) throw new TcpException(Errno.EINVAL, $"TCP_FASTOPEN {FastOpenQueueLength} must not be negative");
        if (CongestionControl is { } name && !Congestion.CongestionControl.IsAvailable(name))
            throw new TcpException(Errno.ENOENT, $"TCP_CONGESTION '{name}' is not available; available: {string.Join(' ', Congestion.CongestionControl.Available)}");

        static void Check(TimeSpan? value, string name)
        {
            if (value is { } v && (v < TimeSpan.FromSeconds(1) || v > TimeSpan.FromSeconds(32767)))
                throw new TcpException(Errno.EINVAL, $"{name} {v.TotalSeconds} s is out of range 1..32767 s");
        }
    }
}

/// <summary>A failed socket operation, carrying the errno Linux would have returned.</summary>
public sealed class TcpException(Errno errno, string? detail = null)
    : Exception(detail is null ? $"{errno}: {errno.Describe()}" : $"{errno}: {errno.Describe()} ({detail})")
{
    public Errno Errno { get; } = errno;
}
