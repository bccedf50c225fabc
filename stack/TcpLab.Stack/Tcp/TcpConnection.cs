using TcpLab.Stack.Diagnostics;
using TcpLab.Stack.Net;
using TcpLab.Stack.Settings;
using TcpLab.Stack.Time;
using TcpLab.Stack.Wire;
using Timer = TcpLab.Stack.Time.Timer;

namespace TcpLab.Stack.Tcp;

/// <summary>
/// The transmission control block of one connection (Linux's tcp_sock with its
/// inet_connection_sock), from SYN_SENT or SYN_RECV until CLOSED or its hand-over to a
/// <see cref="TimeWaitSocket"/>. The file is split by concern: this part holds the state and
/// what the application does; <c>.Input</c> processes segments (tcp_rcv_state_process),
/// <c>.Output</c> builds and sends them (tcp_write_xmit, tcp_transmit_skb), <c>.Timers</c>
/// holds the retransmit, delayed-ACK and keepalive timers (tcp_timer.c).
/// All of it runs on the stack's event loop.
/// </summary>
public sealed partial class TcpConnection : TcpFlow
{
    /// <summary>TCP_INIT_CWND (RFC 6928).</summary>
    internal const int InitialCwnd = 10;
    private const int MinMss = 88;                 // TCP_MIN_MSS
    internal const int DefaultPeerMss = 536;       // TCP_MSS_DEFAULT
    internal const int TimestampOptionSpace = 12;  // TCPOLEN_TSTAMP_ALIGNED

    private readonly TcpLayer _tcp;
    private TcpState _state;

    private TcpConnection(TcpLayer tcp, FourTuple tuple, TcpSocketOptions options, TcpState initial) : base(tuple)
    {
        options.Validate();
        _tcp = tcp;
        Options = options;
        _state = initial;
        Sysctls sysctls = tcp.Sysctls;
        _rtt = new RttEstimator(sysctls.TcpRtoMin, sysctls.TcpRtoMax);
        _rcvbuf = ReceiveBufferBytes(sysctls, options);
        _receiveBuffer = new ReceiveBuffer(RingFor(_rcvbuf));
        _cc = Congestion.CongestionControl.Create(options.CongestionControl ?? sysctls.TcpCongestionControl);
        _window.Cwnd = InitialCwnd;
        _reordering = sysctls.TcpReordering;
        _undoRetrans = -1;
        _sendBuffer = new SendBuffer(SendBufferBytes(sysctls, options));
        _retransmitTimer = tcp.Loop.CreateTimer(OnRetransmitTimer);
        _delayedAckTimer = tcp.Loop.CreateTimer(OnDelayedAckTimer);
        _compressedAckTimer = tcp.Loop.CreateTimer(OnCompressedAckTimer);
        _keepaliveTimer = tcp.Loop.CreateTimer(OnKeepaliveTimer);
        TsOffset = tcp.TimestampOffset(tuple);
        _ipId = (ushort)tcp.Random.NextUInt32();
    }

    internal TcpConnection(TcpLayer tcp, FourTuple tuple, TcpSocketOptions options) : this(tcp, tuple, options, TcpState.Closed) { }

    public TcpSocketOptions Options { get; }
    public override TcpState State => _state;
    internal TcpLayer Tcp => _tcp;
    private Sysctls Sysctls => _tcp.Sysctls;
    private Counters Counters => _tcp.Counters;
    private Instant Now => _tcp.Now;

    /// <summary>Receives the events the socket API turns into completed tasks.</summary>
    public ITcpConnectionObserver? Observer { get; set; }

    // ----- Sequence space (RFC 9293 3.3.1) -----

    /// <summary>SND.UNA, SND.NXT and RCV.NXT, read-only for observers.</summary>
    public SeqNum SendUnacknowledged => SndUna;
    public SeqNum SendNext => SndNxt;
    public SeqNum ReceiveNext => RcvNxt;

