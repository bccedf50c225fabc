using TcpLab.Stack.Diagnostics;
using TcpLab.Stack.Tcp.Congestion;
using TcpLab.Stack.Settings;
using TcpLab.Stack.Wire;

namespace TcpLab.Stack.Tcp;

/// <summary>
/// TCP Fast Open (RFC 7413) as Linux does it. Active side: tcp_sendmsg_fastopen,
/// tcp_fastopen_defer_connect, tcp_send_syn_data and tcp_rcv_fastopen_synack. Passive side:
/// a child made from the SYN (tcp_fastopen_create_child) that keeps its request for SYN-ACK
/// retransmissions (tcp_fastopen_synack_timer) until the final ACK arrives
/// (tcp_rcv_synrecv_state_fastopen).
/// </summary>
public sealed partial class TcpConnection
{
    /// <summary>MAX_TCP_OPTION_SPACE: SYN data leaves room for any options a middlebox may add.</summary>
    private const int MaxTcpOptionSpace = 40;

    // ----- Active side -----

    private bool _fastOpenRequested;        // tp->fastopen_req: this connect uses Fast Open
    private bool _connectDeferred;          // DEFER_CONNECT: the SYN waits for the first write
    private bool _synFastOpen;              // the SYN carried a Fast Open option (tp->syn_fastopen)
    private bool _synFastOpenExperimental;  // ... in the experimental encoding (tp->syn_fastopen_exp)
    private bool _synData;                  // the SYN carried data (tp->syn_data)

    /// <summary>TCP_FASTOPEN_CONNECT found a cookie: connect() returned and the SYN leaves with the first write.</summary>
    public bool IsConnectDeferred => _connectDeferred;

    /// <summary>Data rode in the SYN and the other side took it (tp->syn_data_acked, TCPI_OPT_SYN_DATA).</summary>
    public bool SynDataAcked { get; private set; }

    /// <summary>Why the client's Fast Open carried no data, if it did not (tcpi_fastopen_client_fail).</summary>
    public FastOpenClientFail FastOpenClientFail { get; private set; }

    private bool FastOpenWithoutCookie => (Sysctls.TcpFastopen & FastOpenFlags.ClientNoCookie) != 0 || Options.FastOpenNoCookie;

    private FastOpenCacheEntry? CachedFastOpen => _tcp.FastOpenCache.Find(Tuple.LocalAddress, Tuple.RemoteAddress);

    /// <summary>
    /// tcp_fastopen_defer_connect: with a cookie (or no need for one) the SYN waits for data;
    /// without, the SYN leaves now and asks for a cookie.
    /// </summary>
    private bool DeferConnect()
    {
        _fastOpenRequested = true;
        if (!FastOpenWithoutCookie && CachedFastOpen is not { Cookie.Length: > 0 }) return false;
        _fastOpenRequested = false;
        _connectDeferred = true;
        return true;
    }

