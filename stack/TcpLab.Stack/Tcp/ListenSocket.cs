using TcpLab.Stack.Diagnostics;
using TcpLab.Stack.Wire;

namespace TcpLab.Stack.Tcp;

/// <summary>
/// A listening socket with Linux's two queues: the SYN queue of half-open
/// <see cref="RequestSocket"/>s and the accept queue of established connections waiting for
/// accept(). Both are bounded by the backlog, min(listen() backlog, net.core.somaxconn), with the
/// kernel's comparisons: the accept queue is full when it holds more than the backlog (so
/// backlog + 1 connections fit, sk_acceptq_is_full) and the SYN queue when it holds more
/// than the backlog (inet_csk_reqsk_queue_is_full, current kernels).
/// </summary>
public sealed class ListenSocket
{
    private readonly Queue<TcpConnection> _acceptQueue = new();

    internal ListenSocket(TcpLayer tcp, Wire.Ipv4Address address, ushort port, int backlog, TcpSocketOptions options)
    {
        Tcp = tcp;
        LocalAddress = address;
        Port = port;
        Options = options;
        Backlog = Math.Max(0, Math.Min(backlog, tcp.Sysctls.Somaxconn));
    }

    internal TcpLayer Tcp { get; }
    public Wire.Ipv4Address LocalAddress { get; }
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

    /// <summary>accept(): the oldest established connection, or null if none waits.</summary>
    public TcpConnection? TryAccept()
    {
        if (!_acceptQueue.TryDequeue(out TcpConnection? connection)) return null;
        connection.Accepted();
        return connection;
    }

    private bool AcceptQueueFull => _acceptQueue.Count > Backlog;
    private bool SynQueueFull => SynQueueLength > Backlog;
    private int SynAckRetries => Options.SynRetries ?? Tcp.Sysctls.TcpSynackRetries;

    /// <summary>
    /// A segment for the listener itself (tcp_rcv_state_process, LISTEN): only a SYN without
    /// ACK, RST or FIN opens a request; an ACK gets a reset; the rest is dropped.
    /// <paramref name="isn"/> is set when a TIME_WAIT entry hands over a new SYN.
    /// </summary>
    internal void Receive(FourTuple tuple, in Segment segment, uint? isn)
    {
        if (segment.HasAck)
        {
            // A stray ACK (syncookies are checked here when they are on) is answered with RST.
            Tcp.Counters.Drop(DropReason.TcpListen);
            Tcp.SendResetFor(tuple, segment, CauseCode.TcpRstInvalidAck);
            return;
        }
        if (segment.Rst || !segment.Syn || segment.Fin)
        {
            Tcp.Counters.Drop(segment.Rst ? DropReason.TcpReset : DropReason.TcpFlags);
            return;
        }
        ReceiveSyn(tuple, segment, isn);
    }

    /// <summary>tcp_conn_request: admission checks in the kernel's order, then a request and its SYN-ACK.</summary>
    private void ReceiveSyn(FourTuple tuple, in Segment syn, uint? isn)
    {
        var counters = Tcp.Counters;
        var sysctls = Tcp.Sysctls;
        // TIME_WAIT handovers skip the SYN queue limits: the peer is evidently real.
        if (isn is null && (sysctls.TcpSyncookies == 2 || SynQueueFull))
        {
            // tcp_syn_flood_action. Syncookies are not implemented yet (issue 6): until they
            // are, a full SYN queue drops the SYN even when tcp_syncookies asks for cookies.
            counters.Increment(Mib.TcpExtTCPReqQFullDrop);
            ListenDrop();
            return;
        }
        if (AcceptQueueFull)
        {
            // Current kernels answer nothing while the accept queue is full, cookies or not.
            counters.Increment(Mib.TcpExtListenOverflows);
            ListenDrop();
            return;
        }
        if (isn is null && sysctls.TcpSyncookies == 0)
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

        var request = new RequestSocket(this, tuple) { Irs = syn.Seq, ConnectionId = Tcp.NewConnectionId() };
        NegotiateOptions(request, syn);
        request.Iss = isn is { } fromTimeWait ? new SeqNum(fromTimeWait) : Tcp.NewIsn(tuple);
        SynQueueLength++;
        YoungRequests++;
        Tcp.AddFlow(request);
        Tcp.NotifyStateChange(request, TcpState.Listen, TcpState.SynReceived);
        request.Timer.Arm(Tcp.Deadline(request.Timeout));
        request.SendSynAck(new PacketCause(CauseCode.TcpSynAck));
    }

    /// <summary>tcp_openreq_init and tcp_openreq_init_rwin: options of the SYN against our sysctls, and our window.</summary>
    private void NegotiateOptions(RequestSocket request, in Segment syn)
    {
        var sysctls = Tcp.Sysctls;
        TcpOptions options = syn.Header.Options;
        request.PeerMss = options.HasMss && options.Mss != 0 ? options.Mss : (ushort)536; // TCP_MSS_DEFAULT
        request.TimestampsOk = options.HasTimestamp && sysctls.TcpTimestamps != 0;
        request.SackOk = options.SackPermitted && sysctls.TcpSack;
        request.WindowScaleOk = options.HasWindowScale && sysctls.TcpWindowScaling;
        request.SendWindowScale = request.WindowScaleOk ? Math.Min(options.WindowScale, (byte)InitialWindow.MaxWindowScale) : (byte)0;
        request.TsRecent = request.TimestampsOk ? options.TsVal : 0;
        request.TsOffset = request.TimestampsOk ? Tcp.TimestampOffset(request.Tuple) : 0;

        int advMss = TcpConnection.AdvertisedMss(Tcp, request.Tuple.RemoteAddress, Options);
        int receiveBuffer = TcpConnection.ReceiveBufferBytes(sysctls, Options);
        int windowClamp = Options.ReceiveBufferSize is null ? 0 : InitialWindow.WindowFromSpace(receiveBuffer);
        var (window, clamp, scale) = InitialWindow.Select(
            InitialWindow.WindowFromSpace(receiveBuffer),
            advMss - (request.TimestampsOk ? 12 : 0),
            windowClamp,
            request.WindowScaleOk,
            Math.Max(sysctls.TcpRmem[2], sysctls.CoreRmemMax));
        request.AdvertisedMss = (ushort)advMss;
        request.ReceiveWindow = window;
        request.WindowClamp = clamp;
        request.ReceiveWindowScale = scale;
    }