    internal SeqNum Iss;
    internal SeqNum SndUna;
    internal SeqNum SndNxt;
    /// <summary>End of everything queued to send, FIN included once queued (write_seq).</summary>
    internal SeqNum WriteSeq;
    /// <summary>The peer's window in bytes, scaled (snd_wnd).</summary>
    internal int SndWnd;
    internal SeqNum SndWl1;
    internal int MaxWindow;
    internal SeqNum Irs;
    internal SeqNum RcvNxt;
    /// <summary>rcv_nxt when our window was last advertised (rcv_wup).</summary>
    internal SeqNum RcvWup;
    /// <summary>The window we last advertised, in bytes (rcv_wnd).</summary>
    internal int RcvWnd;

    // ----- Negotiated options -----

    internal bool TimestampsOk;
    internal bool SackOk;
    internal byte SendWindowScale;      // the peer's shift
    internal byte ReceiveWindowScale;   // ours
    internal uint TsRecent;
    internal Instant? TsRecentStamp;
    internal readonly uint TsOffset;
    private int _peerMss;               // rx_opt.mss_clamp
    private int _advMss;                // what we told the peer (less 12 once timestamps are on)
    private int _mssCache;              // effective send MSS (mss_cache)
    private int _windowClamp;
    private int _rcvSsthresh;

    // ----- Buffers, RTT, timers -----

    private readonly SendBuffer _sendBuffer;
    private readonly ReceiveBuffer _receiveBuffer;
    /// <summary>sk_rcvbuf: the receive memory limit, in Linux's truesize accounting (see <see cref="ReceiveMemory"/>).</summary>
    private int _rcvbuf;
    /// <summary>tp->scaling_ratio: the share of buffer memory offered as window, in 1/256.</summary>
    private int _scalingRatio = ReceiveMemory.DefaultScalingRatio;
    private readonly RttEstimator _rtt;
    private readonly Timer _retransmitTimer;
    private readonly Timer _delayedAckTimer;
    private readonly Timer _compressedAckTimer;
    private readonly Timer _keepaliveTimer;
    private ushort _ipId;

    // ----- Application-side state -----

    private bool _orphaned;             // SOCK_DEAD: close() was called
    private bool _receiveShutdown;      // RCV_SHUTDOWN: the peer's FIN arrived (or shutdown(RD))
    private bool _sendShutdown;         // SEND_SHUTDOWN: our FIN is queued
    private bool _finQueued;
    private bool _finReceived;          // SOCK_DONE: the peer's FIN arrived, reads end with 0
    private bool _errorReported;        // sock_error() hands the pending error out once
    private bool _accepted;
    private Errno _softError;

    /// <summary>The pending error (sk_err): why the connection failed, as errno.</summary>
    public Errno Error { get; private set; }

    /// <summary>True once close() was called: nobody will read or write any more.</summary>
    public bool IsOrphaned => _orphaned;

    /// <summary>Bytes the application can read now.</summary>
    public int ReadableBytes => _receiveBuffer.Readable;

    /// <summary>Nothing more will arrive (the peer's FIN, a reset, close): reads return 0 or the pending error once the buffer is empty.</summary>
    public bool EndOfStream => _receiveShutdown;

    /// <summary>Room for the application's data in the send buffer.</summary>
    public int WritableBytes => _sendShutdown || _state == TcpState.Closed ? 0 : _sendBuffer.Free;

    /// <summary>Bytes written by the application and not yet acknowledged (Send-Q of an established socket).</summary>
    public int SendQueueBytes => _sendBuffer.Count;

    /// <summary>Bytes received and not yet read (Recv-Q).</summary>
    public int ReceiveQueueBytes => _receiveBuffer.Readable;

    internal int ReceiveWindowRemaining => Math.Max(0, RcvWup + RcvWnd - RcvNxt);

    // ----- Creation -----