    /// <summary>
    /// tcp_send_syn_data: with a cookie (or in no-cookie mode) the SYN carries the queued data,
    /// at most the cached MSS less 40 bytes of option room, recorded as its own segment after
    /// the SYN so that SYN retransmissions go without it (and without the option). Without a
    /// cookie the SYN only asks for one and the data waits for the handshake.
    /// </summary>
    private void SendSynData()
    {
        FastOpenCacheEntry? cached = CachedFastOpen;
        bool withoutCookie = FastOpenWithoutCookie;
        byte[] cookie = cached?.Cookie ?? [];
        if (!withoutCookie && cookie.Length == 0)
        {
            FastOpenClientFail = FastOpenClientFail.CookieUnavailable;
            _synFastOpen = true;
            _synFastOpenExperimental = cached is { TryExperimental: 1 };
            TransmitSyn(new PacketCause(CauseCode.TcpSynCookieRequest), fastOpenOption: true, experimental: _synFastOpenExperimental);
            return;
        }
        // tp->rx_opt.mss_clamp: the cached MSS (else ours), capped by TCP_MAXSEG; then __tcp_mtu_to_mss.
        int mssClamp = cached is { Mss: > 0 } ? cached.Mss : _advMss;
        if (Options.MaxSegment is { } userMss && userMss < mssClamp) mssClamp = userMss;
        int space = Math.Min(AdvertisedMss(_tcp, Tuple.RemoteAddress, new TcpSocketOptions()), mssClamp) - MaxTcpOptionSpace;
        int length = Math.Clamp(DataEnd - SndNxt, 0, Math.Max(space, 0));
        _synFastOpen = !withoutCookie;
        TransmitSyn(new PacketCause(CauseCode.TcpSynFastOpen, length, _synFastOpen ? 1 : 0),
                    fastOpenOption: _synFastOpen, cookie: cookie, dataLength: length);
        if (length == 0) return;
        _sent.Add(new SentSegment { Start = SndNxt, End = SndNxt + length, FirstSent = Now, LastSent = Now });
        SndNxt += length;
        _synData = true;
        Counters.Increment(Mib.TcpExtTCPOrigDataSent);
    }

    /// <summary>
    /// tcp_rcv_fastopen_synack: remember the server's MSS and cookie; if the SYN-ACK left the SYN
    /// data unacknowledged, send it again now, without waiting for a timer or counting a
    /// congestion event (the ACK rides on it). Returns true in that case.
    /// </summary>
    private bool FastOpenSynAckReceived(in Segment synAck)
    {
        TcpOptions options = synAck.Header.Options;
        ReadOnlySpan<byte> cookie = options.FastOpen != FastOpenEncoding.None ? options.Cookie : [];
        bool dataUnacked = _synData && _sent.Count > 0;
        bool synLost = false;
        int tryExperimental = 0;
        if (!_synFastOpen) cookie = [];   // an unsolicited cookie is ignored
        else if (_totalRetrans > 0) synLost = cookie.IsEmpty && dataUnacked;
        else if (cookie.IsEmpty && !_synData) tryExperimental = _synFastOpenExperimental ? 2 : 1;
        _tcp.FastOpenCache.Update(Tuple.LocalAddress, Tuple.RemoteAddress, options.HasMss ? options.Mss : 0, cookie, synLost, tryExperimental, Now);

        if (dataUnacked)
        {
            FastOpenClientFail = _totalRetrans > 0 ? FastOpenClientFail.SynRetransmitted : FastOpenClientFail.DataNotAcked;
            RetransmitSynData();
            Counters.Increment(Mib.TcpExtTCPFastOpenActiveFail);
            return true;
        }
        SynDataAcked = _synData;
        if (SynDataAcked) Counters.Increment(Mib.TcpExtTCPFastOpenActive);
        AcceptSynPayload(synAck);
        return false;
    }

    /// <summary>tcp_mark_skb_lost on the SYN data + tcp_non_congestion_loss_retransmit: send it again at once.</summary>
    private void RetransmitSynData()
    {
        for (int i = 0; i < _sent.Count; i++)
        {
            ref SentSegment segment = ref _sent[i];
            if (segment.Lost || segment.Retransmitting) continue;   // already sent again by the ACK's loss recovery
            MarkLost(ref segment, LossDetection.SynData);
        }
        NonCongestionLossRetransmit();
    }

    /// <summary>tcp_fastopen_add_skb: data (and FIN) that came with a SYN or SYN-ACK goes to the receive queue.</summary>
    private void AcceptSynPayload(in Segment segment)
    {
        ReadOnlySpan<byte> payload = segment.Payload;
        if (payload.Length > 0 && _receiveBuffer.Store(RcvNxt, payload, RcvNxt, SegmentTruesize(segment), out SeqNum end))
        {
            RcvNxt = end;
            BytesReceived = payload.Length;
            SynDataAcked = true;
        }
        if (segment.Fin) ReceiveFin();
    }