    /// <summary>tcp_check_req: a segment for a half-open request.</summary>
    internal void ReceiveForRequest(RequestSocket request, in Segment segment)
    {
        var counters = Tcp.Counters;
        bool pawsReject = false;
        TcpOptions options = segment.Header.Options;
        if (request.TimestampsOk && options.HasTimestamp)
            pawsReject = Paws.Rejects(request.TsRecent, options.TsVal, recentAge: request.Timeout, segment.Rst);

        TcpFlags flags = segment.Flags & (TcpFlags.Rst | TcpFlags.Syn | TcpFlags.Ack);
        if (segment.Seq == request.Irs && flags == TcpFlags.Syn && !pawsReject)
        {
            // A retransmitted SYN: answer with a SYN-ACK at once (not counted as a timeout retry)
            // and push the timer out, as the SYN-ACK was evidently lost.
            if (!Tcp.IsRateLimited(ref request.LastOutOfWindowAnswer, Mib.TcpExtTCPACKSkippedSynRecv))
            {
                RetransmitSynAck(request, new PacketCause(CauseCode.TcpSynAckForDuplicateSyn));
                request.Timer.Arm(Tcp.Deadline(request.Timeout));
            }
            return;
        }
        if ((flags & TcpFlags.Ack) != 0 && (flags & TcpFlags.Rst) == 0 && segment.Ack != request.Iss + 1)
        {
            // Acknowledges something we never sent: the listener resets it (tcp_v4_do_rcv -> reset).
            counters.Drop(DropReason.TcpInvalidAck);
            Tcp.SendResetFor(request.Tuple, segment, CauseCode.TcpRstInvalidAck);
            return;
        }
        if (pawsReject || !InWindow(segment.Seq, segment.EndSeq, request.RcvNxt, request.RcvNxt + Math.Min(request.ReceiveWindow, 65535)))
        {
            if (!segment.Rst && !Tcp.IsRateLimited(ref request.LastOutOfWindowAnswer, Mib.TcpExtTCPACKSkippedSynRecv))
                SendRequestAck(request, CauseCode.TcpDuplicateAckOutOfWindow);
            if (pawsReject) counters.Increment(Mib.TcpExtPAWSEstab);
            return;
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
            return;
        }
        if ((flags & (TcpFlags.Rst | TcpFlags.Syn)) != 0)
        {
            counters.Increment(Mib.TcpAttemptFails);
            EmbryonicReset(request, segment);
            return;
        }
        if ((flags & TcpFlags.Ack) == 0) return;

        if (AcceptQueueFull)
        {
            // tcp_v4_syn_recv_sock fails: ListenOverflows + ListenDrops, then per tcp_abort_on_overflow.
            counters.Increment(Mib.TcpExtListenOverflows);
            ListenDrop();
            if (!Tcp.Sysctls.TcpAbortOnOverflow)
            {
                request.Acked = true;   // keep retransmitting SYN-ACKs; the client thinks it is connected
                return;
            }
            EmbryonicReset(request, segment, CauseCode.TcpRstListenOverflow);
            return;
        }
        CompleteHandshake(request, segment, options);
    }

    /// <summary>tcp_in_window: the segment overlaps the window [start, end).</summary>
    internal static bool InWindow(SeqNum seq, SeqNum endSeq, SeqNum start, SeqNum end)
    {
        if (seq == start) return true;
        if (endSeq > start && seq < end) return true;
        return seq == end && seq == endSeq;
    }

    /// <summary>syn_recv_sock + inet_csk_complete_hashdance + tcp_child_process.</summary>
    private void CompleteHandshake(RequestSocket request, in Segment segment, in TcpOptions options)
    {
        RemoveRequest(request);
        var child = TcpConnection.CreateFromRequest(Tcp, request, Options.Clone());
        Tcp.ReplaceFlow(child);
        if (options.HasTimestamp && segment.Seq <= request.RcvNxt) child.SetTsRecent(options.TsVal);
        _acceptQueue.Enqueue(child);
        child.Receive(segment);
        Acceptable?.Invoke(this);
    }

    /// <summary>embryonic_reset: RST for the peer (unless it sent one) and the request is gone.</summary>
    private void EmbryonicReset(RequestSocket request, in Segment segment, CauseCode cause = CauseCode.TcpRstInvalidAck)
    {
        if (!segment.Rst) Tcp.SendResetFor(request.Tuple, segment, cause);
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

    private void RetransmitSynAck(RequestSocket request, PacketCause cause)
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
            while (maxRetries > 2 && queued >= young)
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