    /// <summary>
    /// tcp_v4_connect + tcp_connect_init: everything up to the first SYN, which <see cref="Connect"/>
    /// sends unless TCP_FASTOPEN_CONNECT defers it to the first write. With
    /// <paramref name="fastOpen"/> (sendto MSG_FASTOPEN) <paramref name="data"/> is queued first,
    /// for the SYN to carry what it can; returns the bytes queued.
    /// </summary>
    internal int StartConnect(ReadOnlySpan<byte> data, bool fastOpen)
    {
        Sysctls sysctls = Sysctls;
        _advMss = AdvertisedMss(_tcp, Tuple.RemoteAddress, Options);
        _peerMss = Options.MaxSegment ?? DefaultPeerMss;
        if (Iss == default) Iss = _tcp.NewIsn(Tuple);
        SndUna = SndNxt = WriteSeq = Iss;
        int receiveBuffer = ReceiveBufferBytes(sysctls, Options);
        int windowClamp = Options.ReceiveBufferSize is null ? 0 : InitialWindow.WindowFromSpace(receiveBuffer);
        // The SYN's window ignores timestamp room: ts_recent_stamp is 0 on a new socket.
        var (window, clamp, scale) = InitialWindow.Select(InitialWindow.WindowFromSpace(receiveBuffer), _advMss, windowClamp,
                                                          sysctls.TcpWindowScaling, Math.Max(sysctls.TcpRmem[2], sysctls.CoreRmemMax));
        RcvWnd = window;
        _windowClamp = clamp;
        ReceiveWindowScale = sysctls.TcpWindowScaling ? scale : (byte)0;
        _rcvSsthresh = window;
        RcvNxt = RcvWup = default;

        SetState(TcpState.SynSent);
        WriteSeq = SndNxt = Iss + 1;
        int queued = 0;
        if (fastOpen)
        {
            _fastOpenRequested = true;
            queued = AppendToSendBuffer(data);
        }
        else if (Options.FastOpenConnect && DeferConnect())
        {
            return 0;
        }
        Connect();
        return queued;
    }

    /// <summary>
    /// tcp_connect: the SYN, the first segment in flight, occupying one sequence number (its ACK
    /// gives the first RTT sample unless it had to be retransmitted, Karn's rule); with Fast Open
    /// it may carry data (<see cref="SendSynData"/>).
    /// </summary>
    private void Connect()
    {
        Counters.Increment(Mib.TcpActiveOpens);
        _sent.Add(new SentSegment { Start = Iss, End = Iss + 1, Syn = true, FirstSent = Now, LastSent = Now });
        _retransStamp = Now;
        if (_fastOpenRequested) SendSynData();
        else TransmitSyn(new PacketCause(CauseCode.TcpSyn));
        ArmRetransmit(_rtt.Rto);
    }

    /// <summary>tcp_create_openreq_child: a connection in SYN_RECV built from a completed request.</summary>
    internal static TcpConnection CreateFromRequest(TcpLayer tcp, RequestSocket request, TcpSocketOptions options)
    {
        var c = new TcpConnection(tcp, request.Tuple, options, TcpState.SynReceived)
        {
            ConnectionId = request.ConnectionId,
            Iss = request.Iss,
            Irs = request.Irs,
            TimestampsOk = request.TimestampsOk,
            SackOk = request.SackOk,
            SendWindowScale = request.SendWindowScale,
            ReceiveWindowScale = request.ReceiveWindowScale,
            TsRecent = request.TsRecent,
        };
        c.SndUna = c.SndNxt = c.WriteSeq = request.Iss + 1;
        c.RcvNxt = c.RcvWup = request.RcvNxt;
        c.RcvWnd = request.ReceiveWindow;
        c._windowClamp = request.WindowClamp;
        c._rcvSsthresh = request.ReceiveWindow;
        c._advMss = request.AdvertisedMss;
        c._peerMss = Math.Min(request.PeerMss, options.MaxSegment ?? int.MaxValue);
        c.TsRecentStamp = request.TimestampsOk ? tcp.Now : null;
        c._totalRetrans = request.Retransmissions;
        if (request.Retransmissions > 0) c._undoMarker = request.Iss;   // as tcp_create_openreq_child after a SYN-ACK timeout
        c.SyncMss(0);
        tcp.Counters.Increment(Mib.TcpPassiveOpens);
        // tcp_synack_rtt_meas: an RTT sample from the SYN-ACK unless it was ever retransmitted.
        TimeSpan? rtt = request.Retransmissions == 0 && request.FirstSynAckSent is { } sent ? tcp.Now - sent : null;
        c._synAckRtt = rtt;
        if (options.KeepAlive) c.ArmKeepalive(c.KeepaliveTime);
        return c;
    }

