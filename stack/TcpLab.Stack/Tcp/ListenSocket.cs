using TcpLab.Stack.Diagnostics;
using TcpLab.Stack.Settings;
using TcpLab.Stack.Wire;

namespace TcpLab.Stack.Tcp;

/// <summary>
/// A listening socket with Linux's two queues: the SYN queue of half-open
/// <see cref="RequestSocket"/>s and the accept queue of connections waiting for accept().
/// Both are bounded by the backlog, min(listen() backlog, net.core.somaxconn): the accept queue
/// is full when it holds more than the backlog, so backlog + 1 connections fit
/// (sk_acceptq_is_full); the SYN queue too on current kernels (inet_csk_reqsk_queue_is_full;
/// lab.syn_queue_full_at_backlog selects the older `>=`). A full SYN queue means syncookies
/// (<c>.Syncookies.cs</c>) or a drop; SYN data is taken by Fast Open (<c>.FastOpen.cs</c>).
/// </summary>
public sealed partial class ListenSocket
{
    private readonly Queue<TcpConnection> _acceptQueue = new();

    internal ListenSocket(TcpLayer tcp, Ipv4Address address, ushort port, int backlog, TcpSocketOptions options)
    {
        Tcp = tcp;
        LocalAddress = address;
        Port = port;
        Options = options;
        // __sys_listen_socket compares as unsigned: a negative backlog means somaxconn.
        int somaxconn = tcp.Sysctls.Somaxconn;
        Backlog = (uint)backlog > (uint)somaxconn ? somaxconn : backlog;
        FastOpenQueueLimit = InitialFastOpenQueueLimit(tcp.Sysctls);
    }

    internal TcpLayer Tcp { get; }
    public Ipv4Address LocalAddress { get; }
    public ushort Port { get; }
    public TcpSocketOptions Options { get; }

    /// <summary>sk_max_ack_backlog: what `ss` shows as Send-Q of a listener.</summary>
    public int Backlog { get; }

    /// <summary>Connections waiting for accept(): what `ss` shows as Recv-Q of a listener.</summary>
    public int AcceptQueueLength => _acceptQueue.Count;

    /// <summary>Half-open requests (inet_csk_reqsk_queue_len).</summary>
    public int SynQueueLength { get; private set; }

    /// <summary>Requests whose SYN-ACK has not timed out yet (reqsk_queue_len_young).</summary>
    public int YoungRequests { get; private set; }

    public bool IsClosed { get; private set; }

    /// <summary>Raised on the loop when a connection joins the accept queue.</summary>
    public event Action<ListenSocket>? Acceptable;

    /// <summary>accept(): the oldest connection in the queue (a Fast Open child may still be in SYN_RECV), or null if none waits.</summary>
    public TcpConnection? TryAccept()
    {
        if (!_acceptQueue.TryDequeue(out TcpConnection? connection)) return null;
        connection.Accepted();
        return connection;
    }

    /// <summary>sk_acceptq_is_full.</summary>
    private bool AcceptQueueFull => _acceptQueue.Count > Backlog;

    /// <summary>inet_csk_reqsk_queue_is_full, with the comparison of the kernel being modelled.</summary>
    private bool SynQueueFull => Tcp.Sysctls.LabSynQueueFullAtBacklog ? SynQueueLength >= Backlog : SynQueueLength > Backlog;

    private int SynAckRetries => Options.SynRetries ?? Tcp.Sysctls.TcpSynackRetries;

    /// <summary>
    /// A segment for the listener itself (tcp_v4_do_rcv and tcp_rcv_state_process in LISTEN): an
    /// ACK may return a syncookie, otherwise it gets a reset; only a SYN without ACK, RST or FIN
    /// opens a request; the rest is dropped. <paramref name="isn"/> is set when a TIME_WAIT
    /// entry hands over a new SYN.
    /// </summary>
    internal void Receive(FourTuple tuple, in Segment segment, uint? isn, CauseCode resetCause = CauseCode.TcpRstListenerAck)
    {
        if (segment.HasAck)
        {
            if (!segment.Syn && !segment.Rst && Tcp.Sysctls.TcpSyncookies != 0 && TryCookieAck(tuple, segment)) return;
            Tcp.Counters.Drop(DropReason.TcpListen);
            Tcp.SendResetFor(tuple, segment, resetCause);
            return;
        }
        if (segment.Rst || !segment.Syn || segment.Fin)
        {
            Tcp.Counters.Drop(segment.Rst ? DropReason.TcpReset : DropReason.TcpFlags);
            return;
        }
        ReceiveSyn(tuple, segment, isn);
    }

