using TcpLab.Stack.Diagnostics;
using TcpLab.Stack.Settings;
using TcpLab.Stack.Time;
using TcpLab.Stack.Wire;

namespace TcpLab.Stack.Tcp;

/// <summary>
/// The server side of TCP Fast Open (RFC 7413, net/ipv4/tcp_fastopen.c): a SYN with a valid
/// cookie becomes a connection at once, its data readable before the handshake completes, and
/// it joins the accept queue in SYN_RECV; a cookie request gets a cookie in the SYN-ACK; a bad
/// cookie gets the right one and an ordinary handshake. At most FastOpenQueueLimit children
/// may wait for their final ACK.
/// </summary>
public sealed partial class ListenSocket
{
    private static readonly TimeSpan ResetFastOpenHold = TimeSpan.FromSeconds(60);

    /// <summary>Expiry times of reset Fast Open requests still counted (fastopenq.rskq_rst_head..tail).</summary>
    private readonly Queue<Instant> _resetFastOpenRequests = new();

    /// <summary>fastopenq.max_qlen: 0 means Fast Open is off for this listener.</summary>
    public int FastOpenQueueLimit { get; }

    /// <summary>fastopenq.qlen: Fast Open children still in SYN_RECV, plus reset ones held for 60 s.</summary>
    public int FastOpenQueueLength { get; private set; }

    /// <summary>What the SYN-ACK of an ordinary request says about Fast Open, or that a child took the SYN.</summary>
    private readonly record struct FastOpenAnswer(bool ChildCreated, byte[]? Cookie = null, FastOpenEncoding Encoding = FastOpenEncoding.Rfc7413);

    /// <summary>fastopen_queue_tune from TCP_FASTOPEN, or from the backlog when tcp_fastopen has 0x400 (inet_listen).</summary>
    private int InitialFastOpenQueueLimit(Sysctls sysctls)
    {
        uint somaxconn = (uint)sysctls.Somaxconn;
        if (Options.FastOpenQueueLength is { } requested) return (int)Math.Min((uint)requested, somaxconn);
        int flags = sysctls.TcpFastopen;
        bool withoutOption = (flags & FastOpenFlags.ServerWithoutSocketOption) != 0 && (flags & FastOpenFlags.Server) != 0;
        return withoutOption ? (int)Math.Min((uint)Backlog, somaxconn) : 0;
    }

    /// <summary>
    /// tcp_fastopen_queue_check: room for one more Fast Open child? A reset child keeps its
    /// place for 60 s (reqsk_fastopen_remove), a defence against spoofed Fast Open SYNs.
    /// </summary>
    private bool FastOpenQueueHasRoom()
    {
        if (FastOpenQueueLimit == 0) return false;
        if (FastOpenQueueLength < FastOpenQueueLimit) return true;
        if (!_resetFastOpenRequests.TryPeek(out Instant until) || until > Tcp.Now)
        {
            Tcp.Counters.Increment(Mib.TcpExtTCPFastOpenListenOverflow);
            return false;
        }
        _resetFastOpenRequests.Dequeue();
        FastOpenQueueLength--;
        return true;
    }

    /// <summary>
    /// tcp_try_fastopen: whether this SYN becomes a Fast Open child, and otherwise which cookie
    /// (if any) the ordinary SYN-ACK carries.
    /// </summary>
    private FastOpenAnswer TryFastOpen(RequestSocket request, in Segment syn)
    {
        TcpOptions options = syn.Header.Options;
        bool hasOption = options.FastOpen != FastOpenEncoding.None;
        ReadOnlySpan<byte> cookie = options.Cookie;
        if (hasOption && cookie.IsEmpty) Tcp.Counters.Increment(Mib.TcpExtTCPFastOpenCookieReqd);
        bool synData = syn.EndSeq != syn.Seq + 1;
        if ((Tcp.Sysctls.TcpFastopen & FastOpenFlags.Server) == 0 || !(synData || hasOption) || !FastOpenQueueHasRoom())
            return default;

        bool cookieNotRequired = (Tcp.Sysctls.TcpFastopen & FastOpenFlags.ServerCookieNotRequired) != 0 || Options.FastOpenNoCookie;
        if (cookieNotRequired)
        {
            CreateFastOpenChild(request, syn, synAckCookie: null, options.FastOpen);
            return new FastOpenAnswer(ChildCreated: true);
        }
        if (!hasOption) return default;
        var (client, server) = (request.Tuple.RemoteAddress, request.Tuple.LocalAddress);
        byte[] valid = Tcp.FastOpenKeys.CookieFor(client, server);
        if (cookie.IsEmpty) return new FastOpenAnswer(false, valid, options.FastOpen);   // a cookie request
        int key = Tcp.FastOpenKeys.Check(cookie, client, server);
        if (key == 0)
        {
            // A bad (or outdated) cookie: an ordinary handshake, and the SYN-ACK carries the right one.
            Tcp.Counters.Increment(Mib.TcpExtTCPFastOpenPassiveFail);
            return new FastOpenAnswer(false, valid, options.FastOpen);
        }
        // Valid under the backup key: accepted, and the SYN-ACK brings a cookie under the new key.
        if (key == 2) Tcp.Counters.Increment(Mib.TcpExtTCPFastOpenPassiveAltKey);
        CreateFastOpenChild(request, syn, key == 2 ? valid : null, options.FastOpen);
        return new FastOpenAnswer(ChildCreated: true);
    }

    /// <summary>
    /// tcp_fastopen_create_child, then the rest of tcp_conn_request's Fast Open branch: the
    /// child takes the SYN's data, the SYN-ACK acknowledges it, and the child is in the accept
    /// queue before the handshake completes. Its request stays with it for SYN-ACK
    /// retransmissions and is not in the SYN queue.
    /// </summary>
    private void CreateFastOpenChild(RequestSocket request, in Segment syn, byte[]? synAckCookie, FastOpenEncoding encoding)
    {
        Tcp.Counters.Increment(Mib.TcpExtTCPFastOpenPassive);
        var child = TcpConnection.CreateFastOpenChild(Tcp, request, syn, Options.Clone());
        FastOpenQueueLength++;
        Tcp.AddFlow(child);
        Tcp.NotifyStateChange(child, TcpState.Listen, TcpState.SynReceived);
        request.SendSynAck(new PacketCause(CauseCode.TcpSynAckFastOpen, syn.Length), synAckCookie, encoding);
        _acceptQueue.Enqueue(child);
        Acceptable?.Invoke(this);
    }

    /// <summary>
    /// reqsk_fastopen_remove: a Fast Open child left SYN_RECV, closed, or was reset. A child
    /// that was reset after accept() keeps counting against the queue for 60 s.
    /// </summary>
    internal void FastOpenRequestDone(bool accepted, bool reset)
    {
        FastOpenQueueLength--;
        if (!accepted || !reset || IsClosed) return;
        _resetFastOpenRequests.Enqueue(Tcp.Now + ResetFastOpenHold);
        FastOpenQueueLength++;
    }
}