    private TimeSpan? _synAckRtt;

    /// <summary>tcp_twsk_unique's hand-over: continue the sequence space of the TIME_WAIT entry we replace.</summary>
    internal void InheritFromTimeWait(TimeWaitSocket timeWait)
    {
        var (writeSeq, tsRecent, stamp) = timeWait.ReuseState;
        Iss = new SeqNum(writeSeq);
        TsRecent = tsRecent;
        TsRecentStamp = stamp;
    }

    /// <summary>The MSS we advertise: interface MTU less IP and TCP headers, capped by TCP_MAXSEG.</summary>
    internal static int AdvertisedMss(TcpLayer tcp, Ipv4Address remote, TcpSocketOptions options)
    {
        int mtu = tcp.Stack.Ip.TryRoute(remote, out NetworkInterface networkInterface, out _) ? networkInterface.Mtu : 1500;
        int mss = mtu - Ipv4Header.Length - TcpSegment.MinHeaderLength;
        return Math.Max(MinMss, Math.Min(mss, options.MaxSegment ?? int.MaxValue));
    }

    /// <summary>SOCK_MIN_RCVBUF and SOCK_MIN_SNDBUF: 2048 + sizeof(struct sk_buff), once or twice.</summary>
    private const int MinReceiveBuffer = 2304, MinSendBuffer = 2 * 2304;

    /// <summary>sk_rcvbuf: SO_RCVBUF doubled (sock_setsockopt, capped by rmem_max) or tcp_rmem[1].</summary>
    internal static int ReceiveBufferBytes(Sysctls sysctls, TcpSocketOptions options) =>
        options.ReceiveBufferSize is { } requested ? Math.Max(2 * Math.Min(requested, sysctls.CoreRmemMax), MinReceiveBuffer) : sysctls.TcpRmem[1];

    /// <summary>sk_sndbuf: SO_SNDBUF doubled (capped by wmem_max) or tcp_wmem[1] to start with.</summary>
    internal static int SendBufferBytes(Sysctls sysctls, TcpSocketOptions options) =>
        options.SendBufferSize is { } requested ? Math.Max(2 * Math.Min(requested, sysctls.CoreWmemMax), MinSendBuffer) : sysctls.TcpWmem[1];

    /// <summary>
    /// The receive ring for a buffer of <paramref name="rcvbuf"/> bytes: payload never costs more
    /// than its truesize, and Linux admits one segment past the limit, so rcvbuf plus the largest
    /// segment always fits.
    /// </summary>
    private static int RingFor(int rcvbuf) => rcvbuf + 65536;

    /// <summary>SOCK_RCVBUF_LOCK and SOCK_SNDBUF_LOCK: setsockopt fixed the size, so no autotuning.</summary>
    private bool ReceiveBufferLocked => Options.ReceiveBufferSize is not null;
    private bool SendBufferLocked => Options.SendBufferSize is not null;

    internal void SetTsRecent(uint tsVal)
    {
        TsRecent = tsVal;
        TsRecentStamp = Now;
    }

    // ----- State -----