    /// <summary>tcp_conn_request: admission checks in the kernel's order, then a cookie, a Fast Open child or a request.</summary>
    private void ReceiveSyn(FourTuple tuple, in Segment syn, uint? isn)
    {
        var counters = Tcp.Counters;
        var sysctls = Tcp.Sysctls;
        bool wantCookie = false;
        // TIME_WAIT handovers skip the SYN queue limits and cookies: the peer is evidently real.
        if (isn is null && (sysctls.TcpSyncookies == 2 || SynQueueFull))
        {
            wantCookie = SynFloodAction();
            if (!wantCookie)
            {
                ListenDrop();
                return;
            }
        }
        if (AcceptQueueFull)
        {
            // Current kernels answer nothing while the accept queue is full, cookies or not.
            counters.Increment(Mib.TcpExtListenOverflows);
            ListenDrop();
            return;
        }
        if (!wantCookie && isn is null && sysctls.TcpSyncookies == 0)
        {
            // Without syncookies the last quarter of tcp_max_syn_backlog is kept for peers
            // proven alive; the lab keeps no per-destination metrics, so none are proven.
            int max = sysctls.TcpMaxSynBacklog;
            if (max - SynQueueLength < max >> 2)
            {
                ListenDrop();
                return;
            }
        }

        // A cookie SYN-ACK leaves nothing behind: the connection gets its serial number when the cookie returns.
        var request = new RequestSocket(this, tuple) { Irs = syn.Seq, Syncookie = wantCookie, ConnectionId = wantCookie ? 0 : Tcp.NewConnectionId() };
        NegotiateOptions(request, syn.Header.Options);
        if (wantCookie)
        {
            SendCookieSynAck(request, syn);
            return;
        }
        request.Iss = isn is { } fromTimeWait ? new SeqNum(fromTimeWait) : Tcp.NewIsn(tuple);
        FastOpenAnswer fastOpen = TryFastOpen(request, syn);
        if (fastOpen.ChildCreated) return;
        SynQueueLength++;
        YoungRequests++;
        Tcp.AddFlow(request);
        Tcp.NotifyStateChange(request, TcpState.Listen, TcpState.SynReceived);
        request.Timer.Arm(Tcp.Deadline(request.Timeout));
        request.SendSynAck(new PacketCause(CauseCode.TcpSynAck), fastOpen.Cookie, fastOpen.Encoding);
    }

    /// <summary>
    /// tcp_syn_flood_action: the SYN queue is full (or tcp_syncookies=2): cookies if they are
    /// on, else the SYN is dropped.
    /// </summary>
    private bool SynFloodAction()
    {
        if (Tcp.Sysctls.TcpSyncookies != 0)
        {
            Tcp.Counters.Increment(Mib.TcpExtTCPReqQFullDoCookies);
            return true;
        }
        Tcp.Counters.Increment(Mib.TcpExtTCPReqQFullDrop);
        return false;
    }