    // ----- Passive side -----

    /// <summary>The request of a Fast Open child until its handshake completes (tp->fastopen_rsk).</summary>
    private RequestSocket? _fastOpenRequest;

    /// <summary>A Fast Open child still waiting for the final ACK of its handshake.</summary>
    public bool IsFastOpenPending => _fastOpenRequest is not null;

    /// <summary>
    /// tcp_fastopen_create_child: a connection in SYN_RECV from a SYN with a valid cookie, its
    /// data already received; the request stays attached so its timer (here the connection's
    /// retransmit timer) can resend the SYN-ACK.
    /// </summary>
    internal static TcpConnection CreateFastOpenChild(TcpLayer tcp, RequestSocket request, in Segment syn, TcpSocketOptions options)
    {
        TcpConnection c = CreateFromRequest(tcp, request, options);
        c._fastOpenRequest = request;
        c.SndWnd = syn.Window;   // never scaled in a SYN
        c.MaxWindow = c.SndWnd;
        c.ArmRetransmit(request.Timeout);
        c.InitTransfer();
        c.AcceptSynPayload(syn);
        request.RcvNxt = c.RcvNxt;
        c.RcvWup = c.RcvNxt;
        return c;
    }

    /// <summary>
    /// tcp_fastopen_synack_timer: the SYN-ACK again, with one more retry than an ordinary
    /// request gets; when they run out the child (perhaps already accepted) times out.
    /// </summary>
    private void FastOpenSynAckTimeout(RequestSocket request)
    {
        Counters.Increment(Mib.TcpExtTCPTimeouts);
        int maxRetries = Options.SynRetries ?? Sysctls.TcpSynackRetries + 1;
        if (request.Timeouts >= maxRetries)
        {
            WriteError();
            return;
        }
        if (_retransmits == 1) EnterLoss();
        request.Listener.RetransmitSynAck(request, new PacketCause(CauseCode.TcpSynAckRetransmit, request.Timeouts + 1, maxRetries,
                                                                   (long)request.Timeout.TotalMilliseconds));
        request.Timeouts++;
        _retransmits++;
        _retransStamp ??= Now;
        ArmRetransmit(request.Timeout);
    }

    /// <summary>
    /// tcp_rcv_synrecv_state_fastopen: the handshake's final ACK reached a Fast Open child. Its
    /// request goes, and the retransmit timer now serves any data sent meanwhile.
    /// </summary>
    private void FastOpenHandshakeDone()
    {
        if (_fastOpenRequest is not { } request) return;
        // tcp_synack_rtt_meas, unless the SYN-ACK was retransmitted.
        if (!_rtt.HasSample && request.Retransmissions == 0 && request.FirstSynAckSent is { } sent)
        {
            _rtt.AddSample(Now - sent, SndUna, SndNxt);
            _backoff = 0;
        }
        // Still in the SYN-ACK's Loss state with nothing sent: the echo may show it was spurious.
        if (_caState == CongestionState.Loss && PacketsOut == 0) TryUndoRecovery();
        _retransmits = 0;
        if (!AnyRetransDone()) _retransStamp = null;   // tcp_retrans_stamp_cleanup
        FastOpenRequestDone(reset: false);
        RearmRto();
    }

    /// <summary>A valid RST reached a Fast Open child before its handshake completed (tcp_check_req's embryonic_reset).</summary>
    internal void ResetInSynReceived()
    {
        FastOpenRequestDone(reset: true);
        ResetByPeer();
    }

    /// <summary>reqsk_fastopen_remove: the request leaves the child and the listener's Fast Open queue.</summary>
    private void FastOpenRequestDone(bool reset)
    {
        if (_fastOpenRequest is not { } request) return;
        _fastOpenRequest = null;
        request.Listener.FastOpenRequestDone(_accepted, reset);
    }
}