    /// <summary>tcp_set_state: counters that track states, and the lab's state-change events.</summary>
    private void SetState(TcpState to)
    {
        TcpState from = _state;
        if (from == to) return;
        if (to == TcpState.Closed && from is TcpState.Established or TcpState.CloseWait) Counters.Increment(Mib.TcpEstabResets);
        _state = to;
        _tcp.NotifyStateChange(this, from, to);
        Observer?.OnStateChanged(this, from, to);
    }

    /// <summary>
    /// tcp_done: CLOSED, timers stopped, out of the hash; <paramref name="error"/> (if any) is
    /// what the application's pending and future calls fail with.
    /// </summary>
    private void Done(Errno error = Errno.None)
    {
        if (_state is TcpState.SynSent or TcpState.SynReceived) Counters.Increment(Mib.TcpAttemptFails);
        FastOpenRequestDone(reset: false);
        if (error != Errno.None) Error = error;
        StopTimers();
        _tcp.RemoveFlow(this);
        _receiveShutdown = _sendShutdown = true;
        SetState(TcpState.Closed);
        Observer?.OnClosed(this);
    }

    private void StopTimers()
    {
        _retransmitTimer.Cancel();
        _pendingTimer = PendingTimer.None;
        _delayedAckTimer.Cancel();
        _compressedAckTimer.Cancel();
        _ackState.Clear();
        _keepaliveTimer.Cancel();
    }

    /// <summary>tcp_time_wait: hand the tuple to a light TIME_WAIT (or orphaned FIN_WAIT_2) entry.</summary>
    private void EnterTimeWait(TcpState substate, TimeSpan timeout)
    {
        TimeSpan floor = RttEstimator.Backoff(_rtt.Rto, 2, TimeSpan.MaxValue) - TimeSpan.FromTicks(_rtt.Rto.Ticks / 2); // 3.5 × RTO
        if (timeout < floor) timeout = floor;
        if (substate == TcpState.TimeWait) timeout = TimeWaitSocket.TimeWaitLength;
        StopTimers();
        if (_tcp.TimeWaitCount >= Sysctls.TcpMaxTwBuckets)
        {
            // inet_twsk_alloc fails: the connection simply closes.
            Counters.Increment(Mib.TcpExtTCPTimeWaitOverflow);
            Done();
            return;
        }
        var timeWait = new TimeWaitSocket(_tcp, this, substate, timeout);
        _tcp.TimeWaitCount++;
        if (substate == TcpState.TimeWait) Counters.Increment(Mib.TcpExtTW);
        _tcp.ReplaceFlow(timeWait);
        TcpState from = _state;
        _state = TcpState.Closed;
        _receiveShutdown = _sendShutdown = true;
        // One transition for observers: the tuple moves on as TIME_WAIT (or FIN_WAIT_2).
        _tcp.NotifyStateChange(this, from, substate);
        Observer?.OnStateChanged(this, from, substate);
        Observer?.OnClosed(this);
    }

    // ----- Application operations (tcp.c) -----

    internal void Accepted() => _accepted = true;

    /// <summary>
    /// send(): copies as much of <paramref name="data"/> as the send buffer takes and pushes
    /// it out. Returns the bytes taken (0 when full: wait for <see cref="ITcpConnectionObserver.OnWritable"/>).
    /// </summary>
    public int Write(ReadOnlySpan<byte> data)
    {
        if (Error != Errno.None) throw new TcpException(Error);
        if (_sendShutdown || _state is TcpState.Closed)
            throw new TcpException(Errno.EPIPE, "the connection is closed for sending");
        if (_connectDeferred)
        {
            // TCP_FASTOPEN_CONNECT: this write sends the SYN, with as much of its data as fits.
            int queued = AppendToSendBuffer(data);
            _connectDeferred = false;
            _fastOpenRequested = true;
            Connect();
            return queued;
        }
        // A client mid-handshake only queues data when it asked for Fast Open (it leaves after
        // the SYN-ACK); a Fast Open child may send before its handshake completes.
        bool mayQueue = _state switch
        {
            TcpState.SynSent => _fastOpenRequested,
            TcpState.SynReceived => _accepted,
            _ => true,
        };
        if (!mayQueue) throw new TcpException(Errno.ENOTCONN);
        int taken = AppendToSendBuffer(data);
        if (taken > 0 && (_state is TcpState.Established or TcpState.CloseWait || _fastOpenRequest is not null))
            PushPendingFrames(nagle: !Options.NoDelay);
        return taken;
    }