    /// <summary>
    /// tcp_openreq_init: the SYN's options against our sysctls and TCP_MAXSEG. A syncookie can
    /// only bring options back through the timestamp, so without one the cookie SYN-ACK
    /// offers nothing but its MSS (tcp_conn_request clears the options).
    /// </summary>
    private void NegotiateOptions(RequestSocket request, in TcpOptions options)
    {
        var sysctls = Tcp.Sysctls;
        int peerMss = options.HasMss && options.Mss != 0 ? options.Mss : TcpConnection.DefaultPeerMss;
        if (Options.MaxSegment is { } userMss && userMss < peerMss) peerMss = userMss;
        request.PeerMss = (ushort)peerMss;
        request.TimestampsOk = options.HasTimestamp && sysctls.TcpTimestamps != 0;
        bool optionsSurvive = request.TimestampsOk || !request.Syncookie;
        request.SackOk = optionsSurvive && options.SackPermitted && sysctls.TcpSack;
        request.WindowScaleOk = optionsSurvive && options.HasWindowScale && sysctls.TcpWindowScaling;
        request.SendWindowScale = request.WindowScaleOk ? Math.Min(options.WindowScale, (byte)InitialWindow.MaxWindowScale) : (byte)0;
        request.TsRecent = request.TimestampsOk ? options.TsVal : 0;
        request.TsOffset = request.TimestampsOk ? Tcp.TimestampOffset(request.Tuple) : 0;
        request.AdvertisedMss = (ushort)TcpConnection.AdvertisedMss(Tcp, request.Tuple.RemoteAddress, Options);
        SelectReceiveWindow(request, request.AdvertisedMss - (request.TimestampsOk ? TcpConnection.TimestampOptionSpace : 0));
    }

    /// <summary>tcp_openreq_init_rwin: our first window and its scale, for segments of <paramref name="mss"/> bytes.</summary>
    private void SelectReceiveWindow(RequestSocket request, int mss)
    {
        var sysctls = Tcp.Sysctls;
        int receiveBuffer = TcpConnection.ReceiveBufferBytes(sysctls, Options);
        int windowClamp = Options.ReceiveBufferSize is null ? 0 : InitialWindow.WindowFromSpace(receiveBuffer);
        var (window, clamp, scale) = InitialWindow.Select(
            InitialWindow.WindowFromSpace(receiveBuffer), mss, windowClamp,
            request.WindowScaleOk, Math.Max(sysctls.TcpRmem[2], sysctls.CoreRmemMax));
        request.ReceiveWindow = window;
        request.WindowClamp = clamp;
        request.ReceiveWindowScale = scale;
    }