    /// <summary>Copies what fits into the send buffer; the end of each write is a push point (tcp_mark_push: PSH).</summary>
    private int AppendToSendBuffer(ReadOnlySpan<byte> data)
    {
        if (_state is TcpState.Established or TcpState.CloseWait) SlowStartAfterIdleCheck();   // as tcp_skb_entail does
        int taken = _sendBuffer.Append(data);
        if (taken < data.Length) _sendBufferFull = true;   // SOCK_NOSPACE: wake the writer when room frees up
        if (taken == 0) return 0;
        SeqNum end = WriteSeq + taken;
        WriteSeq = end;
        _pushPoints.Enqueue(end);
        return taken;
    }

    /// <summary>
    /// recv(): copies in-order data out. With nothing to read, in tcp_recvmsg's order: 0 after the
    /// peer's FIN; the pending error (ECONNRESET, ETIMEDOUT, ...) once; then 0 once shut down.
    /// </summary>
    public int Read(Span<byte> destination)
    {
        int copied = _receiveBuffer.Read(destination);
        if (copied > 0)
        {
            AdjustReceiveSpace();
            CleanupReceiveBuffer(copied);
            return copied;
        }
        if (_finReceived) return 0;
        if (TakeError() is { } error) throw new TcpException(error);
        return 0;
    }

    /// <summary>sock_error(): the pending error, reported to the application once.</summary>
    private Errno? TakeError()
    {
        if (Error == Errno.None || _errorReported) return null;
        _errorReported = true;
        return Error;
    }

    /// <summary>shutdown(SHUT_WR): queue our FIN after the data (tcp_shutdown).</summary>
    public void ShutdownSend()
    {
        if (_state is TcpState.Established or TcpState.SynSent or TcpState.SynReceived or TcpState.CloseWait)
        {
            if (CloseState()) SendFin();
        }
    }

    /// <summary>
    /// close() (__tcp_close): unread data resets the connection (RFC 2525 2.17); SO_LINGER 0
    /// resets it too; otherwise the FIN follows the data and the connection lives on, orphaned,
    /// until the close handshake or a timer finishes it.
    /// </summary>
    public void Close()
    {
        if (_orphaned) return;
        int unread = _receiveBuffer.Readable;
        _receiveBuffer.PurgeOutOfOrder();
        _sackBlocks.Clear();
        _receiveShutdown = true;
        if (_state == TcpState.Closed)
        {
            // Already reset or timed out.
        }
        else if (unread > 0)
        {
            Counters.Increment(Mib.TcpExtTCPAbortOnClose);
            SendActiveReset(CauseCode.TcpRstAbort);
            Done();
        }
        else if (Options.Linger == TimeSpan.Zero)
        {
            Counters.Increment(Mib.TcpExtTCPAbortOnData);
            Disconnect(CauseCode.TcpRstLinger);
        }
        else if (CloseState())
        {
            SendFin();
        }
        _orphaned = true;
        Observer = null;

        if (_state == TcpState.FinWait2) OrphanedFinWait2();
        else if (_state is TcpState.SynSent) Done();
    }