    /// <summary>
    /// tcp_check_req: a segment for a half-open request. For a Fast Open child the request only
    /// screens the segment (a retransmitted SYN, the window, RST and SYN bits): true means the
    /// child (<paramref name="fastOpenChild"/>) goes on to process it.
    /// </summary>
    internal bool ReceiveForRequest(RequestSocket request, in Segment segment, TcpConnection? fastOpenChild = null)
    {
        var counters = Tcp.Counters;
        bool pawsReject = false;
        TcpOptions options = segment.Header.Options;
        if (request.TimestampsOk && options.HasTimestamp)
            pawsReject = Paws.Rejects(request.TsRecent, options.TsVal, recentAge: request.Timeout, segment.Rst);

        TcpFlags flags = segment.Flags & (TcpFlags.Rst | TcpFlags.Syn | TcpFlags.Ack);
        if (segment.Seq == request.Irs && flags == TcpFlags.Syn && !pawsReject)
        {
            // A retransmitted SYN (its data, if any, is dropped): answer with a SYN-ACK at once
            // (not counted as a timeout retry) and push the timer out, as the SYN-ACK was lost.
            if (!Tcp.IsRateLimited(ref request.LastOutOfWindowAnswer, Mib.TcpExtTCPACKSkippedSynRecv))
            {
                RetransmitSynAck(request, new PacketCause(CauseCode.TcpSynAckForDuplicateSyn));
                if (fastOpenChild is null) request.Timer.Arm(Tcp.Deadline(request.Timeout));
            }
            return false;
        }
        if (fastOpenChild is null && (flags & TcpFlags.Ack) != 0 && (flags & TcpFlags.Rst) == 0 && segment.Ack != request.Iss + 1)
        {
            // Acknowledges something we never sent: the listener takes it (a cookie check, then a reset).
            Receive(request.Tuple, segment, isn: null, CauseCode.TcpRstInvalidAck);
            return false;
        }
        if (pawsReject || !InWindow(segment.Seq, segment.EndSeq, request.RcvNxt, request.RcvNxt + Math.Min(request.ReceiveWindow, 65535)))
        {
            if (!segment.Rst && !Tcp.IsRateLimited(ref request.LastOutOfWindowAnswer, Mib.TcpExtTCPACKSkippedSynRecv))
                SendRequestAck(request, CauseCode.TcpDuplicateAckOutOfWindow);
            if (pawsReject) counters.Increment(Mib.TcpExtPAWSEstab);
            return false;
        }
        if (segment.Seq == request.Irs) flags &= ~TcpFlags.Syn;   // the SYN bit of a SYN we already have
        if ((flags & TcpFlags.Rst) != 0 && segment.Seq != request.RcvNxt)
        {
            // RFC 5961 3.2 for requests (tcp_reqsk_send_challenge_ack).
            if (!Tcp.IsRateLimited(ref request.LastOutOfWindowAnswer, Mib.TcpExtTCPACKSkippedChallenge) && Tcp.ChallengeAckAllowed())
            {
                counters.Increment(Mib.TcpExtTCPChallengeACK);
                SendRequestAck(request, CauseCode.TcpChallengeAck);
            }
            return false;
        }
        if ((flags & (TcpFlags.Rst | TcpFlags.Syn)) != 0)
        {
            counters.Increment(Mib.TcpAttemptFails);
            EmbryonicReset(request, segment, fastOpenChild);
            return false;
        }
        if ((flags & TcpFlags.Ack) == 0) return false;
        if (fastOpenChild is not null) return true;

        if (AcceptQueueFull)
        {
            // tcp_v4_syn_recv_sock fails: ListenOverflows + ListenDrops, then per tcp_abort_on_overflow.
            counters.Increment(Mib.TcpExtListenOverflows);
            ListenDrop();
            if (!Tcp.Sysctls.TcpAbortOnOverflow)
            {
                request.Acked = true;   // keep retransmitting SYN-ACKs; the client thinks it is connected
                return false;
            }
            EmbryonicReset(request, segment, fastOpenChild: null, CauseCode.TcpRstListenOverflow);
            return false;
        }
        RemoveRequest(request);
        CompleteHandshake(request, segment, replacing: true);
        return false;
    }

    /// <summary>tcp_in_window: the segment overlaps the window [start, end).</summary>
    internal static bool InWindow(SeqNum seq, SeqNum endSeq, SeqNum start, SeqNum end)
    {
        if (seq == start) return true;
        if (endSeq > start && seq < end) return true;
        return seq == end && seq == endSeq;
    }

    /// <summary>
    /// syn_recv_sock + inet_csk_complete_hashdance + tcp_child_process: the connection joins the
    /// hash (in place of its request, or new for a cookie) and the accept queue, and processes
    /// the segment that completed the handshake.
    /// </summary>
    private void CompleteHandshake(RequestSocket request, in Segment segment, bool replacing)
    {
        var child = TcpConnection.CreateFromRequest(Tcp, request, Options.Clone());
        if (replacing) Tcp.ReplaceFlow(child);
        else
        {
            Tcp.AddFlow(child);
            Tcp.NotifyStateChange(child, TcpState.Listen, TcpState.SynReceived);
        }
        TcpOptions options = segment.Header.Options;
        if (options.HasTimestamp && segment.Seq <= request.RcvNxt) child.SetTsRecent(options.TsVal);
        _acceptQueue.Enqueue(child);
        child.Receive(segment);
        Acceptable?.Invoke(this);
    }

    /// <summary>
    /// embryonic_reset: RST for the peer unless it sent one. A request is gone with it; a Fast
    /// Open child survives a bad SYN but not a valid RST (it is reset like any connection).
    /// </summary>
    private void EmbryonicReset(RequestSocket request, in Segment segment, TcpConnection? fastOpenChild, CauseCode cause = CauseCode.TcpRstInvalidAck)
    {
        if (!segment.Rst) Tcp.SendResetFor(request.Tuple, segment, cause);
        if (fastOpenChild is not null)
        {
            if (segment.Rst) fastOpenChild.ResetInSynReceived();
            return;
        }
        DropRequest(request, countAsDrop: false);
        Tcp.Counters.Increment(Mib.TcpExtEmbryonicRsts);
    }

    private void SendRequestAck(RequestSocket request, CauseCode cause)
    {
        // tcp_v4_reqsk_send_ack: seq snt_isn+1, ack rcv_nxt, the request's window and timestamps.
        if (Tcp.RentSegmentBuffer(request.Tuple.RemoteAddress) is not { } buffer) return;
        var header = new TcpHeader
        {
            SourcePort = request.Tuple.LocalPort,
            DestinationPort = request.Tuple.RemotePort,
            SequenceNumber = (request.Iss + 1).Value,
            AcknowledgmentNumber = request.RcvNxt.Value,
            Flags = TcpFlags.Ack,
            Window = (ushort)Math.Min(request.ReceiveWindow >> request.ReceiveWindowScale, 65535),
        };
        if (request.TimestampsOk) header.Options.SetTimestamp(Tcp.TimestampClock + request.TsOffset, request.TsRecent);
        Tcp.Transmit(request.Tuple, header, buffer, new PacketCause(cause));
    }

    /// <summary>inet_rtx_syn_ack: the SYN-ACK again (without any Fast Open cookie), counted as a retransmission.</summary>
    internal void RetransmitSynAck(RequestSocket request, PacketCause cause)
    {
        request.SendSynAck(cause);
        request.Retransmissions++;
        Tcp.Counters.Increment(Mib.TcpRetransSegs);
        Tcp.Counters.Increment(Mib.TcpExtTCPSynRetrans);
    }

    /// <summary>
    /// reqsk_timer_handler: retransmit the SYN-ACK with doubling timeouts until
    /// tcp_synack_retries, then drop the request silently. When the SYN queue is more than
    /// half full, old requests get fewer retries so young ones keep room.
    /// </summary>
    internal void OnRequestTimer(RequestSocket request)
    {
        int maxRetries = SynAckRetries;
        int queued = SynQueueLength;
        if ((queued << 1) > Math.Max(8, Backlog))
        {
            int young = YoungRequests << 1;
            while (maxRetries > 2 && young < queued)
            {
                maxRetries--;
                young <<= 1;
            }
        }
        Tcp.Counters.Increment(Mib.TcpExtTCPTimeouts);   // tcp_syn_ack_timeout
        if (request.Timeouts >= maxRetries)
        {
            DropRequest(request, countAsDrop: false);
            return;
        }
        RetransmitSynAck(request, new PacketCause(CauseCode.TcpSynAckRetransmit, request.Timeouts + 1, maxRetries,
                                                  (long)request.Timeout.TotalMilliseconds));
        if (request.Timeouts++ == 0) YoungRequests--;
        request.Timer.Arm(Tcp.Deadline(request.Timeout));
    }

    /// <summary>Removes a request from the SYN queue and the established hash.</summary>
    internal void DropRequest(RequestSocket request, bool countAsDrop)
    {
        RemoveRequest(request);
        Tcp.RemoveFlow(request);
        Tcp.NotifyStateChange(request, TcpState.SynReceived, TcpState.Closed);
        if (countAsDrop) ListenDrop();
    }

    private void RemoveRequest(RequestSocket request)
    {
        request.Timer.Cancel();
        SynQueueLength--;
        if (request.Timeouts == 0) YoungRequests--;
    }

    /// <summary>tcp_listendrop.</summary>
    private void ListenDrop() => Tcp.Counters.Increment(Mib.TcpExtListenDrops);

    /// <summary>close() on the listener: requests vanish, queued connections are reset (inet_csk_listen_stop).</summary>
    public void Close()
    {
        if (IsClosed) return;
        IsClosed = true;
        Tcp.RemoveListener(this);
        foreach (RequestSocket request in Tcp.Flows.OfType<RequestSocket>().Where(r => r.Listener == this).ToList())
            DropRequest(request, countAsDrop: false);
        while (_acceptQueue.TryDequeue(out TcpConnection? orphan)) orphan.Abort();
    }
}