    /// <summary>The FIN_WAIT_2 of an orphan is bounded by tcp_fin_timeout (TCP_LINGER2), as in __tcp_close.</summary>
    private void OrphanedFinWait2()
    {
        if (Options.Linger2 is { } linger2 && linger2 < TimeSpan.Zero)
        {
            SendActiveReset(CauseCode.TcpRstAbort);
            Counters.Increment(Mib.TcpExtTCPAbortOnLinger);
            Done();
            return;
        }
        TimeSpan timeout = FinTimeout;
        if (timeout > TimeWaitSocket.TimeWaitLength) ArmKeepalive(timeout - TimeWaitSocket.TimeWaitLength);
        else EnterTimeWait(TcpState.FinWait2, timeout);
    }

    /// <summary>tcp_fin_time: the orphan FIN_WAIT_2 timeout, at least 3.5 RTO.</summary>
    private TimeSpan FinTimeout
    {
        get
        {
            TimeSpan timeout = Options.Linger2 is { } l && l > TimeSpan.Zero ? l : Sysctls.TcpFinTimeout;
            TimeSpan floor = TimeSpan.FromTicks(_rtt.Rto.Ticks * 4 - _rtt.Rto.Ticks / 2);
            return timeout < floor ? floor : timeout;
        }
    }

    /// <summary>Abortive close: RST now, no TIME_WAIT (tcp_disconnect, SO_LINGER 0, or an application abort).</summary>
    public void Abort()
    {
        _orphaned = true;
        Observer = null;
        Disconnect(CauseCode.TcpRstAbort);
    }

    private void Disconnect(CauseCode cause)
    {
        if (_state == TcpState.Closed) return;
        bool needsReset = _state is TcpState.Established or TcpState.CloseWait or TcpState.FinWait1 or TcpState.FinWait2 or TcpState.SynReceived
                          || (SndNxt != WriteSeq && _state is TcpState.Closing or TcpState.LastAck);
        if (needsReset) SendActiveReset(cause);
        Done(needsReset || _state == TcpState.SynSent ? Errno.ECONNRESET : Errno.None);
    }

    /// <summary>tcp_close_state: the state close() or shutdown() moves to, and whether a FIN goes out.</summary>
    private bool CloseState()
    {
        (TcpState next, bool sendFin) = _state switch
        {
            TcpState.Established => (TcpState.FinWait1, true),
            TcpState.SynReceived => (TcpState.FinWait1, true),
            TcpState.CloseWait => (TcpState.LastAck, true),
            TcpState.SynSent => (TcpState.Closed, false),
            _ => (_state, false),
        };
        if (next == TcpState.Closed) Done();
        else SetState(next);
        return sendFin;
    }

    /// <summary>Turns keepalive on or off (tcp_set_keepalive).</summary>
    public void SetKeepAlive(bool enabled)
    {
        bool was = Options.KeepAlive;
        Options.KeepAlive = enabled;
        if (_state is TcpState.Closed or TcpState.Listen) return;
        if (enabled && !was) ArmKeepalive(KeepaliveTime);
        else if (!enabled) _keepaliveTimer.Cancel();
    }

    internal TimeSpan KeepaliveTime => Options.KeepIdle ?? Sysctls.TcpKeepaliveTime;
    private TimeSpan KeepaliveInterval => Options.KeepInterval ?? Sysctls.TcpKeepaliveIntvl;
    private int KeepaliveProbes => Options.KeepCount ?? Sysctls.TcpKeepaliveProbes;

    public override string ToString() => $"{Tuple} {_state.ToSsName()}";
}

/// <summary>What the socket API hears from a connection, on the loop.</summary>
public interface ITcpConnectionObserver
{
    void OnStateChanged(TcpConnection connection, TcpState from, TcpState to);
    /// <summary>Data, end of stream or an error can be read.</summary>
    void OnReadable(TcpConnection connection);
    /// <summary>The send buffer has room again.</summary>
    void OnWritable(TcpConnection connection);
    /// <summary>The connection left the table (closed, reset, timed out or went to TIME_WAIT).</summary>
    void OnClosed(TcpConnection connection);
}
